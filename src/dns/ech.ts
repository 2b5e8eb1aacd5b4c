// Removes the `ech` SvcParam (key 5, RFC 9460 / draft-ietf-tls-svcb-ech) from HTTPS and SVCB
// records, so a browser whose traffic goes through a proxy egress keeps sending a readable SNI.
// Also drops 5 from a `mandatory` list, which would otherwise make the record malformed.
//
// This is the one place that changes an answer's layout. Removing bytes shifts everything after
// them, so every compression pointer is rewritten through the offset map: in owner names, and in
// the rdata of the types whose names may be compressed (RFC 1035 types, RFC 3597 §4, and the few
// later types some servers still compress). Names never point into SvcParams, so no pointer can
// lose its target.
import { forEachSvcParam, SVC_KEY } from './answer.ts';
import { TYPE } from './wire.ts';
import type { RecordRef } from './wire.ts';

/** Offsets (from rdata start) of names inside rdata, per type; null = the name follows another. */
const RDATA_NAMES: Record<number, (buf: Uint8Array, r: RecordRef) => number[]> = {
  2: (_b, r) => [r.rdOff], // NS
  3: (_b, r) => [r.rdOff], // MD
  4: (_b, r) => [r.rdOff], // MF
  5: (_b, r) => [r.rdOff], // CNAME
  6: (b, r) => [r.rdOff, nameEnd(b, r.rdOff)], // SOA: MNAME RNAME
  7: (_b, r) => [r.rdOff], // MB
  8: (_b, r) => [r.rdOff], // MG
  9: (_b, r) => [r.rdOff], // MR
  12: (_b, r) => [r.rdOff], // PTR
  14: (b, r) => [r.rdOff, nameEnd(b, r.rdOff)], // MINFO
  15: (_b, r) => [r.rdOff + 2], // MX
  17: (b, r) => [r.rdOff, nameEnd(b, r.rdOff)], // RP
  18: (_b, r) => [r.rdOff + 2], // AFSDB
  21: (_b, r) => [r.rdOff + 2], // RT
  26: (b, r) => [r.rdOff + 2, nameEnd(b, r.rdOff + 2)], // PX
  33: (_b, r) => [r.rdOff + 6], // SRV
  64: (_b, r) => [r.rdOff + 2], // SVCB target (should be uncompressed; fixed anyway)
  65: (_b, r) => [r.rdOff + 2], // HTTPS target
};

/** End of the in-place part of a name (after its pointer, or its root label). */
function nameEnd(b: Uint8Array, p: number): number {
  while (p < b.length) {
    const len = b[p]!;
    if (len === 0) return p + 1;
    if ((len & 0xc0) === 0xc0) return p + 2;
    p += len + 1;
  }
  return p;
}

/** Returns `buf` unchanged when no record carries `ech`, else a new message without it. */
export function stripEch(buf: Buffer, records: RecordRef[]): Buffer {
  const cuts: [number, number][] = [];
  const patches: { off: number; value: number }[] = [];
  for (const r of records) {
    if (r.type !== TYPE.HTTPS && r.type !== TYPE.SVCB) continue;
    let removed = 0;
    forEachSvcParam(buf, r, (key, off, len, paramStart) => {
      if (key === SVC_KEY.ech) {
        cuts.push([paramStart, off + len]);
        removed += 4 + len;
      } else if (key === 0) {
        let dropped = 0;
        for (let o = off; o + 1 < off + len; o += 2) {
          if (buf.readUInt16BE(o) === SVC_KEY.ech) {
            cuts.push([o, o + 2]);
            dropped += 2;
          }
        }
        if (dropped) patches.push({ off: paramStart + 2, value: len - dropped });
        removed += dropped;
      }
    });
    if (removed) patches.push({ off: r.rdOff - 2, value: r.rdLen - removed });
  }
  if (cuts.length === 0) return buf;
  cuts.sort((a, b) => a[0] - b[0]);
  const map = (o: number): number => {
    let d = 0;
    for (const [s, e] of cuts) {
      if (e <= o) d += e - s;
      else break;
    }
    return o - d;
  };
  const removedTotal = cuts.reduce((n, [s, e]) => n + e - s, 0);
  const out = Buffer.alloc(buf.length - removedTotal);
  let src = 0;
  let dst = 0;
  for (const [s, e] of cuts) {
    buf.copy(out, dst, src, s);
    dst += s - src;
    src = e;
  }
  buf.copy(out, dst, src);
  for (const p of patches) out.writeUInt16BE(p.value, map(p.off));
  const fixName = (p: number): void => {
    while (p < buf.length) {
      const len = buf[p]!;
      if (len === 0) return;
      if ((len & 0xc0) === 0xc0) {
        const target = ((len & 0x3f) << 8) | buf[p + 1]!;
        out.writeUInt16BE(0xc000 | map(target), map(p));
        return;
      }
      p += len + 1;
    }
  };
  for (const r of records) {
    fixName(r.nameOff);
    const names = RDATA_NAMES[r.type];
    if (names && r.rdLen > 0) for (const p of names(buf, r)) if (p < r.end) fixName(p);
  }
  return out;
}
