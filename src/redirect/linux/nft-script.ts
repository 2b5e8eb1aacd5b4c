// Renders a RedirectPlan as the nft script for table `inet switchyard` (pure). The table is built
// as a small model first (sets, chains, rules) so the same model renders the text and tells
// verify() what must be there after reading the table back.
//
// Hooks and order (both base chains run for every locally generated packet):
//   filter_out  filter/output, priority -150 (before NAT, so it sees original destinations):
//               exemptions → DNS → loopback → 853 → exempt/LAN → blocks → QUIC → group UDP.
//   nat_out     nat/output, priority -100 (first packet of a connection only):
//               exemptions → DNS redirect → loopback → canary → exempt/LAN → groups → captured.
// A `skeleton` renders the same table with every redirect turned into a reject: with no daemon
// listening, selected and captured traffic is refused instead of going direct.
import { FWMARK, FWMARK_MASK, NFT_FAMILY, NFT_TABLE } from '../../ids.ts';
import type { Cidr } from '../../policy/types.ts';
import type { RedirectPlan } from '../types.ts';
import { EXEMPT_GROUP, groupDir as groupDirName } from './cgroups.ts';

export const TABLE_REF = `${NFT_FAMILY} ${NFT_TABLE}`;

/** Set names. Captured and blocked sets have timeouts and are fed by DNS bindings. */
export const SET = {
  captured4: 'captured4',
  captured6: 'captured6',
  blocked4: 'blocked4',
  blocked6: 'blocked6',
  static4: 'static4',
  static6: 'static6',
  blockcidr4: 'blockcidr4',
  blockcidr6: 'blockcidr6',
  exempt4: 'exempt4',
  exempt6: 'exempt6',
  lan4: 'lan4',
  lan6: 'lan6',
} as const;

/** Sets whose elements are learned at run time (carried over when the table is replaced). */
/** Sets of known DoH endpoint addresses, present only with `block_doh`. */
export const DOH_SET = { 4: 'doh4', 6: 'doh6' } as const;

export const DYNAMIC_SETS: readonly string[] = [SET.captured4, SET.captured6, SET.blocked4, SET.blocked6];

export const CHAIN = { exempt: 'exempt', deny: 'deny', filter: 'filter_out', nat: 'nat_out' } as const;

/** Never redirected while `[enforce] lan = "direct"`: private, link-local and multicast ranges. */
export const LAN4 = ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '169.254.0.0/16', '224.0.0.0/4', '255.255.255.255'];
export const LAN6 = ['fc00::/7', 'fe80::/10', 'ff00::/8'];

/**
 * Canary: a connection from a group to this loopback address is redirected to the backend's own
 * canary listener. If cgroup matching does not work it goes to 127.255.255.254:9 — loopback,
 * nothing listens, nothing leaves the host.
 */
export const CANARY_ADDR = '127.255.255.254';
export const CANARY_PORT = 9;

/** What the renderer needs to know about cgroups (CgroupManager provides it). */
export interface CgroupNames {
  nftPath(group: string): string;
  level(group: string): number;
}

export interface SetElement {
  set: string;
  value: string;
  timeoutSec: number;
  expiresSec: number;
}

export interface RenderOptions {
  mode: 'active' | 'skeleton';
  cgroups: CgroupNames;
  /** Elements of the dynamic sets carried over from the table being replaced. */
  carried?: SetElement[];
  /** Port of the backend's canary listener; no canary rules when absent. */
  canaryPort?: number;
}

export interface SetModel {
  name: string;
  type: 'ipv4_addr' | 'ipv6_addr';
  kind: 'timeout' | 'interval';
  elements: string[];
}

export interface ChainModel {
  name: string;
  /** `type nat hook output priority -100; policy accept;` for base chains, null for regular ones. */
  base: string | null;
  rules: string[];
}

