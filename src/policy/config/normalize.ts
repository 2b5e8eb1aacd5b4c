// Turns the parsed TOML object (v1 shape) into the normalised `Config`: limits first (cheap, and a
// 10 000-rule file should say "too many rules", not list 10 000 problems), then the zod shape, then
// the meaning of every string. All problems are collected with their key paths.
import type { z } from 'zod';
import type {
  AppPattern,
  Cidr,
  Config,
  ControlConfig,
  DnsConfig,
  DomainPattern,
  EgressConfig,
  EnforceConfig,
  ExemptConfig,
  HealthConfig,
  InboundConfig,
  PortRange,
  ListConfig,
  RuleConfig,
} from '../types.ts';
import { parseCidr } from '../ip.ts';
import { parseAppPattern, parseDomainPattern, parsePortSpec, PatternTooLong, normalizeDomainName } from '../patterns.ts';
import { checkUpstreamUrl, parseHostPort, parseProxyUrl } from './endpoint.ts';
import { Issues } from './issues.ts';
import type { KeyPath, LineIndex } from './locate.ts';
import {
  MAX_EGRESSES,
  MAX_EXEMPT,
  MAX_PATTERNS_PER_RULE,
  MAX_PATTERNS_TOTAL,
  MAX_RULES,
} from './limits.ts';
import {
  configSchema,
  controlSchema,
  dnsSchema,
  enforceSchema,
  inboundSchema,
  type RawConfig,
  type RawEgress,
  type RawList,
} from './schema.ts';

export const BUILTIN_EGRESSES = ['direct', 'block'] as const;
const EGRESS_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;
const LIST_KEYS = ['domains', 'apps', 'cidrs', 'ports', 'users'] as const;

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Count limits, checked on the raw object before anything else. */
export function checkLimits(raw: unknown, issues: Issues): void {
  if (!isObj(raw)) return;
  let total = 0;
  const lists = (key: 'rule' | 'exempt') => {
    const arr = raw[key];
    if (!Array.isArray(arr)) return;
    arr.forEach((entry, i) => {
      if (!isObj(entry)) return;
      for (const k of LIST_KEYS) {
        const l = entry[k];
        if (!Array.isArray(l)) continue;
        total += l.length;
        if (l.length > MAX_PATTERNS_PER_RULE) {
          issues.add([key, i, k], `${l.length} entries; at most ${MAX_PATTERNS_PER_RULE} per list (put big sets in lists)`, 'SY_ERR_CONFIG_TOO_MANY_PATTERNS');
        }
      }
    });
  };
  if (Array.isArray(raw.rule) && raw.rule.length > MAX_RULES) {
    issues.add(['rule'], `${raw.rule.length} rules; at most ${MAX_RULES} per config file (put big sets in lists)`, 'SY_ERR_CONFIG_TOO_MANY_RULES');
  }
  if (Array.isArray(raw.exempt) && raw.exempt.length > MAX_EXEMPT) {
    issues.add(['exempt'], `${raw.exempt.length} [[exempt]] entries; at most ${MAX_EXEMPT}`, 'SY_ERR_CONFIG_LIMIT');
  }
  if (isObj(raw.egress) && Object.keys(raw.egress).length > MAX_EGRESSES) {
    issues.add(['egress'], `${Object.keys(raw.egress).length} egresses; at most ${MAX_EGRESSES}`, 'SY_ERR_CONFIG_LIMIT');
  }
  lists('rule');
  lists('exempt');
  if (total > MAX_PATTERNS_TOTAL) {
    issues.add([], `${total} patterns in all; at most ${MAX_PATTERNS_TOTAL} per config file (put big sets in lists)`, 'SY_ERR_CONFIG_TOO_MANY_PATTERNS');
  }
}

