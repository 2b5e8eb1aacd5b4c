// sing-box rule-set source format (JSON), versions 1–4:
//   { "version": 3, "rules": [ { "domain_suffix": ["example.com"], "port": [443] }, ... ] }
// A headless default rule matches (domain || domain_suffix || domain_keyword || domain_regex ||
// ip_cidr) && (port || port_range) && process_name && process_path && network. Listable fields may
// be a single value instead of an array. Supported fields are below; everything else — logical
// rules, `invert: true`, source_*, process_path_regex, package_name, wifi_*, network_type … — is
// reported as unsupported (and with `unsupported = "skip"` the whole rule is skipped: dropping
// one ANDed condition would widen the rule).
import { ListError } from '../../errors.ts';
import { Collector, exportError } from '../collect.ts';
import { parseJson, typeName, type JNode } from '../json.ts';
import { appName, appPath, cidrText, full, keyword, portRange, portText, regexp, regexpToWildcard, singlePort, suffix, wildcardToRegexp } from '../normalize.ts';
import type { AppPattern, Cidr, DomainPattern, Network, PortRange } from '../../policy/types.ts';
import type { ListEntry } from '../types.ts';

export const SINGBOX_FIELDS = ['domain', 'domain_suffix', 'domain_keyword', 'domain_regex', 'ip_cidr', 'port', 'port_range', 'process_name', 'process_path', 'network', 'invert', 'type'] as const;

class Unsupported extends Error {}

function strings(node: JNode, field: string, c: Collector): { v: string; line: number }[] {
  const items = node.t === 'arr' ? node.items : [node];
  return items.map((it) => {
    if (it.t !== 'str') throw c.syntax(it.line, `"${field}" must hold strings, not ${typeName(it)}`);
    return { v: it.v, line: it.line };
  });
}

export function parseSingbox(text: string, c: Collector): void {
  const root = parseJson(text, { maxDepth: c.limits.maxJsonDepth, maxString: c.limits.maxLineLength }, c.where());
  if (root.t !== 'obj') throw c.syntax(root.line, `a rule-set is a JSON object, not ${typeName(root)}`);
  let version: JNode | undefined;
  let rules: JNode | undefined;
  for (const e of root.entries) {
    if (e.key === 'version') version = e.value;
    else if (e.key === 'rules') rules = e.value;
    else throw c.syntax(e.line, `unknown top-level key "${e.key}" (a rule-set has "version" and "rules")`);
  }
  if (!version) throw c.syntax(root.line, 'missing "version"');
  if (version.t !== 'num' || !Number.isInteger(version.v)) throw c.syntax(version.line, `"version" must be an integer, not ${typeName(version)}`);
  if (version.v < 1 || version.v > 4) {
    // Never skippable: a newer version may change what the fields mean.
    throw new ListError('SY_ERR_LIST_UNSUPPORTED', `rule-set version ${version.v} is not supported (1–4 are)`, c.where(version.line));
  }
  if (!rules) throw c.syntax(root.line, 'missing "rules"');
  if (rules.t !== 'arr') throw c.syntax(rules.line, `"rules" must be an array, not ${typeName(rules)}`);
  for (const r of rules.items) {
    if (r.t !== 'obj') throw c.syntax(r.line, `a rule must be an object, not ${typeName(r)}`);
    try {
      rule(r, c);
    } catch (e) {
      if (!(e instanceof Unsupported)) throw e;
      c.unsupported(r.line, e.message);
    }
  }
}

