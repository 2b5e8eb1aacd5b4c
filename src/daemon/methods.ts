// The daemon's control methods. Permission classes (docs/cli.md): `read` changes nothing and is
// open to permitted readers; `change` needs root, the daemon's user (user mode) or the control
// group. conns, rdns and explain --flow reveal browsing: a caller who is not privileged sees only
// flows (and names of addresses) of its own uid — the server applies the filter (privacy.items).
import { readFileSync, statSync } from 'node:fs';
import { ControlError, DaemonError } from '../errors.ts';
import { PACKAGE_ROOT_URL } from '../paths.ts';
import type { CallContext, MethodRegistry } from '../control/index.ts';
import type { FlowQuery } from '../policy/types.ts';
import type { Endpoint, FlowRecord, ProcessInfo, StoreName } from '../flow/types.ts';
import { parseIp } from '../policy/ip.ts';
import { queryOfFlow, type Daemon } from './daemon.ts';
import { actorOf } from './revisions.ts';
import { isAbsolute } from 'node:path';
import { registerListMethods } from './list-methods.ts';
import { LIST_FORMATS, isListFormat, type ListFormat } from '../lists/types.ts';
import { listOrigin } from '../lists-load.ts';
import { udpCounters } from '../egress/udp.ts';

const VERSION = (JSON.parse(readFileSync(new URL('package.json', PACKAGE_ROOT_URL), 'utf8')) as { version: string }).version;
/** Owner lookups per call for a non-privileged caller (each scans /proc). */
const MAX_OWNER_LOOKUPS = 256;
const MAX_RDNS_ENTRIES = 5000;

function bad(message: string): never {
  throw new ControlError('SY_ERR_CONTROL_BAD_PARAMS', message);
}

function obj(params: unknown): Record<string, unknown> {
  if (params === null || params === undefined) return {};
  if (typeof params !== 'object' || Array.isArray(params)) bad('params must be an object');
  return params as Record<string, unknown>;
}

function optString(p: Record<string, unknown>, k: string, max = 1024): string | undefined {
  const v = p[k];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string' || v.length === 0 || v.length > max) bad(`${k} must be a non-empty string of at most ${max} characters`);
  return v;
}

/**
 * The daemon (root in service mode) reads an import for its caller: only a file the caller could
 * read anyway — its own, or readable by everyone — so `import` (and the error messages of a
 * refused file) cannot be used to read files through the daemon.
 */
function callerMayRead(path: string, uid: number): void {
  if (uid === 0 || uid === process.getuid?.()) return;
  let st;
  try {
    st = statSync(path);
  } catch {
    throw new ControlError('SY_ERR_CONTROL_PERMISSION', `cannot import ${path}: it cannot be read`);
  }
  if (st.uid !== uid && (st.mode & 0o004) === 0) {
    throw new ControlError('SY_ERR_CONTROL_PERMISSION', `cannot import ${path}: the daemon reads imports only when the caller owns them or everyone may read them`);
  }
}

function optRevision(p: Record<string, unknown>): number | undefined {
  const v = p['revision'];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) bad('revision must be a positive integer');
  return v;
}

function reqRevision(p: Record<string, unknown>): number {
  const n = optRevision(p);
  if (n === undefined) bad('revision is required');
  return n;
}

function hostPort(e: Endpoint | { host: string; port: number }): string {
  const h = 'address' in e ? e.address : e.host;
  return h.includes(':') ? `[${h}]:${e.port}` : `${h}:${e.port}`;
}

/** Stable fields of one live flow (docs/cli.md, `conns --format json`). */
export interface FlowView {
  id: string;
  inbound: FlowRecord['inbound'];
  network: string;
  client: string;
  dst: string;
  domain: string | null;
  domainSource: string;
  process: string | null;
  pid: number | null;
  uid: number | null;
  egress: string;
  rule: string;
  stage: string;
  bytesUp: number;
  bytesDown: number;
  startedAt: number;
  ageMs: number;
  /** The running policy would now decide another egress (`close --changed` ends it). */
  changed: boolean;
}

