// The WFP filter plan for a config, as plain data: which filters exist, in which session, with which
// weight and conditions. Pure; the backend turns it into FwpmFilterAdd0 calls (src/sys/windows/wfp.ts)
// in one transaction per session. Everything lives in switchyard's own sublayer, so the kill-switch
// block and the daemon's permit are weighed against each other and nothing else: a block in another
// sublayer would win over our permit (WFP lets a block in any sublayer override a permit).
//
// Weights inside the sublayer (higher is evaluated first; the first match decides):
//   15 exempt        permit   persistent   exempt apps and exempt CIDRs (egress cores, `exempt` table)
//   14 loopback      permit   persistent   loopback traffic never touched
//   13 lan           permit   persistent   LAN destinations, when [enforce] lan = "direct"
//   12 block#N       block    persistent   `block` rules without domains (app/CIDR/port/protocol)
//   10 essentials    permit   persistent   mode "all": DHCP (UDP 67/68, 546/547), so the machine keeps
//                                          its address while the daemon is down
//    9 self          permit   DYNAMIC      the daemon's own executable, every protocol
//    8 selected      permit   DYNAMIC      selected apps (mode "all": everyone), TCP only — WinDivert
//                                          reflects their connections to the transparent listeners
//    4 kill-switch   block    persistent   selected apps (mode "all": everyone), every protocol
// The permit at 8 is TCP only on purpose: only TCP is reflected on Windows, so a selected app's UDP
// (QUIC included) meets the kill-switch and is blocked rather than leaving directly.
//
// When the daemon dies, WFP deletes its dynamic session's filters (9 and 8) and the persistent
// kill-switch (4) blocks the selected apps: fail closed. `down` deletes everything by provider key.
//
// App patterns: WFP matches an app id derived from the full path. A `path` pattern is used as is; a
// `name` or `glob` pattern gets its filters once a matching path has been seen (the backend passes
// the paths seen so far, and re-applies when a new one appears); until then it is listed in
// `waitingForPath`. A `group` pattern names switchyard's own grouping, which has no WFP form.
import type { AppPattern, Cidr, Config, EgressConfig, PortRange, RuleConfig } from '../../policy/types.ts';
import { WFP_PROVIDER_GUID, WFP_PROVIDER_NAME, WFP_SUBLAYER_GUID, WFP_SUBLAYER_NAME, WFP_SUBLAYER_WEIGHT } from '../../ids.ts';
import { nameGuid } from '../../sys/windows/guid.ts';
import type { WfpCondition, WfpFilterSpec, WfpLayer, WfpProviderSpec, WfpSublayerSpec } from '../../sys/windows/wfp.ts';

export const WEIGHT = {
  exempt: 15,
  loopback: 14,
  lan: 13,
  block: 12,
  essentials: 10,
  self: 9,
  selected: 8,
  killSwitch: 4,
} as const;

/** LAN destinations for `lan = "direct"`: private, link-local, multicast (IPv4 and IPv6). */
export const LAN_CIDRS: readonly Cidr[] = [
  { family: 4, address: '10.0.0.0', prefix: 8 },
  { family: 4, address: '172.16.0.0', prefix: 12 },
  { family: 4, address: '192.168.0.0', prefix: 16 },
  { family: 4, address: '169.254.0.0', prefix: 16 },
  { family: 4, address: '224.0.0.0', prefix: 4 },
  { family: 6, address: 'fc00::', prefix: 7 },
  { family: 6, address: 'fe80::', prefix: 10 },
  { family: 6, address: 'ff00::', prefix: 8 },
];

export interface WfpPlan {
  provider: WfpProviderSpec;
  sublayer: WfpSublayerSpec;
  /** Added in the persistent session: they stay when the daemon stops or crashes. */
  persistent: WfpFilterSpec[];
  /** Added in the dynamic session: they go with the daemon. */
  dynamic: WfpFilterSpec[];
  /** App patterns (as written) that have no known path yet, so no filter. */
  waitingForPath: string[];
}

export interface PlanInputs {
  /** Full paths of executables seen so far (process starts, connections); used for name/glob patterns. */
  seenPaths?: Iterable<string>;
  /** The daemon's own executable (process.execPath), permitted while it runs. */
  selfExe?: string;
}

