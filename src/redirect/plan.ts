// Builds the OS-neutral RedirectPlan from the normalised config and the listener ports. Pure: the
// things that need I/O (user names → uids, egress host names → addresses) are passed in.
import type { AppPattern, Cidr, Config } from '../policy/types.ts';
import type { ListenerPorts, PlacementRule, RedirectPlan } from './types.ts';
import { RedirectPlanError } from '../errors.ts';
import { isIP } from 'node:net';
import { dohList, type DohList } from './doh.ts';

export interface PlanInputs {
  config: Config;
  ports: ListenerPorts;
  /** Resolved addresses of egress endpoints given by name (IP literals in the config are added here). */
  egressEndpointAddresses?: string[];
  /** User name (or numeric string) → uid; undefined = unknown user. */
  resolveUser?: (name: string) => number | undefined;
  /** With `block_doh`: the DoH list (built-in plus the list file); default the built-in list alone. */
  doh?: DohList;
}

/**
 * Egress names become directory names (`egress-<name>`) and quoted nft strings: keep them to a
 * safe alphabet rather than escaping. The config schema allows the same set.
 */
const SAFE_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,62}$/;

export function checkGroupName(name: string): string {
  if (!SAFE_NAME.test(name)) {
    throw new RedirectPlanError(`egress name '${name}' cannot name an OS group (allowed: letters, digits, _ . -, up to 63)`);
  }
  return name;
}

function hostCidr(address: string): Cidr | null {
  const fam = isIP(address);
  if (fam === 4) return { family: 4, address, prefix: 32 };
  if (fam === 6) return { family: 6, address, prefix: 128 };
  return null;
}

/** A rule that matches on its CIDRs alone (no app, domain, port or network condition). */
function unconditional(r: Config['rules'][number]): boolean {
  return r.apps.length === 0 && r.domains.length === 0 && r.ports.length === 0 && r.network === null;
}

export function buildPlan(inp: PlanInputs): RedirectPlan {
  const { config, ports } = inp;
  const egressNames = Object.keys(config.egress);
  // Every declared egress but `direct` gets a group: `switchyard exec --egress NAME` may use any,
  // and `block` is a group whose traffic has no listener (so it is rejected).
  const groups = egressNames.filter((n) => n !== 'direct').map(checkGroupName).sort();

  for (const g of Object.keys(ports.groups)) {
    if (!groups.includes(g)) throw new RedirectPlanError(`listener port given for unknown group '${g}'`);
  }
  for (const p of [...Object.values(ports.groups), ports.captured, ports.dns]) {
    if (p !== null && !(Number.isInteger(p) && p > 0 && p < 65536)) throw new RedirectPlanError(`bad listener port ${p}`);
  }

  const captured = new Set<string>();
  const staticCidrs: Cidr[] = [];
  const blockCidrs: Cidr[] = [];
  for (const r of config.rules) {
    if (r.egress === 'direct') continue;
    if (r.domains.length > 0) captured.add(r.egress);
    if (r.cidrs.length === 0) continue;
    if (r.egress === 'block' && unconditional(r)) blockCidrs.push(...r.cidrs);
    else staticCidrs.push(...r.cidrs);
  }
  if (config.default !== 'direct') captured.add(config.default);

  const uids = new Set<number>();
  const users = [...config.enforce.exemptUsers, ...config.exempt.flatMap((e) => e.users)];
  for (const u of users) {
    const uid = /^\d+$/.test(u) ? Number(u) : inp.resolveUser?.(u);
    if (uid === undefined || !Number.isInteger(uid) || uid < 0 || uid > 0xffff_fffe) {
      throw new RedirectPlanError(`exempt user '${u}' is unknown on this system`);
    }
    uids.add(uid);
  }

  const endpoints: Cidr[] = [];
  const seen = new Set<string>();
  const addEndpoint = (a: string) => {
    const c = hostCidr(a);
    if (c && !seen.has(c.address)) {
      seen.add(c.address);
      endpoints.push(c);
    }
  };
  for (const e of Object.values(config.egress)) {
    if (e.type === 'socks5' || e.type === 'http') addEndpoint(e.endpoint.host);
  }
  for (const a of inp.egressEndpointAddresses ?? []) {
    if (!hostCidr(a)) throw new RedirectPlanError(`egress endpoint address '${a}' is not an IP address`);
    addEndpoint(a);
  }

  return {
    groups,
    capturedEgresses: [...captured].sort(),
    staticCidrs,
    blockCidrs,
    mode: config.enforce.mode,
    lan: config.enforce.lan,
    blockQuic: config.enforce.blockQuic,
    ...(config.enforce.blockDoh ? { dohCidrs: (inp.doh ?? dohList(null)).cidrs } : {}),
    exemptUids: [...uids].sort((a, b) => a - b),
    exemptCidrs: config.exempt.flatMap((e) => e.cidrs),
    egressEndpoints: endpoints,
    ports: { groups: { ...ports.groups }, captured: ports.captured, dns: ports.dns },
  };
}

/**
 * Which processes go in which group, from the config: exempt apps first (never redirected wins),
 * then app rules in order, each to its egress group; app rules whose egress is direct place nothing.
 */
export function placementRules(config: { exempt: { apps: AppPattern[] }[]; rules: { egress: string; apps: AppPattern[] }[] }): PlacementRule[] {
  const out: PlacementRule[] = [];
  const exempt = config.exempt.flatMap((e) => e.apps);
  if (exempt.length > 0) out.push({ group: 'exempt', patterns: exempt });
  for (const r of config.rules) if (r.apps.length > 0 && r.egress !== 'direct') out.push({ group: r.egress, patterns: r.apps });
  return out;
}
