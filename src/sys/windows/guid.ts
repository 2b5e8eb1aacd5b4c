// GUIDs between their text form ({6c2f9b1e-53a9-4d4b-9f2e-7377697463a1}) and the C struct koffi
// marshals ({ Data1, Data2, Data3, Data4[8] }), plus name-based GUIDs for filter keys.
import { createHash } from 'node:crypto';

/** The C `GUID` as koffi reads and writes it. */
export interface GuidStruct {
  Data1: number;
  Data2: number;
  Data3: number;
  Data4: number[];
}

const GUID_RE = /^\{?([0-9a-f]{8})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{12})\}?$/i;

/** Lower-case canonical text without braces; throws on a malformed GUID (a programming error). */
export function normalizeGuid(text: string): string {
  const m = GUID_RE.exec(text.trim());
  if (!m) throw new TypeError(`not a GUID: ${JSON.stringify(text)}`);
  return `${m[1]}-${m[2]}-${m[3]}-${m[4]}-${m[5]}`.toLowerCase();
}

export function guidToStruct(text: string): GuidStruct {
  const g = normalizeGuid(text).replaceAll('-', '');
  const data4: number[] = [];
  for (let i = 16; i < 32; i += 2) data4.push(parseInt(g.slice(i, i + 2), 16));
  return {
    Data1: parseInt(g.slice(0, 8), 16),
    Data2: parseInt(g.slice(8, 12), 16),
    Data3: parseInt(g.slice(12, 16), 16),
    Data4: data4,
  };
}

export function guidFromStruct(s: GuidStruct): string {
  const h = (n: number, w: number) => (n >>> 0).toString(16).padStart(w, '0');
  const d4 = s.Data4.map((b) => h(b, 2)).join('');
  return `${h(s.Data1, 8)}-${h(s.Data2, 4)}-${h(s.Data3, 4)}-${d4.slice(0, 4)}-${d4.slice(4)}`;
}

/** The 16 bytes of a GUID as they lie in memory (Data1..3 little-endian on x64). */
export function guidBytes(text: string): Buffer {
  const s = guidToStruct(text);
  const b = Buffer.alloc(16);
  b.writeUInt32LE(s.Data1, 0);
  b.writeUInt16LE(s.Data2, 4);
  b.writeUInt16LE(s.Data3, 6);
  Buffer.from(s.Data4).copy(b, 8);
  return b;
}

/**
 * A stable GUID derived from a namespace GUID and a name (RFC 4122 version 5, SHA-1). Filter keys are
 * derived from the provider GUID and the filter's name, so the same plan always yields the same keys:
 * a re-apply replaces exactly its own filters and a read-back can check them one by one.
 */
export function nameGuid(namespace: string, name: string): string {
  const h = createHash('sha1').update(Buffer.from(normalizeGuid(namespace).replaceAll('-', ''), 'hex')).update(name, 'utf8').digest();
  h[6] = (h[6]! & 0x0f) | 0x50;
  h[8] = (h[8]! & 0x3f) | 0x80;
  const x = h.subarray(0, 16).toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20, 32)}`;
}
