// Seeded, in-memory generator of big policies and query streams for bench/policy.bench.ts.
// Rules are built as `Config` objects directly (as rule lists will be), not through TOML: a config
// file is capped at 10 000 rules. Read-only parts (empty lists, origin) are shared between rules.
import type { AppPattern, Cidr, Config, FlowQuery, RuleConfig } from '../src/policy/types.ts';
import { loadConfigFromString, PackedRules } from '../src/policy/index.ts';
import { formatIPv4 } from '../src/policy/ip.ts';

export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const TLDS = ['com', 'net', 'org', 'ru', 'io', 'de', 'xn--p1ai', 'co.uk', 'info', 'dev'];
const SYL = ['ka', 'lo', 'mi', 'ne', 'ro', 'ta', 'vi', 'zu', 'be', 'do', 'fa', 'gi', 'ho', 'ju', 'pe', 'sa'];

function word(r: () => number, n: number): string {
  let s = '';
  for (let i = 0; i < n; i++) s += SYL[Math.floor(r() * SYL.length)]!;
  return s;
}

/** The i-th rule domain: unique by construction (i in base 36), realistic length. */
export function ruleDomain(i: number, r: () => number): string {
  return `${word(r, 2)}${i.toString(36)}.${TLDS[i % TLDS.length]}`;
}

export interface BenchSet {
  config: Config;
  domains: string[];
  apps: string[];
  counts: { domainRules: number; appRules: number; cidrRules: number; multi: number; keyword: number; regexp: number };
}

const EMPTY: never[] = [];
Object.freeze(EMPTY);

/**
 * `perRule` > 1 groups domain patterns into list-style rules of that many patterns each.
 * `packed`: one-pattern domain and CIDR rules are built as a PackedRules table (as a list loader
 * would deliver them: columns plus one small object per rule, origin {list, line}); otherwise as
 * plain RuleConfig objects (sharing empty arrays and one origin object).
 */
