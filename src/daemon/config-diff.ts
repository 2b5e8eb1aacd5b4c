// What a reload can apply live and what needs a restart. Rules, default, exempt entries and the
// egress list apply live; listen addresses, inbound limits, control access and enforcement do not
// (their sockets and OS state were made at start).
import type { Config } from '../policy/types.ts';

/** JSON without `line`/`origin` fields: editing a comment above a table must not count as a change. */
function stable(v: unknown): string {
  return JSON.stringify(v, (k, val: unknown) => (k === 'line' || k === 'origin' ? undefined : val));
}

export function egressFingerprint(c: Config): string {
  return stable(Object.entries(c.egress).sort(([a], [b]) => a.localeCompare(b)));
}

export function restartOnlyChanges(a: Config, b: Config): string[] {
  const out: string[] = [];
  if (stable(a.dns.listen) !== stable(b.dns.listen)) out.push('dns.listen');
  if (stable(a.dns.upstreams) !== stable(b.dns.upstreams) || stable(a.dns.bootstrap) !== stable(b.dns.bootstrap)) out.push('dns.upstreams');
  if (stable(a.dns.cache) !== stable(b.dns.cache) || stable(a.dns.store) !== stable(b.dns.store)) out.push('dns.cache/store');
  if (stable(a.inbound) !== stable(b.inbound)) out.push('inbound');
  if (stable(a.enforce) !== stable(b.enforce)) out.push('enforce');
  if (stable(a.control) !== stable(b.control)) out.push('control');
  return out;
}
