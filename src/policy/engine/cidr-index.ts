// Longest-prefix lookup over many CIDRs.
//
// IPv4: CIDR blocks are either nested or disjoint, so sorted by start address (wider first on
// ties) they form a forest; each block records its parent (the nearest enclosing block). A lookup
// binary-searches the last block starting at or before the address, climbs parents until one
// contains it — that is the longest matching prefix — and keeps climbing for the shorter ones.
// O(log n + nesting depth), flat typed arrays, one entry per distinct block. With many blocks, a
// table by the address's top B bits (B from 8 for a few blocks to 16 for thousands) narrows the
// binary search to the blocks starting in that /B (usually none or one): two or three memory
// reads instead of a dozen scattered ones. When no block starts inside the address's /B (most of
// them: the table has four or more buckets per block), every address in it has the same chain —
// blocks that start before a /B and reach into it cover all of it, being aligned — so the table
// also holds that chain's first block: one read finds the longest match, no search, no climb.
//
// IPv6 (rarer in rule sets): one hash table per prefix length present, probed longest first.
import type { Cidr } from '../types.ts';
import { formatIPv4, formatIPv6, ipv6Hex, ipv6PrefixKey, parseIPv4, parseIPv6, v4Mask } from '../ip.ts';
import type { QueryCtx } from './query.ts';


export class CidrIndex<V extends number = number> {
  // IPv4, built by finish() from v4build. One record of four int32 per block, so a lookup reads
  // a block's bounds, parent and value from one cache line: [start, end (both as int32 bits),
  // (parent + 1) * 64 + prefix, value (≥ 0) or -2-k for list k of values sharing the block].
  private readonly v4build = new Map<number, V[]>(); // key: start * 64 + prefix
  private v4rec = new Int32Array(0);
  private v4lists: V[][] = [];
  /**
   * v4bucket[2k] = first block whose start is ≥ k << (32 - B) (k = 0..2^B); v4bucket[2k + 1] =
   * the longest block covering all of bucket k, or -1 (used when no block starts inside it).
   */
  private v4bucket = new Int32Array(2 * 257).map((_, i) => (i & 1 ? -1 : 0)); // empty, until finish()
  /** 32 - B: an address's bucket is `a >>> v4shift`. */
  private v4shift = 24;
  /** Block text ("a.b.c.d/p") per block, made the first time a block is reported. */
  private v4text: (string | undefined)[] = [];
  /** Block of the last IPv4 visit (for describe). */
  private lastBlock = -1;
  private readonly v6 = new Map<number, Map<string, V[]>>();
  private v6Lengths: number[] = [];
  private finished = false;
  size = 0;

  add(c: Cidr, value: V): void {
    if (this.finished) throw new Error('CidrIndex: add after finish');
    this.size++;
    if (c.family === 4) {
      const key = parseIPv4(c.address)! * 64 + c.prefix;
      const l = this.v4build.get(key);
      if (l) { if (!l.includes(value)) l.push(value); } else this.v4build.set(key, [value]);
    } else {
      let m = this.v6.get(c.prefix);
      if (!m) { m = new Map(); this.v6.set(c.prefix, m); this.v6Lengths = [...this.v6.keys()].sort((a, b) => b - a); }
      const key = ipv6PrefixKey(ipv6Hex(parseIPv6(c.address)!), c.prefix);
      const l = m.get(key);
      if (l) { if (!l.includes(value)) l.push(value); } else m.set(key, [value]);
    }
  }