function zodIssues(err: z.ZodError, issues: Issues, base: KeyPath = []): void {
  for (const i of err.issues) {
    const path = [...base, ...(i.path as (string | number)[])];
    if (i.code === 'unrecognized_keys') {
      for (const k of i.keys) issues.add([...path, k], `unknown key '${clip(k)}'`);
    } else if (i.code === 'invalid_type') {
      const got = describeValue(i.input, path);
      issues.add(path, got === 'missing' ? `required key is missing (expected ${i.expected})` : `expected ${i.expected}, got ${got}`);
    } else if (i.code === 'invalid_value') {
      issues.add(path, `must be one of ${i.values.map((v) => JSON.stringify(v)).join(', ')}`);
    } else {
      issues.add(path, i.message);
    }
  }
}

function describeValue(v: unknown, _path: KeyPath): string {
  if (v === undefined) return 'missing';
  if (Array.isArray(v)) return 'an array';
  if (v === null) return 'null';
  if (typeof v === 'object') return v instanceof Date || (v as object).constructor?.name === 'TomlDate' ? 'a date' : 'a table';
  return `${typeof v} ${JSON.stringify(v)?.slice(0, 40)}`;
}

export interface NormalizeResult {
  config: Config | null;
  issues: Issues;
}

export function normalizeConfig(raw: unknown, source: string, lines: LineIndex | null, notices: string[]): NormalizeResult {
  const issues = new Issues();
  checkLimits(raw, issues);
  if (!issues.empty) return { config: null, issues };
  const parsed = configSchema.safeParse(raw, { reportInput: true });
  if (!parsed.success) {
    zodIssues(parsed.error, issues);
    return { config: null, issues };
  }
  const r = parsed.data;
  const rawObj = raw as Record<string, unknown>;

  const egress = normalizeEgresses(r, rawObj, issues);
  const known = (name: string, path: KeyPath) => {
    if (!Object.hasOwn(egress, name)) {
      const declared = Object.keys(egress).join(', ');
      issues.add(path, `egress '${clip(name)}' is not declared (declared: ${declared}; add [egress.${EGRESS_NAME.test(name) ? name : '"…"'}])`);
      return false;
    }
    return true;
  };
  for (const [name, e] of Object.entries(egress)) {
    if (e.fallback !== null) {
      if (e.fallback === name) issues.add(['egress', name, 'fallback'], 'an egress cannot be its own fallback');
      else known(e.fallback, ['egress', name, 'fallback']);
    }
  }
  checkFallbackCycles(egress, issues);
  known(r.default, ['default']);

  const origin = (path: KeyPath) => {
    const line = lines?.lineOf(path);
    return { file: source, ...(line === undefined ? {} : { line }) };
  };

  const rules: RuleConfig[] = [];
  const names = new Map<string, number>();
  r.rule.forEach((rr, i) => {
    const path = ['rule', i];
    known(rr.egress, [...path, 'egress']);
    if (rr.name !== undefined) {
      const prev = names.get(rr.name);
      if (prev !== undefined) issues.add([...path, 'name'], `rule name '${clip(rr.name)}' is already used by rule[${prev}]`);
      else if (/^(rule|exempt)#\d+$/.test(rr.name)) issues.add([...path, 'name'], `'${rr.name}' looks like a generated id; choose another name`);
      names.set(rr.name, i);
    }
    const domains = (rr.domains ?? []).map((d, j) => domainPattern(d, [...path, 'domains', j], issues)).filter(notNull);
    const apps = (rr.apps ?? []).map((a, j) => appPattern(a, [...path, 'apps', j], issues)).filter(notNull);
    const cidrs = (rr.cidrs ?? []).map((c, j) => cidr(c, [...path, 'cidrs', j], issues)).filter(notNull);
    const ports = (rr.ports ?? []).map((p, j) => portRange(p, [...path, 'ports', j], issues)).filter(notNull);
    for (const k of ['domains', 'apps', 'cidrs', 'ports'] as const) {
      if (rr[k] !== undefined && rr[k].length === 0) issues.add([...path, k], `empty list: remove '${k}' or give at least one entry`);
    }
    if (!domains.length && !apps.length && !cidrs.length && !ports.length && rr.network === undefined && issues.empty) {
      issues.add(path, 'a rule needs at least one condition (domains, apps, cidrs, ports or network); use `default` for a catch-all');
    }
    rules.push({
      index: i,
      name: rr.name ?? null,
      egress: rr.egress,
      domains,
      apps,
      cidrs,
      ports,
      network: rr.network ?? null,
      origin: origin(path),
    });
  });

  const exempt: ExemptConfig[] = r.exempt.map((e, i) => {
    const path = ['exempt', i];
    const apps = (e.apps ?? []).map((a, j) => appPattern(a, [...path, 'apps', j], issues)).filter(notNull);
    const cidrs = (e.cidrs ?? []).map((c, j) => cidr(c, [...path, 'cidrs', j], issues)).filter(notNull);
    const users = (e.users ?? []).filter((u, j) => {
      if (u.length === 0 || u.length > 256) issues.add([...path, 'users', j], 'a user name is 1..256 characters');
      return u.length > 0;
    });
    if ((e.apps?.length ?? 0) + (e.cidrs?.length ?? 0) + (e.users?.length ?? 0) === 0) {
      issues.add(path, 'an [[exempt]] entry needs apps, users or cidrs');
    }
    return { apps, users, cidrs, origin: origin(path) };
  });

  const lists = normalizeLists(r.list, known, issues);

  const dns = normalizeDns(r.dns ?? dnsSchema.parse({}), issues);
  const inbound = normalizeInbound(r.inbound ?? inboundSchema.parse({}), issues);
  const enforce = normalizeEnforce(r.enforce ?? enforceSchema.parse({}));
  const control = normalizeControl(r.control ?? controlSchema.parse({}));

  if (!issues.empty) return { config: null, issues };
  return {
    config: { version: 1, default: r.default, dns, inbound, enforce, control, egress, exempt, rules, lists, source, notices },
    issues,
  };
}

const LIST_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const DEFAULT_REFRESH_SECONDS = 6 * 3600;
const REFRESH_UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400 };

