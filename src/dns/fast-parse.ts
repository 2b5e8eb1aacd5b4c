// The UDP fast path's question reader: parseQuery's accept set narrowed to the common shape of a
// query — header, one uncompressed question, and nothing after it but at most one OPT record at
// the root — read in place from the receive block into one reused object (no allocation per
// datagram). Anything else returns false and goes to the main thread, whose parseQuery decides
// (FORMERR, drop, or an answer). For every message it accepts, the fields equal parseQuery's
// (test/dns/fast-parse.test.ts checks this on random and mutated input).
import { EDNS_DO, FLAG, HEADER_LEN, MAX_NAME_LEN, TYPE } from './wire.ts';

/** What a hit needs to know about a query; one instance is reused for every datagram. */
export interface QuickQuery {
  id: number;
  flags: number;
  qEnd: number;
  edns: boolean;
  udpSize: number;
  dnssecOk: boolean;
  hash: number;
}

export function newQuickQuery(): QuickQuery {
  return { id: 0, flags: 0, qEnd: 0, edns: false, udpSize: 512, dnssecOk: false, hash: 0 };
}

const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

/**
 * Reads the query of `len` bytes at `off` in `b` into `q` (offsets in `q` relative to `off`).
 * Returns false for anything but a plain query (opcode QUERY) with exactly one uncompressed
 * question, no answer or authority records, and either nothing or exactly one OPT record (root
 * owner) filling the rest of the message.
 */
export function quickParse(b: Uint8Array, off: number, len: number, q: QuickQuery): boolean {
  if (len < HEADER_LEN) return false;
  const flags = (b[off + 2]! << 8) | b[off + 3]!;
  if (flags & FLAG.QR || (flags >> 11) & 0xf) return false;
  if (b[off + 4] !== 0 || b[off + 5] !== 1) return false; // qdcount 1
  if (b[off + 6] !== 0 || b[off + 7] !== 0 || b[off + 8] !== 0 || b[off + 9] !== 0) return false;
  const ar = (b[off + 10]! << 8) | b[off + 11]!;
  if (ar > 1) return false;
  const end = off + len;
  let p = off + HEADER_LEN;
  let total = 0;
  let h = FNV_OFFSET;
  for (;;) {
    if (p >= end) return false;
    const l = b[p]!;
    h = Math.imul(h ^ l, FNV_PRIME);
    if (l === 0) break;
    if (l & 0xc0) return false;
    total += l + 1;
    if (total > MAX_NAME_LEN || p + 1 + l > end) return false;
    for (let i = p + 1; i <= p + l; i++) {
      const c = b[i]!;
      h = Math.imul(h ^ (c >= 0x41 && c <= 0x5a ? c | 0x20 : c), FNV_PRIME);
    }
    p += l + 1;
  }
  p++;
  if (p + 4 > end) return false;
  // Type and class bytes are folded too, as parseQuery's key does (0x41 is HTTPS's low byte).
  for (let i = p; i < p + 4; i++) {
    const c = b[i]!;
    h = Math.imul(h ^ (c >= 0x41 && c <= 0x5a ? c | 0x20 : c), FNV_PRIME);
  }
  p += 4;
  const qEnd = p - off;
  let edns = false;
  let udpSize = 512;
  let dnssecOk = false;
  if (ar === 1) {
    // OPT: root name (0), type 41, class = UDP size, TTL = ext-rcode/version/flags, rdlength, rdata.
    if (p + 11 > end || b[p] !== 0) return false;
    if (((b[p + 1]! << 8) | b[p + 2]!) !== TYPE.OPT) return false;
    const rdlen = (b[p + 9]! << 8) | b[p + 10]!;
    if (p + 11 + rdlen !== end) return false;
    edns = true;
    udpSize = Math.max(512, (b[p + 3]! << 8) | b[p + 4]!);
    dnssecOk = (((b[p + 7]! << 8) | b[p + 8]!) & EDNS_DO) !== 0;
  } else if (p !== end) {
    return false;
  }
  q.id = (b[off]! << 8) | b[off + 1]!;
  q.flags = flags;
  q.qEnd = qEnd;
  q.edns = edns;
  q.udpSize = udpSize;
  q.dnssecOk = dnssecOk;
  q.hash = Math.imul(h ^ (dnssecOk ? 1 : 0), FNV_PRIME) >>> 0;
  return true;
}

/** True when the question at `off` in `b` (ASCII case folded) and q's DO bit are the key bytes `kb`. */
export function sameKey(kb: Uint8Array, b: Uint8Array, off: number, q: QuickQuery): boolean {
  const klen = q.qEnd - HEADER_LEN;
  if (kb.length !== klen + 1 || kb[klen] !== (q.dnssecOk ? 1 : 0)) return false;
  const s = off + HEADER_LEN;
  for (let i = 0; i < klen; i++) {
    const c = b[s + i]!;
    if (kb[i] !== (c >= 0x41 && c <= 0x5a ? c | 0x20 : c)) return false;
  }
  return true;
}