  /** Builds the lookup structures; orders values sharing a block by `cmp` (stable). */
  finish(cmp: (a: V, b: V) => number): void {
    this.finished = true;
    const keys = [...this.v4build.keys()].sort((a, b) => a - b); // by start, then shorter prefix first
    const n = keys.length;
    const rec = new Int32Array(4 * n);
    const ends = new Float64Array(n);
    const stack: number[] = [];
    for (let i = 0; i < n; i++) {
      const k = keys[i]!;
      const prefix = k % 64;
      const start = (k - prefix) / 64;
      const end = start + 2 ** (32 - prefix) - 1;
      ends[i] = end;
      while (stack.length && ends[stack[stack.length - 1]!]! < start) stack.pop();
      const parent = stack.length ? stack[stack.length - 1]! : -1;
      stack.push(i);
      const values = this.v4build.get(k)!.sort(cmp);
      rec[4 * i] = start | 0;
      rec[4 * i + 1] = end | 0;
      rec[4 * i + 2] = (parent + 1) * 64 + prefix;
      if (values.length === 1) rec[4 * i + 3] = values[0]!;
      else {
        rec[4 * i + 3] = -2 - this.v4lists.length;
        this.v4lists.push(values);
      }
    }
    this.v4rec = rec;
    this.v4build.clear();
    this.v4text = new Array(n);
    {
      // B: about four buckets per block, between 8 and 16 bits (a 2 KB to 512 KB table).
      const bits = Math.min(16, Math.max(8, 32 - Math.clz32(Math.max(1, n)) + 2));
      const size = 2 ** (32 - bits);
      const buckets = 2 ** bits;
      const b = new Int32Array(2 * (buckets + 1));
      let j = 0;
      for (let k = 0; k <= buckets; k++) {
        while (j < n && rec[4 * j]! >>> 0 < k * size) j++;
        b[2 * k] = j;
        // The last block starting before this bucket, climbed to the first one reaching into it.
        let c = j - 1;
        while (c >= 0 && rec[4 * c + 1]! >>> 0 < k * size) c = (rec[4 * c + 2]! >> 6) - 1;
        b[2 * k + 1] = c;
      }
      this.v4bucket = b;
      this.v4shift = 32 - bits;
    }
    for (const m of this.v6.values()) for (const l of m.values()) l.sort(cmp);
  }

  /** Visits matching entries, longest prefix first, until `visit` returns true. */
  find(ctx: QueryCtx, visit: (value: V, prefix: number) => boolean): boolean {
    if (ctx.family === 0) return false;
    if (ctx.family === 4) {
      const a = ctx.v4;
      const rec = this.v4rec;
      const bucket = this.v4bucket;
      const k = a >>> this.v4shift;
      let lo = bucket[2 * k]!;
      let hi = bucket[2 * k + 2]! - 1;
      // The last block starting before this bucket, if no block in it starts ≤ a; when no block
      // starts in the bucket at all, the first block of its chain, known in advance.
      let j = lo > hi ? bucket[2 * k + 1]! : lo - 1;
      while (lo <= hi) {
        const mid = (lo + hi) >>> 1;
        if (rec[4 * mid]! >>> 0 <= a) { j = mid; lo = mid + 1; } else hi = mid - 1;
      }
      while (j >= 0 && rec[4 * j + 1]! >>> 0 < a) j = (rec[4 * j + 2]! >> 6) - 1;
      for (; j >= 0; j = (rec[4 * j + 2]! >> 6) - 1) {
        this.lastBlock = j;
        const prefix = rec[4 * j + 2]! & 63;
        const v = rec[4 * j + 3]!;
        if (v >= 0) { if (visit(v as V, prefix)) return true; }
        else for (const x of this.v4lists[-2 - v]!) if (visit(x, prefix)) return true;
      }
    } else {
      const hex = ctx.v6hex!;
      for (const len of this.v6Lengths) {
        const l = this.v6.get(len)!.get(ipv6PrefixKey(hex, len));
        if (l) for (const v of l) if (visit(v, len)) return true;
      }
    }
    return false;
  }

  /** The CIDR text of the match being visited (at `prefix`), for explanations. */
  describe(ctx: QueryCtx, prefix: number): string {
    if (ctx.family === 4) {
      const v4 = ctx.v4;
      const j = this.lastBlock;
      if (j >= 0 && (this.v4rec[4 * j + 2]! & 63) === prefix && ((v4 & v4Mask(prefix)) >>> 0) === this.v4rec[4 * j]! >>> 0) {
        return (this.v4text[j] ??= `${formatIPv4(this.v4rec[4 * j]! >>> 0)}/${prefix}`);
      }
      return `${formatIPv4((v4 & v4Mask(prefix)) >>> 0)}/${prefix}`;
    }
    const key = ipv6PrefixKey(ctx.v6hex!, prefix).padEnd(32, '0');
    const words = new Uint16Array(8);
    for (let i = 0; i < 8; i++) words[i] = parseInt(key.slice(i * 4, i * 4 + 4), 16);
    return `${formatIPv6(words)}/${prefix}`;
  }
}