function rule(r: Extract<JNode, { t: 'obj' }>, c: Collector): void {
  const dest: { d?: DomainPattern; cidr?: Cidr; line: number }[] = [];
  const ports: PortRange[] = [];
  const names: AppPattern[] = [];
  const paths: AppPattern[] = [];
  let network: Network | undefined;
  for (const { key, line, value } of r.entries) {
    switch (key) {
      case 'type':
        if (value.t !== 'str') throw c.syntax(line, `"type" must be a string, not ${typeName(value)}`);
        if (value.v === 'logical') throw new Unsupported('logical rules (and/or of sub-rules) are not supported');
        if (value.v !== 'default') throw c.syntax(line, `unknown rule type "${value.v}"`);
        break;
      case 'invert':
        if (value.t !== 'bool') throw c.syntax(line, `"invert" must be a boolean, not ${typeName(value)}`);
        if (value.v) throw new Unsupported('"invert": true is not supported');
        break;
      case 'domain':
        for (const s of strings(value, key, c)) dest.push({ d: c.value(s.line, () => full(s.v)), line: s.line });
        break;
      case 'domain_suffix':
        // sing-box ≥ 1.9: `.x` is a literal suffix (subdomains only); `x` is x and its subdomains.
        for (const s of strings(value, key, c)) {
          dest.push({ d: c.value(s.line, () => (s.v.startsWith('.') ? wildcardToRegexp(s.v) : suffix(s.v))), line: s.line });
        }
        break;
      case 'domain_keyword':
        for (const s of strings(value, key, c)) dest.push({ d: c.value(s.line, () => keyword(s.v)), line: s.line });
        break;
      case 'domain_regex':
        for (const s of strings(value, key, c)) dest.push({ d: c.value(s.line, () => regexp(s.v)), line: s.line });
        break;
      case 'ip_cidr':
        for (const s of strings(value, key, c)) dest.push({ cidr: c.cidr(s.line, s.v), line: s.line });
        break;
      case 'port': {
        const items = value.t === 'arr' ? value.items : [value];
        for (const it of items) {
          if (it.t !== 'num') throw c.syntax(it.line, `"port" must hold numbers, not ${typeName(it)}`);
          ports.push(c.value(it.line, () => singlePort(it.v)));
        }
        break;
      }
      case 'port_range':
        for (const s of strings(value, key, c)) ports.push(c.value(s.line, () => portRange(s.v, ':')));
        break;
      case 'process_name':
        for (const s of strings(value, key, c)) names.push(c.value(s.line, () => appName(s.v)));
        break;
      case 'process_path':
        for (const s of strings(value, key, c)) paths.push(c.value(s.line, () => appPath(s.v)));
        break;
      case 'network': {
        const nets = new Set(strings(value, key, c).map((s) => {
          if (s.v !== 'tcp' && s.v !== 'udp') throw c.syntax(s.line, `"network" must be "tcp" or "udp", not "${s.v}"`);
          return s.v;
        }));
        network = nets.size === 1 ? [...nets][0] : undefined;
        break;
      }
      default:
        throw new Unsupported(`field "${key}" is not supported (supported: ${SINGBOX_FIELDS.join(', ')})`);
    }
  }
  if (names.length && paths.length) {
    // process_name and process_path are separate ANDed items in sing-box; one entry ORs its apps.
    throw new Unsupported('process_name together with process_path (both must match) is not supported');
  }
  const apps = names.length ? names : paths;
  if (!dest.length && !apps.length && !ports.length) {
    throw c.syntax(r.line, 'a rule with no supported condition would match everything');
  }
  const base: Omit<ListEntry, 'line'> = {};
  if (apps.length) base.apps = apps;
  if (ports.length) base.ports = ports;
  if (network) base.network = network;
  if (!dest.length) {
    c.push({ line: r.line, ...base });
    return;
  }
  for (const d of dest) {
    const e: ListEntry = { line: d.line, ...base };
    if (d.d) e.domain = d.d;
    if (d.cidr) e.cidr = d.cidr;
    c.push(e);
  }
}

/** Groups entries that share apps/ports/network into one headless rule each, in first-seen order. */
export function exportSingbox(entries: readonly ListEntry[]): string {
  const groups = new Map<string, Record<string, unknown[]> & { _order: number }>();
  const add = (e: ListEntry, apps: AppPattern[]): void => {
    if (e.block) throw exportError('singbox', e, 'only netrulerouter lists can mark an entry +block');
    const names = apps.filter((a) => a.kind === 'name').map((a) => a.value);
    const paths = apps.filter((a) => a.kind === 'path').map((a) => a.value);
    const key = JSON.stringify([names, paths, e.ports ?? [], e.network ?? null]);
    let g = groups.get(key);
    if (!g) {
      g = Object.assign(Object.create(null) as Record<string, unknown[]>, { _order: groups.size });
      if (names.length) g.process_name = names;
      if (paths.length) g.process_path = paths;
      const single = (e.ports ?? []).filter((p) => p.from === p.to).map((p) => p.from);
      const ranges = (e.ports ?? []).filter((p) => p.from !== p.to).map((p) => portText(p, ':'));
      if (single.length) g.port = single;
      if (ranges.length) g.port_range = ranges;
      if (e.network) g.network = [e.network];
      groups.set(key, g);
    }
    const push = (field: string, v: string): void => { (g[field] ??= []).push(v); };
    if (e.cidr) push('ip_cidr', cidrText(e.cidr));
    else if (e.domain) {
      const d = e.domain;
      if (d.kind === 'full') push('domain', d.value);
      else if (d.kind === 'suffix') push('domain_suffix', d.value);
      else if (d.kind === 'keyword') push('domain_keyword', d.value);
      else {
        const w = regexpToWildcard(d.value);
        if (w !== null && w.startsWith('.') && !w.includes('*')) push('domain_suffix', w);
        else push('domain_regex', d.value);
      }
    }
  };
  for (const e of entries) {
    const apps = e.apps ?? [];
    if (apps.some((a) => a.kind === 'glob' || a.kind === 'group')) throw exportError('singbox', e, 'sing-box has no app globs or groups');
    const names = apps.filter((a) => a.kind === 'name');
    const paths = apps.filter((a) => a.kind === 'path');
    // (dest) & (n | p) = (dest & n) | (dest & p): names and paths go to separate rules.
    if (names.length && paths.length) { add(e, names); add(e, paths); }
    else add(e, apps);
  }
  const order = ['domain', 'domain_suffix', 'domain_keyword', 'domain_regex', 'ip_cidr', 'port', 'port_range', 'process_name', 'process_path', 'network'];
  const rules = [...groups.values()].map((g) => {
    const r: Record<string, unknown> = {};
    for (const k of order) if (g[k]) r[k] = g[k];
    return r;
  });
  return JSON.stringify({ version: 3, rules }, null, 2) + '\n';
}