export interface TableModel {
  sets: SetModel[];
  chains: ChainModel[];
  /** cgroup paths the rules name (nft path → level), for verification. */
  cgroups: Map<string, number>;
}

function cidrText(c: Cidr): string {
  return (c.family === 4 && c.prefix === 32) || (c.family === 6 && c.prefix === 128) ? c.address : `${c.address}/${c.prefix}`;
}

const hex = (n: number) => `0x${n.toString(16).padStart(8, '0')}`;

export function buildModel(plan: RedirectPlan, opts: RenderOptions): TableModel {
  const cg = opts.cgroups;
  const skeleton = opts.mode === 'skeleton';
  const cgroups = new Map<string, number>();
  const inGroup = (g: string) => {
    cgroups.set(cg.nftPath(g), cg.level(g));
    return `socket cgroupv2 level ${cg.level(g)} "${cg.nftPath(g)}"`;
  };
  const fam = (c: Cidr[], f: 4 | 6) => c.filter((x) => x.family === f).map(cidrText);
  const exemptAll = [...plan.exemptCidrs, ...plan.egressEndpoints];

  const sets: SetModel[] = [
    { name: SET.captured4, type: 'ipv4_addr', kind: 'timeout', elements: [] },
    { name: SET.captured6, type: 'ipv6_addr', kind: 'timeout', elements: [] },
    { name: SET.blocked4, type: 'ipv4_addr', kind: 'timeout', elements: [] },
    { name: SET.blocked6, type: 'ipv6_addr', kind: 'timeout', elements: [] },
    { name: SET.static4, type: 'ipv4_addr', kind: 'interval', elements: fam(plan.staticCidrs, 4) },
    { name: SET.static6, type: 'ipv6_addr', kind: 'interval', elements: fam(plan.staticCidrs, 6) },
    { name: SET.blockcidr4, type: 'ipv4_addr', kind: 'interval', elements: fam(plan.blockCidrs, 4) },
    { name: SET.blockcidr6, type: 'ipv6_addr', kind: 'interval', elements: fam(plan.blockCidrs, 6) },
    { name: SET.exempt4, type: 'ipv4_addr', kind: 'interval', elements: fam(exemptAll, 4) },
    { name: SET.exempt6, type: 'ipv6_addr', kind: 'interval', elements: fam(exemptAll, 6) },
    { name: SET.lan4, type: 'ipv4_addr', kind: 'interval', elements: LAN4 },
    { name: SET.lan6, type: 'ipv6_addr', kind: 'interval', elements: LAN6 },
  ];
  // Known DoH endpoints (block_doh): only when on, so a plan without it renders as before.
  const doh = plan.dohCidrs;
  if (doh) {
    sets.push({ name: DOH_SET[4], type: 'ipv4_addr', kind: 'interval', elements: fam(doh, 4) });
    sets.push({ name: DOH_SET[6], type: 'ipv6_addr', kind: 'interval', elements: fam(doh, 6) });
  }

  // Sockets that are never touched: switchyard's own (fwmark, exempt group) and exempt users.
  const exempt: string[] = [
    `meta mark & ${hex(FWMARK_MASK)} == ${hex(FWMARK)} accept`,
    `${inGroup(EXEMPT_GROUP)} accept`,
  ];
  if (plan.exemptUids.length > 0) exempt.push(`meta skuid { ${plan.exemptUids.join(', ')} } accept`);

  const deny = ['meta l4proto tcp reject with tcp reset', 'reject with icmpx admin-prohibited'];

  const bothFamilies = (tmpl: (ip: 'ip' | 'ip6', s: '4' | '6') => string) => [tmpl('ip', '4'), tmpl('ip6', '6')];
  const loopback = ['ip daddr 127.0.0.0/8 accept', 'ip6 daddr ::1 accept'];
  const exemptDst = bothFamilies((ip, f) => `${ip} daddr @exempt${f} accept`);
  const lanDst = plan.lan === 'direct' ? bothFamilies((ip, f) => `${ip} daddr @lan${f} accept`) : [];
  const dnsPort = skeleton ? null : plan.ports.dns;
  const capPort = skeleton ? null : plan.ports.captured;

  // ---- filter_out: rejects, decided on original destinations.
  // Reply-direction packets (a local server answering, and the RST or ICMP error our own reject
  // sends back to the client) are not new outgoing traffic: never refuse them.
  const filter: string[] = ['ct direction reply accept', `jump ${CHAIN.exempt}`];
  // DNS: redirected to the forwarder by nat_out; with no forwarder (skeleton) it is refused, so
  // nothing resolves around switchyard while it is stopped.
  filter.push(dnsPort === null ? `meta l4proto { tcp, udp } th dport 53 goto ${CHAIN.deny}` : 'meta l4proto { tcp, udp } th dport 53 accept');
  filter.push(...loopback);
  // DoT and DoQ would hide names from the forwarder.
  filter.push(`meta l4proto { tcp, udp } th dport 853 goto ${CHAIN.deny}`);
  filter.push(...exemptDst, ...lanDst);
  filter.push(...bothFamilies((ip, f) => `${ip} daddr @blocked${f} goto ${CHAIN.deny}`));
  filter.push(...bothFamilies((ip, f) => `${ip} daddr @blockcidr${f} goto ${CHAIN.deny}`));
  // DoH hides names in HTTPS; refusing its port (TCP and QUIC) makes browsers fall back to system DNS.
  if (doh) filter.push(...bothFamilies((ip, f) => `meta l4proto { tcp, udp } th dport 443 ${ip} daddr @doh${f} goto ${CHAIN.deny}`));
  if (plan.blockQuic) {
    filter.push(...bothFamilies((ip, f) => `udp dport 443 ${ip} daddr @captured${f} goto ${CHAIN.deny}`));
    filter.push(...bothFamilies((ip, f) => `udp dport 443 ${ip} daddr @static${f} goto ${CHAIN.deny}`));
  }
  for (const g of plan.groups) {
    const port = plan.ports.groups[g];
    // Transparent UDP is out of reach (no SO_ORIGINAL_DST for UDP): a selected app's UDP is refused.
    // A group without a listener (or any group in the skeleton) is refused outright.
    filter.push(port === undefined || skeleton ? `${inGroup(g)} goto ${CHAIN.deny}` : `${inGroup(g)} meta l4proto udp goto ${CHAIN.deny}`);
  }
  if (capPort === null) {
    filter.push(...bothFamilies((ip, f) => `${ip} daddr @captured${f} goto ${CHAIN.deny}`));
    filter.push(...bothFamilies((ip, f) => `${ip} daddr @static${f} goto ${CHAIN.deny}`));
  }
  if (plan.mode === 'all') filter.push(capPort === null ? `goto ${CHAIN.deny}` : `meta l4proto udp goto ${CHAIN.deny}`);

  // ---- nat_out: redirects (only the first packet of each connection comes here).
  const nat: string[] = [`jump ${CHAIN.exempt}`];
  if (dnsPort !== null) nat.push(`meta l4proto { tcp, udp } th dport 53 redirect to :${dnsPort}`);
  if (opts.canaryPort !== undefined && !skeleton) {
    for (const g of plan.groups) {
      if (plan.ports.groups[g] === undefined) continue;
      nat.push(`${inGroup(g)} ip daddr ${CANARY_ADDR} tcp dport ${CANARY_PORT} redirect to :${opts.canaryPort}`);
    }
  }
  nat.push(...loopback, ...exemptDst, ...lanDst);
  if (!skeleton) {
    for (const g of plan.groups) {
      const port = plan.ports.groups[g];
      if (port !== undefined) nat.push(`meta l4proto tcp ${inGroup(g)} redirect to :${port}`);
    }
    if (capPort !== null) {
      nat.push(...bothFamilies((ip, f) => `meta l4proto tcp ${ip} daddr @captured${f} redirect to :${capPort}`));
      nat.push(...bothFamilies((ip, f) => `meta l4proto tcp ${ip} daddr @static${f} redirect to :${capPort}`));
      if (plan.mode === 'all') nat.push(`meta l4proto tcp redirect to :${capPort}`);
    }
  }

  return {
    sets,
    chains: [
      { name: CHAIN.exempt, base: null, rules: exempt },
      { name: CHAIN.deny, base: null, rules: deny },
      { name: CHAIN.filter, base: 'type filter hook output priority -150; policy accept;', rules: filter },
      { name: CHAIN.nat, base: 'type nat hook output priority -100; policy accept;', rules: nat },
    ],
    cgroups,
  };
}

