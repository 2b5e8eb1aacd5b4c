// Which DNS-learned addresses the OS backend's captured sets receive, and with which egresses.
// Two paths feed the sets and both must agree: the binding hook (one answer, before it leaves) and
// the re-fill from the correlation store (after a policy swap, at enforcement start, after
// `enforce on`), which makes an address an app already holds follow the policy now running
// without waiting for the app's next query. Both project with `capture: true`: app- and
// CIDR-conditioned rules are left out (groups and static sets redirect those), or one such rule
// would put every resolved address into the captured set.
import type { Binding, StoreName } from '../flow/types.ts';
import type { DomainProjection, ProjectOptions } from '../policy/types.ts';

export interface Projector {
  projectDomain(name: string, opts?: ProjectOptions): DomainProjection;
}

/**
 * The egresses a binding carries to the OS backend. `forwarderEgresses` is what the forwarder
 * projected for the name (policy plus `block_doh`): a direct name stays as it is (the backend skips
 * it), any other is projected again with `capture: true`.
 */
export function captureEgresses(name: string, forwarderEgresses: string[], policy: Projector): string[] {
  if (forwarderEgresses.every((e) => e === 'direct')) return forwarderEgresses;
  return policy.projectDomain(name, { capture: true }).egresses;
}

/**
 * Bindings for what the store holds: each (address, name) pair still inside TTL + grace, held in
 * the set for what is left of that, with the egresses `egressesOf` gives its name. Pairs whose
 * name goes direct (or nowhere) are left out: the backend would skip them anyway.
 */
export function storedBindings(entries: [string, StoreName[]][], now: number, graceSeconds: number, egressesOf: (name: string) => string[]): Binding[] {
  const byName = new Map<string, string[]>();
  const out: Binding[] = [];
  for (const [ip, names] of entries) {
    for (const n of names) {
      const holdSeconds = Math.ceil((n.expiresAt + graceSeconds * 1000 - now) / 1000);
      if (holdSeconds <= 0) continue;
      let egresses = byName.get(n.name);
      if (!egresses) byName.set(n.name, (egresses = egressesOf(n.name)));
      if (egresses.length === 0 || egresses.every((e) => e === 'direct')) continue;
      const ttlSeconds = Math.max(0, Math.ceil((n.expiresAt - now) / 1000));
      out.push({ ip, family: ip.includes(':') ? 6 : 4, name: n.name, egresses, ttlSeconds, holdSeconds });
    }
  }
  return out;
}