/** `[[list]]` tables: names, one source, https, url-only keys, declared egresses. */
function normalizeLists(raw: RawList[], known: (name: string, path: KeyPath) => boolean, issues: Issues): ListConfig[] {
  const seen = new Map<string, number>();
  return raw.map((l, i) => {
    const path = ['list', i];
    if (!LIST_NAME.test(l.name)) issues.add([...path, 'name'], `list name '${clip(l.name)}' must be 1–64 of A-Z a-z 0-9 . _ - starting with a letter or digit`);
    const prev = seen.get(l.name);
    if (prev !== undefined) issues.add([...path, 'name'], `list name '${clip(l.name)}' is already used by list[${prev}]`);
    seen.set(l.name, i);
    if ((l.path === undefined) === (l.url === undefined)) issues.add(path, 'give exactly one of path and url');
    if (l.url !== undefined) {
      let u: URL | null = null;
      try {
        u = new URL(l.url);
      } catch {
        issues.add([...path, 'url'], `'${clip(l.url)}' is not a URL`);
      }
      if (u && u.protocol !== 'https:') issues.add([...path, 'url'], `a list url must be https:// (got ${u.protocol}); certificates are always checked`);
    } else {
      for (const k of ['sha256', 'max_bytes', 'via', 'refresh'] as const) {
        if (l[k] !== undefined) issues.add([...path, k], `${k} applies to url lists only`);
      }
    }
    known(l.egress, [...path, 'egress']);
    if (l.via !== undefined) known(l.via, [...path, 'via']);
    if (l.attrs !== undefined && l.format !== 'v2fly') issues.add([...path, 'attrs'], 'attrs filters v2fly attributes (format = "v2fly" only)');
    (l.attrs ?? []).forEach((a, j) => {
      if (!/^-?@?[A-Za-z0-9!._-]{1,64}$/.test(a)) issues.add([...path, 'attrs', j], `'${clip(a)}' is not a v2fly attribute (e.g. "cn" or "-ads")`);
    });
    if (l.sha256 !== undefined && !/^[0-9a-fA-F]{64}$/.test(l.sha256)) issues.add([...path, 'sha256'], 'sha256 is 64 hex digits');
    let refreshSeconds = DEFAULT_REFRESH_SECONDS;
    if (l.refresh !== undefined) {
      const m = /^([1-9][0-9]{0,6})([smhd])$/.exec(l.refresh);
      if (!m) issues.add([...path, 'refresh'], `'${clip(l.refresh)}' is not an interval like "30m", "6h" or "1d"`);
      else refreshSeconds = Number(m[1]) * REFRESH_UNITS[m[2]!]!;
    }
    return {
      name: l.name,
      path: l.path ?? null,
      url: l.url ?? null,
      format: l.format,
      egress: l.egress,
      attrs: l.attrs ?? [],
      unsupported: l.unsupported,
      granularity: l.granularity,
      sha256: l.sha256?.toLowerCase() ?? null,
      maxBytes: l.max_bytes ?? null,
      via: l.via ?? 'direct',
      refreshSeconds,
    };
  });
}