function renderSet(s: SetModel): string {
  const lines = [`\tset ${s.name} {`, `\t\ttype ${s.type}`];
  lines.push(s.kind === 'timeout' ? '\t\tflags timeout' : '\t\tflags interval\n\t\tauto-merge');
  if (s.elements.length > 0) lines.push(`\t\telements = { ${s.elements.join(', ')} }`);
  lines.push('\t}');
  return lines.join('\n');
}

function renderChain(c: ChainModel): string {
  const lines = [`\tchain ${c.name} {`];
  if (c.base) lines.push(`\t\t${c.base}`);
  for (const r of c.rules) lines.push(`\t\t${r}`);
  lines.push('\t}');
  return lines.join('\n');
}

/** The table definition alone (no delete, no elements). */
export function renderTable(model: TableModel): string {
  const parts = [`table ${TABLE_REF} {`];
  for (const s of model.sets) parts.push(renderSet(s));
  for (const c of model.chains) parts.push(renderChain(c));
  parts.push('}');
  return parts.join('\n');
}

/** `add element` lines, one per set (one batch line each). */
export function renderElements(elements: SetElement[]): string[] {
  const bySet = new Map<string, string[]>();
  for (const e of elements) {
    const t = Math.max(1, Math.round(e.timeoutSec));
    const x = Math.max(1, Math.min(t, Math.round(e.expiresSec)));
    const list = bySet.get(e.set) ?? [];
    // Always with `expires`: re-adding an existing element with the same `timeout` alone leaves its
    // expiry where it was (checked on kernel 6.18, nft 1.0.6), so a refresh would silently not happen.
    list.push(`${e.value} timeout ${t}s expires ${x}s`);
    bySet.set(e.set, list);
  }
  return [...bySet].map(([set, items]) => `add element ${TABLE_REF} ${set} { ${items.join(', ')} }`);
}

