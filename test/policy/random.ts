// Seeded random rule sets and queries for the differential and metamorphic tests. Vocabularies are
// small on purpose so that patterns overlap (suffix vs full vs keyword, nested CIDRs, app kinds).
import type { FlowQuery } from '../../src/policy/types.ts';

export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export class Rng {
  readonly next: () => number;
  constructor(seed: number) {
    this.next = mulberry32(seed);
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  pick<T>(a: readonly T[]): T {
    return a[this.int(a.length)]!;
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  some<T>(a: readonly T[], max: number): T[] {
    const n = 1 + this.int(max);
    return Array.from({ length: n }, () => this.pick(a));
  }
}

const LABELS = ['a', 'b', 'mail', 'ru', 'com', 'yt'];
export const EGRESSES = ['direct', 'block', 'vpn', 'dpi', 'deny'];
const APP_PATTERNS = ['zen.exe', 'curl', 'tg', '/usr/bin/curl', 'C:\\Apps\\Zen.exe', '/usr/bin/*', 'z*', 'group:vpn', '/opt/**/tg'];
const CIDRS = ['198.18.0.0/15', '198.18.0.0/16', '198.18.1.0/24', '198.18.1.7/32', '2001:db8::/32', '2001:db8:1::/48', '192.168.0.0/16', '0.0.0.0/0'];
const IPS = ['198.18.1.7', '198.18.1.9', '198.18.200.1', '198.19.0.1', '2001:db8:1::5', '2001:db8:2::5', '192.168.1.1', '::ffff:198.18.1.7', '203.0.113.9'];
const PROCS: { process?: string; exe?: string }[] = [
  { process: 'zen.exe' }, { process: 'ZEN.EXE' }, { exe: 'C:\\Apps\\Zen.exe' }, { exe: '/usr/bin/curl' }, { process: 'curl' },
  { exe: '/opt/x/y/tg' }, { process: 'tg' }, { process: 'other' }, {},
];

export function randomName(r: Rng): string {
  const n = 1 + r.int(3);
  return Array.from({ length: n }, () => r.pick(LABELS)).join('.');
}

function domainPattern(r: Rng): string {
  const k = r.int(10);
  if (k < 6) return randomName(r);
  if (k < 8) return `full:${randomName(r)}`;
  if (k < 9) return `keyword:${r.pick(['ai', 'ma', 'b.', 'yt'])}`;
  return `regexp:${r.pick(['^a\\.', 'ru$', '^(mail|yt)\\.', 'b\\.[a-z]+$'])}`;
}

export interface RandomRule {
  name: string;
  egress: string;
  domains?: string[];
  apps?: string[];
  cidrs?: string[];
  ports?: (number | string)[];
  network?: 'tcp' | 'udp';
}

export function randomRule(r: Rng, name: string): RandomRule {
  const rule: RandomRule = { name, egress: r.pick(EGRESSES) };
  for (;;) {
    if (r.chance(0.5)) rule.domains = Array.from({ length: 1 + r.int(3) }, () => domainPattern(r));
    if (r.chance(0.3)) rule.apps = r.some(APP_PATTERNS, 2);
    if (r.chance(0.25)) rule.cidrs = r.some(CIDRS, 2);
    if (r.chance(0.15)) rule.ports = r.pick([[443], ['80-90'], [53, '1000-2000']]);
    if (r.chance(0.1)) rule.network = r.pick(['tcp', 'udp'] as const);
    if (rule.domains || rule.apps || rule.cidrs || rule.ports || rule.network) return rule;
  }
}

export function ruleToToml(rule: RandomRule): string {
  const lines = ['[[rule]]', `name = ${JSON.stringify(rule.name)}`, `egress = ${JSON.stringify(rule.egress)}`];
  for (const k of ['domains', 'apps', 'cidrs', 'ports'] as const) if (rule[k]) lines.push(`${k} = ${JSON.stringify(rule[k])}`);
  if (rule.network) lines.push(`network = "${rule.network}"`);
  return lines.join('\n');
}

export function randomConfigToml(r: Rng, rules: RandomRule[]): string {
  const head = [
    'version = 1',
    `default = ${JSON.stringify(r.pick(['direct', 'vpn']))}`,
    '[enforce]',
    `lan = ${JSON.stringify(r.pick(['direct', 'policy']))}`,
    '[egress.vpn]', 'type = "socks5"', 'endpoint = "socks5://127.0.0.1:1488"',
    '[egress.dpi]', 'type = "http"', 'endpoint = "http://127.0.0.1:8080"',
    '[egress.deny]', 'type = "block"',
  ];
  if (r.chance(0.5)) head.push('[[exempt]]', `apps = ${JSON.stringify(r.some(['tg', 'curl', '/usr/bin/*'], 1))}`);
  return [...head, ...rules.map(ruleToToml)].join('\n') + '\n';
}

export function randomQuery(r: Rng): FlowQuery {
  const q: FlowQuery = { network: r.pick(['tcp', 'udp'] as const), ...r.pick(PROCS) };
  if (r.chance(0.8)) q.domain = r.chance(0.1) ? randomName(r).toUpperCase() + '.' : randomName(r);
  if (r.chance(0.5)) q.ip = r.pick(IPS);
  if (r.chance(0.5)) q.port = r.pick([443, 80, 85, 53, 1500, 8080]);
  if (r.chance(0.2)) q.group = r.pick(['vpn', 'dpi']);
  return q;
}