/** Echoes user text in messages without flooding them. */
export function clip(s: string, max = 64): string {
  return s.length <= max ? s : `${s.slice(0, max)}… (${s.length} characters)`;
}

function notNull<T>(v: T | null): v is T {
  return v !== null;
}

function tooLong(p: PatternTooLong, path: KeyPath, issues: Issues): null {
  issues.add(path, `${p.kind} pattern longer than ${p.limit} characters`, 'SY_ERR_CONFIG_PATTERN_TOO_LONG');
  return null;
}

function domainPattern(s: string, path: KeyPath, issues: Issues): DomainPattern | null {
  const p = parseDomainPattern(s);
  if (p instanceof PatternTooLong) return tooLong(p, path, issues);
  if ('error' in p) { issues.add(path, p.error); return null; }
  return p;
}

function appPattern(s: string, path: KeyPath, issues: Issues): AppPattern | null {
  const p = parseAppPattern(s);
  if (p instanceof PatternTooLong) return tooLong(p, path, issues);
  if ('error' in p) { issues.add(path, p.error); return null; }
  return p;
}

function cidr(s: string, path: KeyPath, issues: Issues): Cidr | null {
  const c = parseCidr(s);
  if (typeof c === 'string') { issues.add(path, c); return null; }
  return c;
}

function portRange(v: number | string, path: KeyPath, issues: Issues): PortRange | null {
  const p = parsePortSpec(v);
  if ('error' in p) { issues.add(path, p.error); return null; }
  return p;
}