async function ownerOf(d: Daemon, f: FlowRecord): Promise<number | null> {
  if (f.process?.uid !== undefined) return f.process.uid;
  const cached = d.owners.get(f.id);
  if (cached !== undefined) return cached;
  const id = d.deps.identity;
  let info: ProcessInfo | undefined;
  if (id?.processOf) {
    // The app's socket: its local end is the flow's client; its peer is our mixed listener, or the
    // original destination for a redirected flow (NAT is invisible to the app).
    const m = d.mixedAddress();
    const peer: Endpoint | null =
      f.inbound === 'transparent' && 'address' in f.dst ? f.dst : m ? { address: m.address, port: m.port, family: m.family === 'IPv6' ? 6 : 4 } : null;
    if (peer) info = await id.processOf(f.client, peer).catch(() => undefined);
  }
  const uid = info?.uid ?? null;
  d.owners.set(f.id, uid);
  return uid;
}

/** Process lookups one `conns` listing may start (each is a socket-table query, cached after). */
const MAX_PROCESS_LOOKUPS = 128;

async function flowViews(d: Daemon, ctx: CallContext): Promise<FlowView[]> {
  const now = Date.now();
  // Processes are looked up lazily (only rules that name apps need them at decision time); a
  // listing fills them in, a bounded number per call.
  const live = await d.sessions.listWithProcesses(MAX_PROCESS_LOOKUPS);
  const ids = new Set(live.map((f) => f.id));
  for (const k of d.owners.keys()) if (!ids.has(k)) d.owners.delete(k);
  let lookups = 0;
  const out: FlowView[] = [];
  for (const f of live) {
    let uid: number | null = f.process?.uid ?? d.owners.get(f.id) ?? null;
    // Owners are only needed to filter for a caller who is not privileged.
    if (uid === null && !ctx.caller.privileged && !d.owners.has(f.id) && lookups++ < MAX_OWNER_LOOKUPS) uid = await ownerOf(d, f);
    out.push({
      id: f.id,
      inbound: f.inbound,
      network: f.network,
      client: hostPort(f.client),
      dst: hostPort(f.dst),
      domain: f.domain,
      domainSource: f.domainSource,
      process: f.process?.name ?? null,
      pid: f.process?.pid ?? null,
      uid,
      egress: f.egress,
      rule: f.decision.rule?.id ?? 'default',
      stage: f.decision.stage,
      bytesUp: f.bytesUp,
      bytesDown: f.bytesDown,
      startedAt: f.startedAt,
      ageMs: now - f.startedAt,
      changed: d.decisionChanged(f),
    });
  }
  return out;
}

/** How a domain was learned, in words: "from DNS 40 s ago via U, TTL 260 s left". */
export function describeStoreName(n: StoreName, now = Date.now()): string {
  const ago = Math.max(0, Math.round((now - n.lastSeen) / 1000));
  const left = Math.round((n.expiresAt - now) / 1000);
  const ttl = left >= 0 ? `TTL ${left} s left` : `TTL ran out ${-left} s ago (grace)`;
  const via = n.chain.length > 1 ? ` as ${n.chain.join(' → ')}` : '';
  return `from DNS ${ago} s ago via ${n.upstream}${via}, ${ttl}`;
}

export interface DomainProvenance {
  name: string | null;
  source: string;
  detail: string;
  /** Store names for the address, newest first (when the store was asked). */
  candidates: string[];
}

