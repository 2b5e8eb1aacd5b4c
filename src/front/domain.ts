// The domain of a transparent flow and where it came from. Order:
//   1. a sniffed SNI / HTTP Host (not an ECH outer name) — source `sni` / `http-host`;
//   2. the correlation store's names for the original destination IP — used as `dns` when they
//      all lead to the same egress, else the newest name flagged `dns-ambiguous`;
//   3. none.
// A proxy egress may be sent the name only when it was sniffed AND agrees with the destination
// (the store saw that name resolve to this IP); store names are hints and stay local.
import type { CorrelationLookup, DomainSource } from '../flow/types.ts';
import type { FlowQuery, Policy } from '../policy/types.ts';
import type { SniffResult } from './sniff.ts';

export interface FlowDomain {
  domain: string | null;
  source: DomainSource;
  /** May be sent to a proxy egress in place of the IP. */
  trusted: boolean;
  /** The ECH outer name seen (reported, never used as the domain). */
  echOuter: string | null;
}

export function domainOfFlow(ip: string, sniffed: SniffResult, store: CorrelationLookup | undefined, policy: Policy, base: FlowQuery): FlowDomain {
  const names = store ? store.lookup(ip).names : [];
  const agreesWithStore = (n: string) => names.some((s) => s.name === n || s.chain.includes(n));
  let echOuter: string | null = null;
  if (sniffed.kind === 'tls' && sniffed.sni) {
    if (sniffed.ech) echOuter = sniffed.sni;
    else return { domain: sniffed.sni, source: 'sni', trusted: agreesWithStore(sniffed.sni), echOuter };
  }
  if (sniffed.kind === 'http' && sniffed.host) return { domain: sniffed.host, source: 'http-host', trusted: agreesWithStore(sniffed.host), echOuter };
  if (names.length === 0) return { domain: null, source: 'none', trusted: false, echOuter };
  const newest = names[0]!.name;
  const egresses = new Set(names.map((n) => policy.decide({ ...base, domain: n.name }).egress));
  return { domain: newest, source: egresses.size === 1 ? 'dns' : 'dns-ambiguous', trusted: false, echOuter };
}
