// A brute-force reference for decide(), written independently of src/policy/engine: it checks
// every rule against the query with plain string and BigInt code, gives each full match a rank
// tuple, and takes the smallest. Slow and obvious on purpose — it is the specification in code.
import type { Config, FlowQuery, RuleConfig } from '../../src/policy/types.ts';
import { domainToASCII } from 'node:url';

export interface RefDecision {
  egress: string;
  stage: string;
  ruleIndex: number | null; // config rule index; -1 for exempt/lan pseudo-rules
}

function ipToBig(ip: string): { fam: 4 | 6; v: bigint } | null {
  let s = ip.replace(/^\[|\]$/g, '');
  const m4 = /^(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(s);
  if (m4) return { fam: 4, v: m4.slice(1).reduce((a, x) => a * 256n + BigInt(x), 0n) };
  if (!s.includes(':')) return null;
  let tail4: bigint | null = null;
  const last = s.slice(s.lastIndexOf(':') + 1);
  if (last.includes('.')) {
    const t = ipToBig(last);
    if (!t) return null;
    tail4 = t.v;
    s = s.slice(0, s.lastIndexOf(':') + 1) + ((t.v >> 16n).toString(16)) + ':' + ((t.v & 0xffffn).toString(16));
  }
  void tail4;
  const [a, b] = s.split('::');
  const ha = a ? a.split(':') : [];
  const hb = b !== undefined ? (b ? b.split(':') : []) : [];
  const groups = b === undefined ? ha : [...ha, ...Array(8 - ha.length - hb.length).fill('0'), ...hb];
  if (groups.length !== 8) return null;
  const v = groups.reduce((acc, g) => acc * 65536n + BigInt(parseInt(g, 16)), 0n);
  if (v >> 32n === 0xffffn) return { fam: 4, v: v & 0xffffffffn }; // IPv4-mapped
  return { fam: 6, v };
}

function inCidr(ip: string, cidr: { family: 4 | 6; address: string; prefix: number }): boolean {
  const a = ipToBig(ip);
  const n = ipToBig(cidr.address);
  if (!a || !n || a.fam !== cidr.family || n.fam !== cidr.family) return false;
  const bits = BigInt(cidr.family === 4 ? 32 : 128);
  const shift = bits - BigInt(cidr.prefix);
  return a.v >> shift === n.v >> shift;
}

function isLan(ip: string): boolean {
  const nets: [4 | 6, string, number][] = [
    [4, '127.0.0.0', 8], [4, '10.0.0.0', 8], [4, '172.16.0.0', 12], [4, '192.168.0.0', 16], [4, '169.254.0.0', 16],
    [6, '::1', 128], [6, 'fe80::', 10], [6, 'fc00::', 7],
  ];
  return nets.some(([family, address, prefix]) => inCidr(ip, { family, address, prefix }));
}

function normDomain(d: string): string {
  const s = d.endsWith('.') ? d.slice(0, -1) : d;
  return /[^\x00-\x7f]/.test(s) ? domainToASCII(s) || s.toLowerCase() : s.toLowerCase();
}

function baseName(p: string): string {
  const parts = p.split(/[\\/]/).filter((x) => x !== '');
  return (parts[parts.length - 1] ?? '').toLowerCase();
}

function normExe(p: string): string {
  return /^[A-Za-z]:[\\/]/.test(p) || p.includes('\\') ? p.replaceAll('\\', '/').toLowerCase() : p;
}

function globMatch(glob: string, s: string): boolean {
  // Recursive matcher: ** any, * any but '/', ? one but '/'.
  const go = (i: number, j: number): boolean => {
    if (i === glob.length) return j === s.length;
    if (glob.startsWith('**', i)) {
      for (let k = j; k <= s.length; k++) if (go(i + 2, k)) return true;
      return false;
    }
    if (glob[i] === '*') {
      for (let k = j; k <= s.length; k++) {
        if (go(i + 1, k)) return true;
        if (s[k] === '/') return false;
      }
      return false;
    }
    if (j >= s.length) return false;
    if (glob[i] === '?') return s[j] !== '/' && go(i + 1, j + 1);
    return glob[i] === s[j] && go(i + 1, j + 1);
  };
  return go(0, 0);
}

/** App match: returns the kind rank (path 3, name 2, glob 1, group 0) or -1. */
function appRank(p: RuleConfig['apps'][number], q: FlowQuery): number {
  const name = q.process !== undefined && q.process !== '' ? baseName(q.process) : q.exe ? baseName(q.exe) : null;
  const exe = q.exe ? normExe(q.exe) : null;
  switch (p.kind) {
    case 'path': return exe !== null && exe === p.value ? 3 : -1;
    case 'name': return name !== null && name === p.value ? 2 : -1;
    case 'glob': {
      const subject = p.value.includes('/') ? exe : name;
      return subject !== null && globMatch(p.value, subject) ? 1 : -1;
    }
    case 'group': return q.group === p.value ? 0 : -1;
  }
}

function domainSpec(p: RuleConfig['domains'][number], d: string): number {
  switch (p.kind) {
    case 'full': return d === p.value ? 1000 : -1;
    case 'suffix': return d === p.value || d.endsWith('.' + p.value) ? 1 + p.value.split('.').length : -1;
    case 'keyword': return d.includes(p.value) ? 0 : -1;
    case 'regexp': return new RegExp(p.value).test(d) ? 0 : -1;
  }
}

const KIND_ORDER = { domain: 0, cidr: 1, app: 2, other: 3 } as const;

export function referenceDecide(c: Config, q: FlowQuery): RefDecision {
  // exempt
  const exempts = [...c.exempt, ...(c.enforce.exemptUsers.length ? [{ apps: [], users: c.enforce.exemptUsers, cidrs: [] }] : [])];
  for (const e of exempts) {
    if (e.apps.some((p) => appRank(p, q) >= 0)) return { egress: 'direct', stage: 'exempt', ruleIndex: -1 };
    if (q.user !== undefined && e.users.includes(q.user)) return { egress: 'direct', stage: 'exempt', ruleIndex: -1 };
    if (q.ip !== undefined && e.cidrs.some((x) => inCidr(q.ip!, x))) return { egress: 'direct', stage: 'exempt', ruleIndex: -1 };
  }
  if (c.enforce.lan === 'direct' && q.ip !== undefined && isLan(q.ip)) return { egress: 'direct', stage: 'lan', ruleIndex: -1 };
  const d = q.domain ? normDomain(q.domain) : null;
  let best: { key: number[]; r: RuleConfig; kind: keyof typeof KIND_ORDER } | null = null;
  for (const r of c.rules) {
    // Every condition kind present must match.
    let dSpec = -1;
    if (r.domains.length) {
      if (d === null) continue;
      dSpec = Math.max(...r.domains.map((p) => domainSpec(p, d)));
      if (dSpec < 0) continue;
    }
    let cSpec = -1;
    if (r.cidrs.length) {
      if (q.ip === undefined) continue;
      const hits = r.cidrs.filter((x) => inCidr(q.ip!, x)).map((x) => x.prefix);
      if (!hits.length) continue;
      cSpec = Math.max(...hits);
    }
    let aSpec = -1;
    if (r.apps.length) {
      aSpec = Math.max(...r.apps.map((p) => appRank(p, q)));
      if (aSpec < 0) continue;
    }
    if (r.ports.length && (q.port === undefined || !r.ports.some((p) => q.port! >= p.from && q.port! <= p.to))) continue;
    if (r.network !== null && r.network !== q.network) continue;
    const kind = r.domains.length ? 'domain' : r.cidrs.length ? 'cidr' : r.apps.length ? 'app' : 'other';
    const spec = kind === 'domain' ? dSpec : kind === 'cidr' ? cSpec : kind === 'app' ? aSpec : 0;
    const conds = [r.domains.length, r.apps.length, r.cidrs.length, r.ports.length].filter((n) => n > 0).length + (r.network ? 1 : 0);
    const isBlock = c.egress[r.egress]?.type === 'block';
    const key = [isBlock ? 0 : 1, KIND_ORDER[kind], -spec, -conds, r.index];
    if (best === null || less(key, best.key)) best = { key, r, kind };
  }
  // The implicit rule group:NAME → NAME for every egress, below every configured rule.
  if (best === null && q.group !== undefined && Object.hasOwn(c.egress, q.group)) return { egress: q.group, stage: 'app', ruleIndex: -1 };
  if (best === null) return { egress: c.default, stage: 'default', ruleIndex: null };
  return { egress: best.r.egress, stage: best.key[0] === 0 ? 'block' : best.kind, ruleIndex: best.r.index };
}

function less(a: number[], b: number[]): boolean {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i]! < b[i]!;
  return false;
}