const LAYERS: readonly WfpLayer[] = ['v4', 'v6'];

function egressType(config: Config, name: string): EgressConfig['type'] {
  if (name === 'direct') return 'direct';
  if (name === 'block') return 'block';
  return config.egress[name]?.type ?? 'block';
}

/** Windows paths compare case-insensitively; `/` and `\` are the same separator. */
export function normPath(p: string): string {
  return p.replaceAll('/', '\\').toLowerCase();
}

function baseName(p: string): string {
  const n = normPath(p);
  return n.slice(n.lastIndexOf('\\') + 1);
}

function globToRegExp(glob: string): RegExp {
  let re = '';
  const g = normPath(glob);
  for (let i = 0; i < g.length; i++) {
    const ch = g[i]!;
    if (ch === '*') {
      if (g[i + 1] === '*') {
        re += '.*';
        i++;
      } else re += '[^\\\\]*';
    } else if (ch === '?') re += '[^\\\\]';
    else re += ch.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

/** The paths an app pattern stands for now, or null when it has no WFP form (groups). */
export function resolveApp(p: AppPattern, seen: readonly string[]): string[] | null {
  switch (p.kind) {
    case 'path':
      // The config parser writes paths with `/`; WFP's app ids are made from Win32 paths.
      return [p.value.replaceAll('/', '\\')];
    case 'name': {
      const want = p.value.toLowerCase();
      return seen.filter((s) => baseName(s) === want);
    }
    case 'glob': {
      const re = globToRegExp(p.value);
      return seen.filter((s) => re.test(normPath(s)));
    }
    case 'group':
      return null;
  }
}

function describeApp(p: AppPattern): string {
  return `${p.kind}:${p.value}`;
}

function uniq(xs: string[]): string[] {
  const seen = new Map<string, string>();
  for (const x of xs) if (!seen.has(normPath(x))) seen.set(normPath(x), x);
  return [...seen.values()].sort((a, b) => normPath(a).localeCompare(normPath(b)));
}

interface AppSet {
  paths: string[];
  waiting: string[];
  /** The rule named apps but none resolves to a path (yet). */
  unresolved: boolean;
}

function appsOf(patterns: readonly AppPattern[], seen: readonly string[]): AppSet {
  const paths: string[] = [];
  const waiting: string[] = [];
  for (const p of patterns) {
    const r = resolveApp(p, seen);
    if (r === null) continue;
    if (r.length === 0) waiting.push(describeApp(p));
    paths.push(...r);
  }
  return { paths: uniq(paths), waiting, unresolved: patterns.length > 0 && paths.length === 0 };
}

function cidrsFor(cidrs: readonly Cidr[], layer: WfpLayer): Cidr[] {
  return cidrs.filter((c) => (layer === 'v4' ? c.family === 4 : c.family === 6));
}

function filter(name: string, layer: WfpLayer, action: 'block' | 'permit', weight: number, conditions: WfpCondition[]): WfpFilterSpec {
  const display = `switchyard: ${name} (${layer === 'v4' ? 'IPv4' : 'IPv6'})`;
  return { key: nameGuid(WFP_PROVIDER_GUID, display), name: display, layer, action, weight, conditions };
}

const appConds = (paths: readonly string[]): WfpCondition[] => paths.map((path) => ({ field: 'appId', path }));
const addrConds = (cidrs: readonly Cidr[]): WfpCondition[] => cidrs.map((cidr) => ({ field: 'remoteAddress', cidr }));
const portConds = (ports: readonly PortRange[]): WfpCondition[] => ports.map((r) => ({ field: 'remotePort', from: r.from, to: r.to }));

function blockRuleFilters(rule: RuleConfig, seen: readonly string[], waiting: string[]): WfpFilterSpec[] {
  // Domain conditions cannot be expressed in WFP; the DNS forwarder and the front door enforce them.
  if (rule.domains.length > 0) return [];
  const apps = appsOf(rule.apps, seen);
  waiting.push(...apps.waiting);
  if (apps.unresolved) return [];
  const id = rule.name ?? `rule#${rule.index + 1}`;
  const out: WfpFilterSpec[] = [];
  for (const layer of LAYERS) {
    const cidrs = cidrsFor(rule.cidrs, layer);
    if (rule.cidrs.length > 0 && cidrs.length === 0) continue; // the rule's addresses are all of the other family
    const conds: WfpCondition[] = [...appConds(apps.paths), ...addrConds(cidrs), ...portConds(rule.ports)];
    if (rule.network) conds.push({ field: 'protocol', protocol: rule.network === 'tcp' ? 6 : 17 });
    // A block rule with no condition WFP can express would block everything: leave it to the front.
    if (conds.length === 0) continue;
    out.push(filter(`block ${id}`, layer, 'block', WEIGHT.block, conds));
  }
  return out;
}

export function buildWfpPlan(config: Config, inputs: PlanInputs = {}): WfpPlan {
  const seen = uniq([...(inputs.seenPaths ?? [])]);
  const waiting: string[] = [];
  const persistent: WfpFilterSpec[] = [];
  const dynamic: WfpFilterSpec[] = [];
  const all = config.enforce.mode === 'all';

  // Exempt apps and CIDRs.
  const exemptApps = appsOf(config.exempt.flatMap((e) => e.apps), seen);
  waiting.push(...exemptApps.waiting);
  const exemptCidrs = config.exempt.flatMap((e) => e.cidrs);
  for (const layer of LAYERS) {
    if (exemptApps.paths.length) persistent.push(filter('exempt apps', layer, 'permit', WEIGHT.exempt, appConds(exemptApps.paths)));
    const c = cidrsFor(exemptCidrs, layer);
    if (c.length) persistent.push(filter('exempt destinations', layer, 'permit', WEIGHT.exempt, addrConds(c)));
    persistent.push(filter('loopback', layer, 'permit', WEIGHT.loopback, [{ field: 'loopback' }]));
    if (config.enforce.lan === 'direct') persistent.push(filter('lan', layer, 'permit', WEIGHT.lan, addrConds(cidrsFor(LAN_CIDRS, layer))));
  }

  // Block rules.
  for (const rule of config.rules) {
    if (egressType(config, rule.egress) === 'block') persistent.push(...blockRuleFilters(rule, seen, waiting));
  }

  // Selected apps: named by a rule whose egress is not direct or block.
  const selected = appsOf(
    config.rules.filter((r) => !['direct', 'block'].includes(egressType(config, r.egress))).flatMap((r) => r.apps),
    seen,
  );
  waiting.push(...selected.waiting);

  for (const layer of LAYERS) {
    if (inputs.selfExe) dynamic.push(filter('self', layer, 'permit', WEIGHT.self, appConds([inputs.selfExe])));
    if (all) {
      const dhcp: WfpCondition[] = [{ field: 'protocol', protocol: 17 }, { field: 'remotePort', ...(layer === 'v4' ? { from: 67, to: 68 } : { from: 546, to: 547 }) }];
      persistent.push(filter('essentials (DHCP)', layer, 'permit', WEIGHT.essentials, dhcp));
      dynamic.push(filter('selected: everyone, TCP', layer, 'permit', WEIGHT.selected, [{ field: 'protocol', protocol: 6 }]));
      persistent.push(filter('kill-switch: everyone', layer, 'block', WEIGHT.killSwitch, []));
    } else if (selected.paths.length) {
      dynamic.push(filter('selected apps, TCP', layer, 'permit', WEIGHT.selected, [...appConds(selected.paths), { field: 'protocol', protocol: 6 }]));
      persistent.push(filter('kill-switch: selected apps', layer, 'block', WEIGHT.killSwitch, appConds(selected.paths)));
    }
  }

  return {
    provider: { key: WFP_PROVIDER_GUID.replace(/[{}]/g, ''), name: WFP_PROVIDER_NAME, persistent: true },
    sublayer: { key: WFP_SUBLAYER_GUID.replace(/[{}]/g, ''), name: WFP_SUBLAYER_NAME, weight: WFP_SUBLAYER_WEIGHT, persistent: true },
    persistent,
    dynamic,
    waitingForPath: [...new Set(waiting)].sort(),
  };
}