function domainOf(d: Daemon, ip: string | undefined, known: { name: string | null; source: string } | null): DomainProvenance {
  const look = ip && d.dns ? d.dns.store.lookup(ip) : { names: [], state: 'unknown' as const };
  const candidates = look.names.map((n) => n.name);
  const src = known?.source;
  if (known?.name && src && src !== 'dns' && src !== 'dns-ambiguous') {
    const detail =
      src === 'given' ? 'given in the question' : src === 'sni' ? 'from SNI (TLS ClientHello)' : src === 'http-host' ? 'from the HTTP Host header' : src === 'socks' ? 'given by the client (SOCKS5 request)' : src === 'http-proxy' ? 'given by the client (HTTP proxy request)' : `given (${src})`;
    return { name: known.name, source: src, detail, candidates };
  }
  if (look.names.length === 0) {
    if (known?.name) return { name: known.name, source: src ?? 'given', detail: src ? `from DNS (${src}); the store no longer holds it` : 'given in the question', candidates };
    return { name: null, source: 'none', detail: ip ? `no name known for ${ip} (not resolved through switchyard, or expired)` : 'no domain in the question', candidates };
  }
  const newest = look.names[0]!;
  if (look.state === 'ambiguous' || src === 'dns-ambiguous') {
    return { name: known?.name ?? newest.name, source: 'dns-ambiguous', detail: `ambiguous: ${candidates.join(', ')} resolve to this address and lead to different egresses; the newest (${newest.name}) is used — ${describeStoreName(newest)}`, candidates };
  }
  const chosen = look.names.find((n) => n.name === known?.name) ?? newest;
  return { name: chosen.name, source: look.state === 'stale' ? 'dns-stale' : 'dns', detail: describeStoreName(chosen), candidates };
}

function parseQuery(v: unknown): FlowQuery {
  const p = obj(v);
  const network = p['network'] ?? 'tcp';
  if (network !== 'tcp' && network !== 'udp') bad('query.network must be tcp or udp');
  const q: FlowQuery = { network };
  for (const k of ['process', 'exe', 'domain', 'user', 'group'] as const) {
    const s = optString(p, k, 4096);
    if (s !== undefined) q[k] = s;
  }
  const ip = optString(p, 'ip', 64);
  if (ip !== undefined) {
    if (parseIp(ip) === null) bad(`query.ip '${ip}' is not an IP address`);
    q.ip = ip;
  }
  if (p['port'] !== undefined) {
    const port = p['port'];
    if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) bad('query.port must be 1..65535');
    q.port = port;
  }
  return q;
}

