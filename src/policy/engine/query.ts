// A flow query normalised once per decision: the same normalisation the config applies to patterns.
import { domainToASCII } from 'node:url';
import type { FlowQuery } from '../types.ts';
import { parseIp, ipv6Hex, type ParsedIp } from '../ip.ts';
import { normalizeExePath, normalizeProcessName } from '../patterns.ts';

export class QueryCtx {
  readonly q: FlowQuery;
  readonly domain: string | null;
  /** Lower-cased base name, from `process` or else from `exe`. */
  readonly name: string | null;
  readonly exe: string | null;
  private ipParsed: ParsedIp | null | undefined = undefined;
  private hex: string | null = null;
  /** projectDomain(): conditions other than the domain are unknown, not false. */
  readonly projecting: boolean;

  constructor(q: FlowQuery, projecting = false) {
    this.q = q;
    this.projecting = projecting;
    this.domain = q.domain === undefined || q.domain === '' ? null : normalizeQueryDomain(q.domain);
    this.name = q.process !== undefined && q.process !== '' ? normalizeProcessName(q.process) : q.exe ? normalizeProcessName(q.exe) : null;
    this.exe = q.exe ? normalizeExePath(q.exe) : null;
  }

  get ip(): ParsedIp | null {
    if (this.ipParsed === undefined) this.ipParsed = this.q.ip ? parseIp(this.q.ip) : null;
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
