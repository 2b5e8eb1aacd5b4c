// Longest-prefix lookup over many CIDRs: one hash table per prefix length present, probed from the
// longest length down. With at most 33 (IPv4) or 129 (IPv6) lengths this is a bounded number of
// Map lookups, and memory is one entry per CIDR (a bit trie would need a node per bit).
import type { Cidr } from '../types.ts';
import { formatIPv4, formatIPv6, ipv6PrefixKey, parseIPv4, parseIPv6, ipv6Hex, v4Mask } from '../ip.ts';
import type { QueryCtx } from './query.ts';

export class CidrIndex<V> {
  private readonly v4 = new Map<number, Map<number, V[]>>();
  private readonly v6 = new Map<number, Map<string, V[]>>();
  private v4Lengths: number[] = [];
  private v6Lengths: number[] = [];
  size = 0;

  add(c: Cidr, value: V): void {
    this.size++;
    if (c.family === 4) {
      let m = this.v4.get(c.prefix);
      if (!m) { m = new Map(); this.v4.set(c.prefix, m); this.v4Lengths = [...this.v4.keys()].sort((a, b) => b - a); }
      const key = parseIPv4(c.address)!;
      const l = m.get(key);
      if (l) { if (!l.includes(value)) l.push(value); } else m.set(key, [value]);
    } else {
      let m = this.v6.get(c.prefix);
      if (!m) { m = new Map(); this.v6.set(c.prefix, m); this.v6Lengths = [...this.v6.keys()].sort((a, b) => b - a); }
      const key = ipv6PrefixKey(ipv6Hex(parseIPv6(c.address)!), c.prefix);
      const l = m.get(key);
      if (l) { if (!l.includes(value)) l.push(value); } else m.set(key, [value]);
    }
  }

  /** Visits matching entries, longest prefix first, until `visit` returns true. */
  find(ctx: QueryCtx, visit: (value: V, prefix: number) => boolean): boolean {
    const ip = ctx.ip;
    if (ip === null) return false;
    if (ip.family === 4) {
      for (const len of this.v4Lengths) {
        const l = this.v4.get(len)!.get((ip.v4 & v4Mask(len)) >>> 0);
        if (l) for (const v of l) if (visit(v, len)) return true;
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
