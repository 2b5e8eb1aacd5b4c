// Config → config v1 TOML text (used by `switchyard config convert`). Writes the sections that
// differ from the defaults, every egress except untouched built-ins, every exempt entry and rule.
// The output loads back to an equivalent Config (test/policy/convert.test.ts checks it).
import type { AppPattern, Config, DomainPattern, EgressConfig, HostPort } from '../types.ts';
import { cidrText } from '../ip.ts';
import { loadConfigFromString } from './load.ts';

const q = (s: string) => JSON.stringify(s); // JSON string escapes are valid TOML basic-string escapes
const list = (a: readonly string[]) => `[${a.map(q).join(', ')}]`;
const hp = (h: HostPort) => (h.host.includes(':') ? `[${h.host}]:${h.port}` : `${h.host}:${h.port}`);
const domainText = (p: DomainPattern) => (p.kind === 'suffix' ? p.value : `${p.kind}:${p.value}`);
const appText = (p: AppPattern) => (p.kind === 'group' ? `group:${p.value}` : p.value);

let defaults: Config | null = null;
function baseline(): Config {
  return (defaults ??= loadConfigFromString('version = 1\n', 'baseline'));
}

function section(name: string, pairs: [string, string, boolean][]): string[] {
  const changed = pairs.filter(([, , differs]) => differs);
  if (!changed.length) return [];
  return ['', `[${name}]`, ...changed.map(([k, v]) => `${k} = ${v}`)];
}

const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

