// A flow query normalised once per decision: the same normalisation the config applies to patterns.
import { domainToASCII } from 'node:url';
import type { FlowQuery } from '../types.ts';
import { parseIp, parseIPv4, ipv6Hex, type ParsedIp } from '../ip.ts';
import { normalizeExePath, normalizeProcessName } from '../patterns.ts';
import type { DomainIndex } from './domain-index.ts';

// Fields are assigned by set(), not readonly: decide() refills one context per policy instead of
// allocating one per decision (it is synchronous, so one is never in use twice).
export class QueryCtx {
  q!: FlowQuery;
  domain!: string | null;
  /** Lower-cased base name, from `process` or else from `exe`. */
  name!: string | null;
  exe!: string | null;
  /**
   * The destination's family (0: none or unparsable, 4, 6) and, for IPv4, its value: read by the
   * LAN check and the CIDR stage of every decision without building a ParsedIp object.
   */
  family!: 0 | 4 | 6;
  v4!: number;
  private ipParsed: ParsedIp | null | undefined = undefined;
  private hex: string | null = null;
  /** projectDomain(): conditions other than the domain are unknown, not false. */
  projecting!: boolean;

  /** `domains`: the policy's domain table, which normalises the name in the pass that probes it. */
  constructor(q: FlowQuery, projecting = false, domains: DomainIndex<number> | null = null) {
    this.set(q, projecting, domains);
  }

  /** Makes this the context of `q` (every field rewritten). */
  set(q: FlowQuery, projecting: boolean, domains: DomainIndex<number> | null): this {
    this.q = q;
    this.ipParsed = undefined;
    this.hex = null;
    this.projecting = projecting;
    const d = q.domain;
    this.domain = d === undefined || d === '' ? null : domains !== null ? domains.normalizeAndProbe(d) : normalizeQueryDomain(d);
    this.name = q.process !== undefined && q.process !== '' ? normalizeProcessName(q.process) : q.exe ? normalizeProcessName(q.exe) : null;
    this.exe = q.exe ? normalizeExePath(q.exe) : null;
    const ip = q.ip;
    const v4 = ip ? parseIPv4(ip) : null;
    if (v4 !== null) {
      this.family = 4;
      this.v4 = v4;
    } else {
      // IPv6, IPv4-mapped IPv6, or not an address: the general parser (rarer; allocates).
      const p = ip ? parseIp(ip) : null;
      this.ipParsed = p;
      this.family = p === null ? 0 : p.family;
      this.v4 = p !== null && p.family === 4 ? p.v4 : 0;
    }
    return this;
  }

  get ip(): ParsedIp | null {
    if (this.ipParsed === undefined) this.ipParsed = this.family === 4 ? { family: 4, v4: this.v4 } : null;
    return this.ipParsed;
  }

  /** 32 hex digits of an IPv6 destination (computed once). */
  get v6hex(): string | null {
    const ip = this.ip;
    if (ip === null || ip.family !== 6) return null;
    return (this.hex ??= ipv6Hex(ip.words));
  }
}

/** Query names: lower case, trailing dot dropped, IDN to punycode (same as patterns). */
export function normalizeQueryDomain(d: string): string {
  const s = d.charCodeAt(d.length - 1) === 46 ? d.slice(0, -1) : d;
  let upper = false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c > 127) {
      const a = domainToASCII(s);
      return a === '' ? s.toLowerCase() : a;
    }
    if (c >= 65 && c <= 90) upper = true;
  }
  // Most query names are already lower-case ASCII; then toLowerCase() would change nothing.
  return upper ? s.toLowerCase() : s;
}