function normalizeEgresses(r: RawConfig, rawObj: Record<string, unknown>, issues: Issues): Record<string, EgressConfig> {
  const out: Record<string, EgressConfig> = {};
  const common = (name: string, e: RawEgress, path: KeyPath) => {
    let health: HealthConfig = { target: null, intervalMs: 30_000, timeoutMs: 5_000 };
    if (e.health) {
      let target = null;
      if (e.health.target !== undefined) {
        const hp = parseHostPort(e.health.target, true);
        if ('error' in hp) issues.add([...path, 'health', 'target'], hp.error);
        else target = hp;
      }
      health = { target, intervalMs: e.health.interval_ms, timeoutMs: e.health.timeout_ms };
    }
    e.dns.forEach((u, j) => {
      const err = checkUpstreamUrl(u);
      if (err) issues.add([...path, 'dns', j], err);
    });
    return {
      name,
      fallback: e.fallback ?? null,
      health,
      dns: e.dns,
      obfuscatesOnly: e.obfuscates_only,
      process: e.process ? { command: e.process.command, args: e.process.args } : null,
    };
  };
  const rawEgress = isObj(rawObj.egress) ? rawObj.egress : {};
  for (const [name, e] of Object.entries(r.egress)) {
    const path = ['egress', name];
    if (!EGRESS_NAME.test(name)) {
      issues.add(path, `egress name '${clip(name)}' must be 1..64 of A-Z a-z 0-9 _ - (starting with a letter or digit)`);
      continue;
    }
    const given = isObj(rawEgress[name]) ? (rawEgress[name] as Record<string, unknown>) : {};
    const onlyFor = (key: string, types: string[]) => {
      if (key in given && !types.includes(e.type)) issues.add([...path, key], `'${key}' applies only to type ${types.join(' or ')}`);
    };
    onlyFor('endpoint', ['socks5', 'http']);
    onlyFor('interface', ['interface']);
    onlyFor('send_domain', ['socks5', 'http']);
    onlyFor('udp', ['socks5']);
    if ((BUILTIN_EGRESSES as readonly string[]).includes(name) && e.type !== name) {
      issues.add([...path, 'type'], `'${name}' is the built-in ${name} egress; its type must be "${name}"`);
      continue;
    }
    const c = common(name, e, path);
    if (e.type === 'socks5' || e.type === 'http') {
      if (e.endpoint === undefined) {
        issues.add([...path, 'endpoint'], `type ${e.type} needs an endpoint like ${e.type}://127.0.0.1:${e.type === 'socks5' ? 1080 : 8080}`);
        continue;
      }
      const u = parseProxyUrl(e.endpoint, [e.type]);
      if ('error' in u) { issues.add([...path, 'endpoint'], `bad endpoint: ${u.error}`); continue; }
      out[name] = e.type === 'socks5'
        ? { ...c, type: 'socks5', endpoint: u.endpoint, auth: u.auth, sendDomain: e.send_domain, udp: e.udp }
        : { ...c, type: 'http', endpoint: u.endpoint, auth: u.auth, sendDomain: e.send_domain };
    } else if (e.type === 'interface') {
      if (e.interface === undefined || !/^[A-Za-z0-9_.:\- ]{1,256}$/.test(e.interface)) {
        issues.add([...path, 'interface'], 'type interface needs `interface = "NAME"` (or "auto")');
        continue;
      }
      // Its resolvers are asked with sockets bound to the interface (docs/dns.md): a loopback one never answers.
      e.dns.forEach((u, j) => {
        const h = /^[a-z]+:\/\/(\[[^\]]*\]|[^:/]+)/i.exec(u)?.[1]?.replace(/^\[|\]$/g, '').toLowerCase();
        if (h !== undefined && (h.startsWith('127.') || h === '::1' || h === 'localhost')) issues.add([...path, 'dns', j], `'${clip(u)}' is a loopback resolver: it cannot be reached through interface ${e.interface}`);
      });
      out[name] = { ...c, type: 'interface', interface: e.interface };
    } else {
      out[name] = { ...c, type: e.type };
    }
  }
  const builtin = (name: 'direct' | 'block'): EgressConfig => ({
    name,
    type: name,
    fallback: null,
    health: { target: null, intervalMs: 30_000, timeoutMs: 5_000 },
    dns: [],
    obfuscatesOnly: false,
    process: null,
  });
  out.direct ??= builtin('direct');
  out.block ??= builtin('block');
  return out;
}

function checkFallbackCycles(egress: Record<string, EgressConfig>, issues: Issues): void {
  for (const start of Object.keys(egress)) {
    const seen = new Set<string>([start]);
    let cur = egress[start]?.fallback ?? null;
    while (cur !== null && egress[cur]) {
      if (seen.has(cur)) {
        if (cur === start) issues.add(['egress', start, 'fallback'], `fallback chain loops: ${[...seen, cur].join(' → ')}`);
        break;
      }
      seen.add(cur);
      cur = egress[cur]!.fallback;
    }
  }
}