export function configToToml(c: Config, header?: string): string {
  const b = baseline();
  const out: string[] = [];
  if (header) out.push(...header.split('\n').map((l) => `# ${l}`.trimEnd()));
  out.push('version = 1', `default = ${q(c.default)}`);
  const d = c.dns;
  const bd = b.dns;
  out.push(
    ...section('dns', [
      ['listen', list(d.listen.map(hp)), !same(d.listen, bd.listen)],
      ['upstreams', list(d.upstreams), !same(d.upstreams, bd.upstreams)],
      ['bootstrap', list(d.bootstrap), !same(d.bootstrap, bd.bootstrap)],
      ['hosts', `{ ${Object.entries(d.hosts).map(([k, v]) => `${q(k)} = ${list(v)}`).join(', ')} }`, !same(d.hosts, bd.hosts)],
      ['block_answer', q(d.blockAnswer), d.blockAnswer !== bd.blockAnswer],
      ['firefox_canary', String(d.firefoxCanary), d.firefoxCanary !== bd.firefoxCanary],
      ['strip_ech', String(d.stripEch), d.stripEch !== bd.stripEch],
      ['timeout_ms', String(d.timeoutMs), d.timeoutMs !== bd.timeoutMs],
      ['rate_limit', String(d.rateLimit), d.rateLimit !== bd.rateLimit],
      ['ca_file', q(d.caFile ?? ''), !!d.caFile],
      ['cache', `{ max_entries = ${d.cache.maxEntries}, min_ttl = ${d.cache.minTtl}, max_ttl = ${d.cache.maxTtl}, negative_ttl = ${d.cache.negativeTtl} }`, !same(d.cache, bd.cache)],
      ['store', `{ max_entries = ${d.store.maxEntries}, grace_seconds = ${d.store.graceSeconds}, persist = ${d.store.persist} }`, !same(d.store, bd.store)],
    ]),
  );
  const i = c.inbound;
  const bi = b.inbound;
  out.push(
    ...section('inbound', [
      ['mixed', i.mixed ? q(hp(i.mixed)) : 'false', !same(i.mixed, bi.mixed)],
      ['allow_from', list(i.allowFrom.map(cidrText)), !same(i.allowFrom, bi.allowFrom)],
      ['auth', i.auth ? `{ username = ${q(i.auth.username)}, password = ${q(i.auth.password)} }` : '', i.auth !== null],
      ['transparent_listen', q(i.transparentListen), i.transparentListen !== bi.transparentListen],
      ['max_sessions', String(i.maxSessions), i.maxSessions !== bi.maxSessions],
      ['handshake_timeout_ms', String(i.handshakeTimeoutMs), i.handshakeTimeoutMs !== bi.handshakeTimeoutMs],
      ['connect_timeout_ms', String(i.connectTimeoutMs), i.connectTimeoutMs !== bi.connectTimeoutMs],
      ['idle_timeout_ms', String(i.idleTimeoutMs), i.idleTimeoutMs !== bi.idleTimeoutMs],
      ['sniff_timeout_ms', String(i.sniffTimeoutMs), i.sniffTimeoutMs !== bi.sniffTimeoutMs],
    ]),
  );
  const e = c.enforce;
  const be = b.enforce;
  out.push(
    ...section('enforce', [
      ['enabled', String(e.enabled), e.enabled !== be.enabled],
      ['mode', q(e.mode), e.mode !== be.mode],
      ['lan', q(e.lan), e.lan !== be.lan],
      ['block_quic', String(e.blockQuic), e.blockQuic !== be.blockQuic],
      ['block_doh', String(e.blockDoh ?? false), (e.blockDoh ?? false) !== (be.blockDoh ?? false)],
      ['doh_list', q(e.dohList ?? ''), (e.dohList ?? null) !== null],
      ['exempt_users', list(e.exemptUsers), !same(e.exemptUsers, be.exemptUsers)],
      ['windivert_path', q(e.windivertPath ?? ''), e.windivertPath !== null],
    ]),
  );
  out.push(
    ...section('control', [
      ['group', q(c.control.group), c.control.group !== b.control.group],
      ['read_users', list(c.control.readUsers), !same(c.control.readUsers, b.control.readUsers)],
    ]),
  );
  for (const [name, eg] of Object.entries(c.egress)) {
    if (isPlainBuiltin(name, eg)) continue;
    out.push('', `[egress.${/^[A-Za-z0-9_-]+$/.test(name) ? name : q(name)}]`, `type = ${q(eg.type)}`);
    if (eg.type === 'socks5' || eg.type === 'http') {
      const auth = eg.auth ? `${encodeURIComponent(eg.auth.username)}:${encodeURIComponent(eg.auth.password)}@` : '';
      out.push(`endpoint = ${q(`${eg.type}://${auth}${hp(eg.endpoint)}`)}`);
      if (!eg.sendDomain) out.push('send_domain = false');
      if (eg.type === 'socks5' && !eg.udp) out.push('udp = false');
    }
    if (eg.type === 'interface') out.push(`interface = ${q(eg.interface)}`);
    if (eg.fallback !== null) out.push(`fallback = ${q(eg.fallback)}`);
    if (eg.dns.length) out.push(`dns = ${list(eg.dns)}`);
    if (eg.obfuscatesOnly) out.push('obfuscates_only = true');
    const h = eg.health;
    if (h.target !== null || h.intervalMs !== 30_000 || h.timeoutMs !== 5_000) {
      const parts = [...(h.target ? [`target = ${q(hp(h.target))}`] : []), `interval_ms = ${h.intervalMs}`, `timeout_ms = ${h.timeoutMs}`];
      out.push(`health = { ${parts.join(', ')} }`);
    }
    if (eg.process) out.push(`process = { command = ${q(eg.process.command)}, args = ${list(eg.process.args)} }`);
  }
  for (const x of c.exempt) {
    if (x.origin.list === undefined && x.origin.file === undefined && x.origin.line === undefined && !x.apps.length && !x.cidrs.length && !x.users.length) continue;
    out.push('', '[[exempt]]');
    if (x.apps.length) out.push(`apps = ${list(x.apps.map(appText))}`);
    if (x.users.length) out.push(`users = ${list(x.users)}`);
    if (x.cidrs.length) out.push(`cidrs = ${list(x.cidrs.map(cidrText))}`);
  }
  for (const r of c.rules) {
    out.push('', '[[rule]]');
    if (r.name !== null) out.push(`name = ${q(r.name)}`);
    out.push(`egress = ${q(r.egress)}`);
    if (r.domains.length) out.push(`domains = ${list(r.domains.map(domainText))}`);
    if (r.apps.length) out.push(`apps = ${list(r.apps.map(appText))}`);
    if (r.cidrs.length) out.push(`cidrs = ${list(r.cidrs.map(cidrText))}`);
    if (r.ports.length) out.push(`ports = [${r.ports.map((p) => (p.from === p.to ? String(p.from) : q(`${p.from}-${p.to}`))).join(', ')}]`);
    if (r.network !== null) out.push(`network = ${q(r.network)}`);
  }
  for (const l of c.lists ?? []) {
    out.push('', '[[list]]', `name = ${q(l.name)}`);
    if (l.path !== null) out.push(`path = ${q(l.path)}`);
    if (l.url !== null) out.push(`url = ${q(l.url)}`);
    out.push(`format = ${q(l.format)}`, `egress = ${q(l.egress)}`);
    if (l.attrs.length) out.push(`attrs = ${list(l.attrs)}`);
    if (l.unsupported !== 'error') out.push(`unsupported = ${q(l.unsupported)}`);
    if (l.granularity !== 'auto') out.push(`granularity = ${q(l.granularity)}`);
    if (l.url !== null) {
      if (l.sha256 !== null) out.push(`sha256 = ${q(l.sha256)}`);
      if (l.maxBytes !== null) out.push(`max_bytes = ${l.maxBytes}`);
      if (l.via !== 'direct') out.push(`via = ${q(l.via)}`);
      if (l.refreshSeconds !== 6 * 3600) out.push(`refresh = ${q(`${l.refreshSeconds}s`)}`);
    }
  }
  return out.join('\n') + '\n';
}

function isPlainBuiltin(name: string, e: EgressConfig): boolean {
  return (
    (name === 'direct' || name === 'block') &&
    e.type === name &&
    e.fallback === null &&
    e.dns.length === 0 &&
    !e.obfuscatesOnly &&
    e.process === null &&
    e.health.target === null &&
    e.health.intervalMs === 30_000 &&
    e.health.timeoutMs === 5_000
  );
}