export function generate(domainRules: number, appRules: number, cidrRules: number, seed = 1, perRule = 1, packed = true): BenchSet {
  const r = rng(seed);
  const base = loadConfigFromString(
    `version = 1
default = "direct"
[egress.vpn]
type = "socks5"
endpoint = "socks5://127.0.0.1:1488"
[egress.dpi]
type = "socks5"
endpoint = "socks5://127.0.0.1:1080"
[[exempt]]
apps = ["sing-box", "ciadpi.exe"]
`,
    'bench',
  );
  const egresses = ['vpn', 'dpi', 'direct', 'vpn', 'dpi', 'block'];
  const pick = () => (r() < 0.02 ? 'block' : egresses[Math.floor(r() * 5)]!);
  const origin = { list: 'bench' };
  const rules: RuleConfig[] = [];
  const domains: string[] = [];
  let multi = 0;
  const add = (egress: string, d: RuleConfig['domains'], a: AppPattern[], c: Cidr[]) => {
    rules.push({ index: rules.length, name: null, egress, domains: d, apps: a, cidrs: c, ports: EMPTY, network: null, origin });
  };
  // Packed: domain (and keyword/regexp) rules in one table from index 0, CIDR rules in another.
  const pack = packed && perRule === 1;
  const domainTable = new PackedRules(origin, 0);
  const appConds = new Map<string, number>();
  const addDomain = (egress: string, p: RuleConfig['domains'][number], app: string | null) => {
    if (!pack) return add(egress, [p], app === null ? EMPTY : [{ kind: 'name', value: app }], EMPTY);
    let cond = 0;
    if (app !== null) {
      cond = appConds.get(app) ?? domainTable.appCondition([{ kind: 'name', value: app }]);
      appConds.set(app, cond);
    }
    domainTable.addDomain(egress, p, domainTable.size + 1, cond);
  };
  let group: RuleConfig['domains'] = [];
  for (let i = 0; i < domainRules; i++) {
    const d = ruleDomain(i, r);
    domains.push(d);
    const x = r();
    if (perRule > 1) {
      group.push(x < 0.9 ? { kind: 'suffix', value: d } : { kind: 'full', value: `www.${d}` });
      if (group.length === perRule) { add(pick(), group, EMPTY, EMPTY); group = []; }
    } else if (x < 0.9) addDomain(pick(), { kind: 'suffix', value: d }, null);
    else if (x < 0.99) addDomain(pick(), { kind: 'full', value: `www.${d}` }, null);
    else { addDomain(pick(), { kind: 'suffix', value: d }, `app${i % 50}.exe`); multi++; }
  }
  if (group.length) add(pick(), group, EMPTY, EMPTY);
  // A few scanned patterns: each costs every query one check (see docs/config.md).
  const keywords = ['tracker', 'telemetry', 'adserv', 'doubleclk', 'analytics-'];
  const regexps = ['^ads?[0-9]+\\.', '\\.cdn[0-9]+\\.example$', '^r[0-9]+---sn-[a-z0-9]+\\.googlevideo\\.com$'];
  for (const k of keywords) addDomain('block', { kind: 'keyword', value: k }, null);
  for (const re of regexps) addDomain('dpi', { kind: 'regexp', value: re }, null);
  if (pack) for (const rule of domainTable.rules()) rules.push(rule);
  const apps: string[] = [];
  for (let i = 0; i < appRules; i++) {
    const name = `${word(r, 3)}${i}.exe`;
    apps.push(name);
    const x = r();
    const p: AppPattern = x < 0.8 ? { kind: 'name', value: name } : x < 0.98 ? { kind: 'path', value: `c:/program files/${name.slice(0, -4)}/${name}` } : { kind: 'glob', value: `c:/games/${name.slice(0, 4)}*/**/*.exe` };
    add(pick(), EMPTY, [p], EMPTY);
  }
  const cidrTable = new PackedRules(origin, rules.length);
  for (let i = 0; i < cidrRules; i++) {
    const prefix = 8 + Math.floor(r() * 25);
    let c: Cidr;
    if (r() < 0.9) {
      const v = Math.floor(r() * 2 ** 32);
      const masked = prefix === 0 ? 0 : (v & ((0xffffffff << (32 - prefix)) >>> 0)) >>> 0;
      c = { family: 4, address: formatIPv4(masked), prefix };
    } else {
      const p6 = 16 + 4 * Math.floor(r() * 12);
      const hex = Array.from({ length: p6 / 4 }, () => Math.floor(r() * 16).toString(16)).join('').padEnd(32, '0');
      const groups = hex.match(/.{4}/g)!.map((g) => parseInt(g, 16).toString(16));
      c = { family: 6, address: groups.join(':'), prefix: p6 };
    }
    if (packed) cidrTable.addCidr(pick(), c, i + 1);
    else add(pick(), EMPTY, EMPTY, [c]);
  }
  if (packed) for (const rule of cidrTable.rules()) rules.push(rule);
  const config: Config = { ...base, rules };
  return { config, domains, apps, counts: { domainRules, appRules, cidrRules, multi, keyword: keywords.length, regexp: regexps.length } };
}

/**
 * The i-th query: a distinct name for every i (the counter is part of the name), half of them
 * under a rule's domain (hits at depth 1–3), half unrelated (misses walk every label).
 */
export function makeQuery(set: BenchSet, i: number, r: () => number): FlowQuery {
  const x = r();
  let domain: string;
  if (x < 0.5) {
    const d = set.domains[Math.floor(r() * set.domains.length)]!;
    domain = r() < 0.5 ? `q${i.toString(36)}.${d}` : `q${i.toString(36)}.cdn.${d}`;
  } else {
    domain = `q${i.toString(36)}.${word(r, 3)}.${TLDS[Math.floor(r() * TLDS.length)]}`;
  }
  const y = r();
  const process = y < 0.3 ? set.apps[Math.floor(r() * set.apps.length)]! : y < 0.35 ? `app${Math.floor(r() * 50)}.exe` : 'unknown.exe';
  const ip = `${1 + Math.floor(r() * 223)}.${Math.floor(r() * 256)}.${Math.floor(r() * 256)}.${Math.floor(r() * 256)}`;
  return { network: 'tcp', process, domain, ip, port: 443 };
}