/**
 * The whole transaction: create-if-missing, delete, create, re-add carried elements — one batch,
 * so the kernel switches from the old table to the new one atomically (or changes nothing).
 */
export function renderScript(plan: RedirectPlan, opts: RenderOptions): { script: string; model: TableModel } {
  const model = buildModel(plan, opts);
  const lines = [
    `# switchyard ${opts.mode} ruleset — generated, do not edit`,
    `table ${TABLE_REF}`,
    `delete table ${TABLE_REF}`,
    renderTable(model),
    ...renderElements(opts.carried ?? []),
  ];
  return { script: lines.join('\n') + '\n', model };
}

/**
 * `--dry-run`: the script apply() would run, without touching the OS. Paths and levels assume the
 * cgroup2 root is the hierarchy root (the usual case; apply() computes them from the real mount).
 */
export function dryRunScript(plan: RedirectPlan, cgroupRoot = 'switchyard', mode: 'active' | 'skeleton' = 'active'): string {
  const root = cgroupRoot.replace(/^\/+|\/+$/g, '');
  const names: CgroupNames = {
    nftPath: (g) => `${root}/${groupDirName(g)}`,
    level: (g) => `${root}/${groupDirName(g)}`.split('/').length,
  };
  return renderScript(plan, { mode, cgroups: names }).script;
}
