// Longest-prefix lookup over many CIDRs.
//
// IPv4: CIDR blocks are either nested or disjoint, so sorted by start address (wider first on
// ties) they form a forest; each block records its parent (the nearest enclosing block). A lookup
// binary-searches the last block starting at or before the address, climbs parents until one
// contains it — that is the longest matching prefix — and keeps climbing for the shorter ones.
// O(log n + nesting depth), flat typed arrays, one entry per distinct block.
//
// IPv6 (rarer in rule sets): one hash table per prefix length present, probed longest first.
import type { Cidr } from '../types.ts';
import { formatIPv4, formatIPv6, ipv6Hex, ipv6PrefixKey, parseIPv4, parseIPv6, v4Mask } from '../ip.ts';
import type { QueryCtx } from './query.ts';

export class CidrIndex<V> {
  // IPv4, built by finish() from v4build.
  private readonly v4build = new Map<number, V[]>(); // key: start * 64 + prefix
  private v4start = new Float64Array(0);
  private v4end = new Float64Array(0);
  private v4prefix = new Uint8Array(0);
  private v4parent = new Int32Array(0);
  private v4values: V[][] = [];
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
    this.v4start = new Float64Array(n);
    this.v4end = new Float64Array(n);
    this.v4prefix = new Uint8Array(n);
    this.v4parent = new Int32Array(n);
    this.v4values = new Array(n);
    const stack: number[] = [];
    for (let i = 0; i < n; i++) {
      const k = keys[i]!;
      const prefix = k % 64;
      const start = (k - prefix) / 64;
      const end = start + 2 ** (32 - prefix) - 1;
      this.v4start[i] = start;
      this.v4end[i] = end;
      this.v4prefix[i] = prefix;
      this.v4values[i] = this.v4build.get(k)!.sort(cmp);
      while (stack.length && this.v4end[stack[stack.length - 1]!]! < start) stack.pop();
      this.v4parent[i] = stack.length ? stack[stack.length - 1]! : -1;
      stack.push(i);
    }
    this.v4build.clear();
    for (const m of this.v6.values()) for (const l of m.values()) l.sort(cmp);
  }

  /** Visits matching entries, longest prefix first, until `visit` returns true. */
  find(ctx: QueryCtx, visit: (value: V, prefix: number) => boolean): boolean {
    const ip = ctx.ip;
    if (ip === null) return false;
    if (ip.family === 4) {
      const a = ip.v4;
      const starts = this.v4start;
      let lo = 0;
      let hi = starts.length - 1;
      let j = -1;
      while (lo <= hi) {
        const mid = (lo + hi) >>> 1;
        if (starts[mid]! <= a) { j = mid; lo = mid + 1; } else hi = mid - 1;
      }
      while (j >= 0 && this.v4end[j]! < a) j = this.v4parent[j]!;
      for (; j >= 0; j = this.v4parent[j]!) {
        for (const v of this.v4values[j]!) if (visit(v, this.v4prefix[j]!)) return true;
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

  /** The CIDR text a match at `prefix` came from, for explanations. */
  static describe(ctx: QueryCtx, prefix: number): string {
    const ip = ctx.ip!;
    if (ip.family === 4) return `${formatIPv4((ip.v4 & v4Mask(prefix)) >>> 0)}/${prefix}`;
    const key = ipv6PrefixKey(ctx.v6hex!, prefix).padEnd(32, '0');
    const words = new Uint16Array(8);
    for (let i = 0; i < 8; i++) words[i] = parseInt(key.slice(i * 4, i * 4 + 4), 16);
    return `${formatIPv6(words)}/${prefix}`;
  }
}