export function registerMethods(reg: MethodRegistry, d: Daemon): MethodRegistry {
  registerListMethods(reg, d);
  reg.register({
    name: 'status',
    permission: 'read',
    summary: 'uptime, config, egress health, flows, DNS sizes, enforcement',
    handler: async () => {
      const dnsStats = d.dns?.stats();
      const backend = d.backend && d.enforcing ? await d.backend.status().catch((e: Error) => ({ os: d.backend!.os, state: 'unknown', problems: [e.message], groups: [], setElements: {} })) : null;
      return {
        version: VERSION,
        pid: process.pid,
        startedAt: d.startedAt,
        uptimeMs: Date.now() - d.startedAt,
        mode: d.paths.mode,
        config: {
          source: d.config.source,
          generation: d.generation,
          loadedAt: d.live.current.loadedAt,
          watched: d.configPath !== null && d.opts.watch !== false,
          lastReload: d.lastReload,
        },
        listeners: {
          dns: d.dns?.addresses.map((a) => `${a.host}:${a.port}`) ?? [],
          mixed: d.mixed ? `${d.mixed.address.address}:${d.mixed.address.port}` : null,
          transparent: d.transparent?.listeners.map((l) => ({ group: l.group, port4: l.port4, port6: l.port6 })) ?? [],
        },
        policy: d.revisions.summary(),
        egress: egressRows(d),
        flows: { live: d.sessions.list().length, sessions: d.sessions.size, max: d.sessions.maxSessions, refusedByCap: d.sessions.refusedByCap, udpFragmentsDropped: udpCounters.fragmentsDropped, fdLimit: d.glue.fdLimit ?? null },
        dns: dnsStats ? { cacheEntries: dnsStats.cacheEntries, storeEntries: dnsStats.storeEntries, storeMax: dnsStats.storeMax, cacheHits: dnsStats.cacheHits, misses: dnsStats.misses, rehooks: dnsStats.rehooks, blocked: dnsStats.blocked } : null,
        enforcement: {
          enabled: d.enforcing,
          os: d.backend?.os ?? null,
          state: backend?.state ?? 'off',
          problems: backend?.problems ?? [],
          watcher: (backend && 'watcher' in backend ? backend.watcher : null) ?? null,
          lastRepair: d.lastRepair,
          suspended: d.suspended,
        },
      };
    },
  });

  reg.register({
    name: 'egress',
    permission: 'read',
    summary: 'egresses with health and supervised process state',
    handler: () => ({ egress: egressRows(d) }),
  });

  reg.register({
    name: 'rules',
    permission: 'read',
    summary: 'per-rule hit counters of the running policy',
    handler: () => ({ generation: d.generation, since: d.live.current.loadedAt, rules: d.live.hits() }),
  });

  reg.register({
    name: 'conns',
    permission: 'read',
    summary: 'live flows (others’ flows only for privileged callers)',
    privacy: { items: 'flows', ownerOf: (f) => (f as FlowView).uid ?? undefined },
    handler: async (_p, ctx) => ({ generation: d.generation, flows: await flowViews(d, ctx) }),
  });

  reg.register({
    name: 'rdns',
    permission: 'read',
    summary: 'names the DNS store holds for addresses (own flows’ addresses only for unprivileged callers)',
    privacy: { items: 'entries', ownerOf: (e) => (e as { uid?: number | null }).uid ?? undefined },
    handler: async (params, ctx) => {
      const p = obj(params);
      const ip = optString(p, 'ip', 64);
      if (ip !== undefined && parseIp(ip) === null) bad(`ip '${ip}' is not an IP address`);
      if (!d.dns) return { entries: [] };
      const store = d.dns.store;
      const pairs: [string, StoreName[]][] = ip !== undefined ? [[ip, store.lookup(ip).names]] : store.entries().slice(0, MAX_RDNS_ENTRIES);
      // For an unprivileged caller, an address is its own when one of its live flows goes there.
      const mine = new Set<string>();
      if (!ctx.caller.privileged) {
        for (const f of await flowViews(d, ctx)) if (f.uid === ctx.caller.uid) mine.add(f.dst.replace(/^\[?(.*?)\]?:\d+$/, '$1'));
      }
      const now = Date.now();
      return {
        entries: pairs
          .filter(([, names]) => names.length > 0)
          .map(([addr, names]) => ({
            ip: addr,
            state: store.lookup(addr).state,
            uid: mine.has(addr) ? ctx.caller.uid : null,
            names: names.map((n) => ({ name: n.name, chain: n.chain, upstream: n.upstream, ttlLeftS: Math.round((n.expiresAt - now) / 1000), lastSeenAgoS: Math.round((now - n.lastSeen) / 1000), stale: n.stale })),
          })),
      };
    },
  });

  reg.register({
    name: 'explain',
    permission: 'read',
    summary: 'decide a flow with the live policy and say why (a query, or a live flow by id)',
    handler: async (params, ctx) => {
      const p = obj(params);
      const flowId = optString(p, 'flow', 128);
      let q: FlowQuery;
      let known: { name: string | null; source: string } | null = null;
      let proc: ProcessInfo | null = null;
      let flow: FlowView | null = null;
      if (flowId !== undefined) {
        const rec = d.sessions.get(flowId)?.record;
        if (!rec) throw new DaemonError('SY_ERR_DAEMON_NO_FLOW', `no live flow '${flowId}' (see switchyard conns)`);
        const view = (await flowViews(d, ctx)).find((f) => f.id === flowId);
        // A flow is private: explaining another user's flow would reveal it.
        if (!view || !ctx.sees(view.uid ?? undefined)) throw new DaemonError('SY_ERR_DAEMON_NO_FLOW', `no live flow '${flowId}' of yours (see switchyard conns)`);
        flow = view;
        q = queryOfFlow(rec);
        known = { name: rec.domain, source: rec.domainSource };
        proc = rec.process;
      } else {
        q = parseQuery(p['query']);
        if (q.domain) known = { name: q.domain, source: 'given' };
      }
      const domain = domainOf(d, q.ip, known);
      // A question with only an address: the store's name is what a flow would be decided with.
      if (flowId === undefined && q.domain === undefined && domain.name && domain.source.startsWith('dns')) q.domain = domain.name;
      const x = d.live.explain(q);
      const health = d.egress.health(x.egress);
      return {
        config: { source: d.config.source, generation: d.generation },
        ...x,
        // The list, file and line of a list rule (grouped lists too: listOriginOf).
        listOrigin: listOrigin(d.lists.result, x),
        flow,
        process: proc ? { name: proc.name ?? null, pid: proc.pid, exe: proc.exe ?? null, uid: proc.uid ?? null } : q.process ? { name: q.process, pid: null, exe: q.exe ?? null, uid: null } : null,
        domain,
        egressState: health ? { state: health.state, reason: health.reason } : { state: 'unknown', reason: 'not configured' },
      };
    },
  });

  reg.register({
    name: 'reload',
    permission: 'change',
    summary: 'read the config file into a candidate revision; a low-risk one asked for interactively is activated at once',
    handler: (params, ctx) => {
      const p = obj(params);
      return d.reload('control', { interactive: p['interactive'] === true, actor: actorOf(ctx.caller) });
    },
  });

  reg.register({
    name: 'revisions',
    permission: 'read',
    summary: 'policy revisions with state, provenance and risk',
    handler: () => d.revisions.list(),
  });

  reg.register({
    name: 'diff',
    permission: 'read',
    summary: 'what a revision changes against the running policy (default: the newest pending)',
    handler: (params) => d.revisions.diff(optRevision(obj(params))),
  });

  reg.register({
    name: 'approve',
    permission: 'change',
    summary: 'activate a pending revision (atomic: snapshot, apply, verify, commit; rolled back on failure)',
    handler: (params, ctx) => {
      const n = reqRevision(obj(params));
      return d.serial(() => d.revisions.approve(n, actorOf(ctx.caller)));
    },
  });

  reg.register({
    name: 'reject',
    permission: 'change',
    summary: 'reject a pending revision',
    handler: (params, ctx) => {
      const p = obj(params);
      const n = reqRevision(p);
      const reason = optString(p, 'reason', 500) ?? 'rejected by switchyard reject';
      return d.serial(async () => d.revisions.reject(n, actorOf(ctx.caller), reason));
    },
  });

  reg.register({
    name: 'rollback',
    permission: 'change',
    summary: 'activate last-known-good again, as a new revision',
    handler: (_p, ctx) => d.serial(() => d.revisions.rollback(actorOf(ctx.caller))),
  });

  reg.register({
    name: 'alerts',
    permission: 'read',
    summary: 'store alerts (tamper, high-risk, non-interactive, apply-failed, audit); unreviewed unless all',
    handler: (params) => ({ alerts: d.revisions.store.alerts({ all: obj(params)['all'] === true }) }),
  });

  reg.register({
    name: 'alerts.ack',
    permission: 'change',
    summary: 'mark an alert as reviewed (audited)',
    handler: (params, ctx) => {
      const id = obj(params)['id'];
      if (typeof id !== 'number' || !Number.isInteger(id) || id < 1) bad('id must be a positive integer');
      return d.serial(async () => d.revisions.ackAlert(id, actorOf(ctx.caller)));
    },
  });

  reg.register({
    name: 'audit',
    permission: 'read',
    summary: 'the audit log (events only for privileged callers) and its verification against the protected anchor',
    handler: (params, ctx) => {
      const p = obj(params);
      const limit = p['limit'] === undefined ? 50 : p['limit'];
      if (typeof limit !== 'number' || !Number.isInteger(limit) || limit < 1) bad('limit must be a positive integer');
      return d.revisions.audit({ verify: p['verify'] === true, limit, privileged: ctx.caller.privileged });
    },
  });

  reg.register({
    name: 'import',
    permission: 'change',
    summary: 'import a config or rule-list file as a pending revision (linked: later changes make pending revisions too)',
    handler: (params, ctx) => {
      const p = obj(params);
      const path = optString(p, 'path', 4096);
      if (path === undefined || !isAbsolute(path)) bad('path must be an absolute file path');
      callerMayRead(path, ctx.caller.uid);
      // A list format (plain, v2fly, singbox, clash-*, netrulerouter) needs the egress its entries take.
      const format = optString(p, 'format', 32);
      const egress = optString(p, 'egress', 64);
      if (format !== undefined && !isListFormat(format)) bad(`format must be one of ${LIST_FORMATS.join(', ')}`);
      if (format !== undefined && egress === undefined) bad('a list import needs egress (the egress its entries take)');
      if (format === undefined && egress !== undefined) bad('egress applies to list formats only (give format)');
      const list = format !== undefined ? { format: format as ListFormat, egress: egress! } : undefined;
      return d.serial(() => d.revisions.importFile(path, p['linked'] === true, actorOf(ctx.caller), p['interactive'] === true, list));
    },
  });

  reg.register({
    name: 'stop',
    permission: 'change',
    summary: 'stop the daemon (with enforcement on, the fail-closed skeleton stays)',
    handler: () => {
      // Reply first, then stop: the server writes the reply when this returns.
      setTimeout(() => void d.stop('switchyard stop'), 50);
      return { stopping: true, pid: process.pid, skeleton: d.enforcing };
    },
  });

  reg.register({
    name: 'enforce',
    permission: 'change',
    summary: 'switch OS enforcement off (table and groups removed) or on again, for a daemon started with it',
    handler: async (params) => {
      const p = obj(params);
      if (typeof p['on'] !== 'boolean') throw new ControlError('SY_ERR_CONTROL_BAD_PARAMS', 'enforce: `on` must be true or false');
      return d.setEnforcement(p['on']);
    },
  });

  reg.register({
    name: 'close',
    permission: 'change',
    summary: 'close one live flow, every flow of an egress, or every flow whose decision changed',
    handler: (params) => {
      const p = obj(params);
      const id = optString(p, 'flow', 128);
      const egress = optString(p, 'egress', 128);
      const changed = p['changed'] === true;
      if ([id !== undefined, egress !== undefined, changed].filter(Boolean).length !== 1) bad('give exactly one of flow, egress, changed');
      if (id !== undefined) {
        if (!d.sessions.get(id)?.record) throw new DaemonError('SY_ERR_DAEMON_NO_FLOW', `no live flow '${id}' (see switchyard conns)`);
        d.sessions.close(id, 'closed by switchyard close');
        return { closed: 1 };
      }
      if (egress !== undefined) {
        if (!d.egress.config(egress)) bad(`no egress '${egress}' in the running config`);
        return { closed: d.sessions.closeEgress(egress, 'closed by switchyard close --egress') };
      }
      let n = 0;
      for (const f of d.sessions.list()) {
        if (d.decisionChanged(f) && d.sessions.close(f.id, 'decision changed by reload')) n++;
      }
      return { closed: n };
    },
  });

  reg.register({
    name: 'cache.flush',
    permission: 'change',
    summary: 'drop every cached DNS answer (the correlation store is kept)',
    handler: () => {
      if (!d.dns) return { flushed: 0 };
      // Only the answers: upstream connections and egress resolver paths are kept.
      return { flushed: d.dns.flushCache() };
    },
  });

  reg.register({
    name: 'methods',
    permission: 'read',
    summary: 'the control methods and their permission classes',
    handler: () => reg.list(),
  });
  return reg;
}

/** Stable fields per egress (docs/cli.md, `egress --format json`). */
function egressRows(d: Daemon) {
  return d.egress.names().map((name) => {
    const cfg = d.egress.config(name)!;
    const h = d.egress.health(name);
    const sup = d.supervisors.get(name)?.status() ?? null;
    return {
      name,
      type: cfg.type,
      endpoint: 'endpoint' in cfg ? `${cfg.endpoint.host}:${cfg.endpoint.port}` : cfg.type === 'interface' ? cfg.interface : null,
      health: h?.state ?? 'unknown',
      reason: h?.reason ?? null,
      since: h?.since ?? null,
      fallback: cfg.fallback,
      flows: d.sessions.list().filter((f) => f.egress === name).length,
      process: sup,
    };
  });
}
