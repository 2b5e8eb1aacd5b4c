// Read control methods (open to permitted readers): status, egress, rules, conns, rdns, explain.
// conns, rdns and explain --flow reveal browsing: a caller who is not privileged sees only flows
// (and names of addresses) of its own uid — the server applies the filter (privacy.items).
import { readFileSync } from 'node:fs';
import { DaemonError } from '../errors.ts';
import { PACKAGE_ROOT_URL } from '../paths.ts';
import { ownedBy, type CallContext, type MethodRegistry } from '../control/index.ts';
import type { FlowQuery } from '../policy/types.ts';
import type { Endpoint, FlowRecord, ProcessInfo, StoreName } from '../flow/types.ts';
import { parseIp } from '../policy/ip.ts';
import { queryOfFlow, type Daemon, type FlowOwner } from './daemon.ts';
import { listOrigin } from '../lists-load.ts';
import { udpCounters } from '../egress/udp.ts';
import { bad, obj, optString } from './method-params.ts';

const VERSION = (JSON.parse(readFileSync(new URL('package.json', PACKAGE_ROOT_URL), 'utf8')) as { version: string }).version;
/** Owner lookups per call for a non-privileged caller (each scans /proc). */
const MAX_OWNER_LOOKUPS = 256;
const MAX_RDNS_ENTRIES = 5000;

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
  /** Windows: the owning process's user SID (the privacy filter's owner there); null elsewhere or unknown. */
  sid: string | null;
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

async function ownerOf(d: Daemon, f: FlowRecord): Promise<FlowOwner> {
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
  const owner = { uid: info?.uid ?? null, sid: info?.sid ?? null };
  d.owners.set(f.id, owner);
  return owner;
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
    const known = d.owners.get(f.id);
    let uid: number | null = f.process?.uid ?? known?.uid ?? null;
    let sid: string | null = f.process?.sid ?? known?.sid ?? null;
    // Owners are only needed to filter for a caller who is not privileged (uid on Unix, SID on Windows).
    if (uid === null && sid === null && !ctx.caller.privileged && known === undefined && lookups++ < MAX_OWNER_LOOKUPS) ({ uid, sid } = await ownerOf(d, f));
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
      sid,
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

export function registerReadMethods(reg: MethodRegistry, d: Daemon): void {
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
    privacy: { items: 'flows', ownerOf: (f) => (f as FlowView).uid ?? undefined, ownerSidOf: (f) => (f as FlowView).sid ?? undefined },
    handler: async (_p, ctx) => ({ generation: d.generation, flows: await flowViews(d, ctx) }),
  });

  reg.register({
    name: 'rdns',
    permission: 'read',
    summary: 'names the DNS store holds for addresses (own flows’ addresses only for unprivileged callers)',
    privacy: { items: 'entries', ownerOf: (e) => (e as { uid?: number | null }).uid ?? undefined, ownerSidOf: (e) => (e as { sid?: string | null }).sid ?? undefined },
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
        for (const f of await flowViews(d, ctx)) if (ownedBy(ctx.caller, f.uid, f.sid)) mine.add(f.dst.replace(/^\[?(.*?)\]?:\d+$/, '$1'));
      }
      const now = Date.now();
      return {
        entries: pairs
          .filter(([, names]) => names.length > 0)
          .map(([addr, names]) => ({
            ip: addr,
            state: store.lookup(addr).state,
            uid: mine.has(addr) ? ctx.caller.uid : null,
            sid: mine.has(addr) ? (ctx.caller.sid ?? null) : null,
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
        if (!view || !ctx.sees(view.uid ?? undefined, view.sid ?? undefined)) throw new DaemonError('SY_ERR_DAEMON_NO_FLOW', `no live flow '${flowId}' of yours (see switchyard conns)`);
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
        process: proc
          ? { name: proc.name ?? null, pid: proc.pid, exe: proc.exe ?? null, uid: proc.uid ?? null, sid: proc.sid ?? null }
          : q.process ? { name: q.process, pid: null, exe: q.exe ?? null, uid: null, sid: null } : null,
        domain,
        egressState: health ? { state: health.state, reason: health.reason } : { state: 'unknown', reason: 'not configured' },
      };
    },
  });
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