function normalizeDns(d: z.output<typeof dnsSchema>, issues: Issues): DnsConfig {
  const listen = d.listen.flatMap((s, j) => {
    const hp = parseHostPort(s, false);
    if ('error' in hp) { issues.add(['dns', 'listen', j], hp.error); return []; }
    return [hp];
  });
  d.upstreams.forEach((u, j) => {
    const err = checkUpstreamUrl(u);
    if (err) issues.add(['dns', 'upstreams', j], err);
  });
  d.bootstrap.forEach((b, j) => {
    const c = parseCidr(b);
    if (typeof c === 'string' || c.prefix !== (c.family === 4 ? 32 : 128)) issues.add(['dns', 'bootstrap', j], `'${b}' is not an IP address`);
  });
  const hosts: Record<string, string[]> = {};
  for (const [name, addrs] of Object.entries(d.hosts)) {
    const n = normalizeDomainName(name);
    if (typeof n !== 'string') { issues.add(['dns', 'hosts', name], 'not a valid domain name'); continue; }
    addrs.forEach((a, j) => {
      const c = parseCidr(a);
      if (typeof c === 'string' || c.prefix !== (c.family === 4 ? 32 : 128)) issues.add(['dns', 'hosts', name, j], `'${a}' is not an IP address`);
    });
    hosts[n] = addrs;
  }
  if (d.cache.min_ttl > d.cache.max_ttl) issues.add(['dns', 'cache', 'min_ttl'], 'min_ttl is above max_ttl');
  // Absolute only: the daemon's working directory is not the config file's.
  if (d.ca_file !== undefined && !/^(\/|[A-Za-z]:[\\/]|\\\\)/.test(d.ca_file)) issues.add(['dns', 'ca_file'], `'${clip(d.ca_file)}': the path must be absolute`);
  return {
    listen,
    upstreams: d.upstreams,
    bootstrap: d.bootstrap,
    hosts,
    blockAnswer: d.block_answer,
    firefoxCanary: d.firefox_canary,
    stripEch: d.strip_ech,
    timeoutMs: d.timeout_ms,
    rateLimit: d.rate_limit,
    cache: { maxEntries: d.cache.max_entries, minTtl: d.cache.min_ttl, maxTtl: d.cache.max_ttl, negativeTtl: d.cache.negative_ttl },
    store: { maxEntries: d.store.max_entries, graceSeconds: d.store.grace_seconds, persist: d.store.persist },
    ...(d.ca_file !== undefined ? { caFile: d.ca_file } : {}),
  };
}

function normalizeInbound(i: z.output<typeof inboundSchema>, issues: Issues): InboundConfig {
  let mixed = null;
  if (i.mixed !== false) {
    const hp = parseHostPort(i.mixed, false);
    if ('error' in hp) issues.add(['inbound', 'mixed'], hp.error);
    else mixed = hp;
  }
  const allowFrom = i.allow_from.flatMap((s, j) => {
    const c = parseCidr(s);
    if (typeof c === 'string') { issues.add(['inbound', 'allow_from', j], c); return []; }
    return [c];
  });
  const t = parseCidr(i.transparent_listen);
  if (typeof t === 'string' || t.prefix !== (t.family === 4 ? 32 : 128)) issues.add(['inbound', 'transparent_listen'], `'${i.transparent_listen}' is not an IP address`);
  return {
    mixed,
    allowFrom,
    auth: i.auth ? { username: i.auth.username, password: i.auth.password } : null,
    transparentListen: i.transparent_listen,
    maxSessions: i.max_sessions,
    handshakeTimeoutMs: i.handshake_timeout_ms,
    connectTimeoutMs: i.connect_timeout_ms,
    idleTimeoutMs: i.idle_timeout_ms,
    sniffTimeoutMs: i.sniff_timeout_ms,
  };
}

function normalizeEnforce(e: z.output<typeof enforceSchema>): EnforceConfig {
  return {
    enabled: e.enabled,
    mode: e.mode,
    lan: e.lan,
    blockQuic: e.block_quic,
    blockDoh: e.block_doh,
    dohList: e.doh_list ?? null,
    exemptUsers: e.exempt_users,
    windivertPath: e.windivert_path ?? null,
  };
}

function normalizeControl(c: z.output<typeof controlSchema>): ControlConfig {
  return { group: c.group, readUsers: c.read_users };
}
