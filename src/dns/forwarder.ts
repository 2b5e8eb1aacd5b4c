// The forwarder's decisions for one query, independent of the transport that carried it:
//
//   parse (FORMERR / drop) → rate limit → canary, static hosts → cache hit (copy + patch; re-run
//   the hook when the OS set entry is due) → miss: project the name → blocked: local answer, never
//   upstream → resolve on the name's path (default upstreams, or through its proxy egress),
//   coalescing identical queries → store the bindings → await the hook → cache → answer.
//
// Every failure past parsing becomes SERVFAIL for that client; nothing here throws to the caller.
// Which upstreams a path uses, and the bootstrap, are upstream-paths.ts.
import type { Socket as UdpSocket } from 'node:dgram';
import type { BindingHook } from '../flow/types.ts';
import type { DnsConfig, DomainProjection, EgressConfig } from '../policy/types.ts';
import { analyse } from './answer.ts';
import { addressRdata, buildHeaderOnlyError, buildLocalAnswer, buildNameQuery, buildUpstreamQuery } from './build.ts';
import type { LocalRecord, OutQuery } from './build.ts';
import { Binder } from './binder.ts';
import { AnswerCache, prepare, serve } from './cache.ts';
import type { Prepared } from './cache.ts';
import { defaultConnectTcp } from './dial.ts';
import type { ConnectTcp } from './dial.ts';
import { stripEch } from './ech.ts';
import { DnsError } from './errors.ts';
import type { InterfaceSockets } from './iface-path.ts';
import { RateLimiter } from './ratelimit.ts';
import { UdpSocketPool } from './udp-pool.ts';
import { PATH_DEFAULT, UpstreamPaths } from './upstream-paths.ts';
import type { CorrelationStore } from './store.ts';
import { canonicalIp } from './store.ts';
import type { AdapterDnsInfo } from './system-windows.ts';
import { defaultUdpSocket } from './upstream.ts';
import { FLAG, RCODE, TYPE, WireError, parseQuery, readHeader } from './wire.ts';
import type { Query } from './wire.ts';

export const CANARY = 'use-application-dns.net';
/** TTL of locally generated positive answers (hosts, null block answers). */
export const LOCAL_TTL = 60;

export interface DnsLog {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export const silentLog: DnsLog = { debug() {}, info() {}, warn() {}, error() {} };

export interface ForwarderOptions {
  config: DnsConfig;
  /** Declared egresses plus the built-ins (Config.egress). */
  egresses: Record<string, EgressConfig>;
  projectDomain: (name: string) => DomainProjection;
  onBindings?: BindingHook;
  store: CorrelationStore;
  log?: DnsLog;
  /** First hop of every outgoing TCP connection (the daemon passes exempt sockets). */
  connectTcp?: ConnectTcp;
  /** Outgoing UDP sockets (random source port per query). */
  udpSocket?: (family: 4 | 6) => UdpSocket;
  /** resolv.conf paths, for tests; the listeners to skip are set by the caller. */
  savedResolvConf?: string;
  resolvConf?: string;
  resolvedConf?: string;
  /** Addresses we listen on: never used as upstreams. */
  ownListeners?: { host: string; port: number }[];
  hookTimeoutMs?: number;
  now?: () => number;
  /** SO_BINDTODEVICE for `interface` egresses' resolver sockets (Linux); absent = bind to the interface's address. */
  interfaceSockets?: InterfaceSockets;
  /** The adapters' DNS servers (Windows: iphlpapi adapterDnsServers); replaces resolv.conf when no upstream is configured. */
  readAdapters?: () => AdapterDnsInfo[];
}

export interface ForwarderStats {
  queries: number;
  cacheHits: number;
  misses: number;
  coalesced: number;
  malformed: number;
  dropped: number;
  rateLimited: number;
  servfail: number;
  blocked: number;
  local: number;
  hookFailures: number;
  rehooks: number;
  overloaded: number;
}

/**
 * A copy of the cache in another thread that answers hits itself (the Linux UDP fast path,
 * fast-path.ts). The forwarder tells it what it may serve and what is gone.
 */
export interface HitReplica {
  /** `p` (a client-question entry) was cached or served here; the replica may serve it until `until` (ms). */
  offer(p: Prepared, until: number): void;
  /** `p` left the cache (evicted, replaced, expired). */
  drop(p: Prepared): void;
  /** Every entry is gone (flush, new policy, lost OS sets). */
  clear(): void;
}

/** Distinct upstream queries in flight at once; beyond this, SERVFAIL at once (bounds sockets and memory). */
export const MAX_INFLIGHT = 2048;

export class Forwarder {
  readonly #cfg: DnsConfig;
  #egresses: Record<string, EgressConfig>;
  #project: (name: string) => DomainProjection;
  readonly #store: CorrelationStore;
  readonly #log: DnsLog;
  readonly #now: () => number;
  readonly #cache: AnswerCache;
  readonly #inflight = new Map<string, Promise<Prepared>>();
  readonly #hosts = new Map<string, string[]>();
  readonly #limiter: RateLimiter;
  readonly #binder: Binder;
  #replica: HitReplica | null = null;
  readonly #connectTcp: ConnectTcp;
  readonly #udpSocket: (family: 4 | 6) => UdpSocket;
  readonly #udpPool: UdpSocketPool;
  readonly #paths: UpstreamPaths;
  readonly stats: ForwarderStats = {
    queries: 0,
    cacheHits: 0,
    misses: 0,
    coalesced: 0,
    malformed: 0,
    dropped: 0,
    rateLimited: 0,
    servfail: 0,
    blocked: 0,
    local: 0,
    hookFailures: 0,
    rehooks: 0,
    overloaded: 0,
  };

  constructor(opts: ForwarderOptions) {
    this.#cfg = opts.config;
    this.#egresses = opts.egresses;
    this.#project = opts.projectDomain;
    this.#store = opts.store;
    this.#log = opts.log ?? silentLog;
    this.#now = opts.now ?? Date.now;
    this.#cache = new AnswerCache(opts.config.cache.maxEntries, (p) => this.#replica?.drop(p));
    this.#limiter = new RateLimiter(opts.config.rateLimit);
    this.#binder = new Binder({
      ...(opts.onBindings ? { onBindings: opts.onBindings } : {}),
      ...(opts.hookTimeoutMs ? { hookTimeoutMs: opts.hookTimeoutMs } : {}),
      graceSeconds: opts.config.store.graceSeconds,
      egresses: () => this.#egresses,
      store: opts.store,
      log: this.#log,
      stats: this.stats,
    });
    this.#connectTcp = opts.connectTcp ?? defaultConnectTcp;
    this.#udpSocket = opts.udpSocket ?? defaultUdpSocket;
    this.#udpPool = new UdpSocketPool(this.#udpSocket);
    for (const [name, ips] of Object.entries(opts.config.hosts)) {
      const key = name.toLowerCase().replace(/\.$/, '');
      this.#hosts.set(key, ips.map((ip) => canonicalIp(ip)).filter((x): x is string => x !== null));
    }
    this.#paths = new UpstreamPaths({
      config: opts.config,
      egresses: () => this.#egresses,
      hosts: this.#hosts,
      log: this.#log,
      now: this.#now,
      connectTcp: this.#connectTcp,
      udpSocket: this.#udpSocket,
      udpPool: this.#udpPool,
      ...(opts.savedResolvConf ? { savedResolvConf: opts.savedResolvConf } : {}),
      ...(opts.resolvConf ? { resolvConf: opts.resolvConf } : {}),
      ...(opts.resolvedConf ? { resolvedConf: opts.resolvedConf } : {}),
      ...(opts.ownListeners ? { ownListeners: opts.ownListeners } : {}),
      ...(opts.interfaceSockets ? { interfaceSockets: opts.interfaceSockets } : {}),
      ...(opts.readAdapters ? { readAdapters: opts.readAdapters } : {}),
    });
  }

  get cacheSize(): number {
    return this.#cache.size;
  }

  upstreamHealth(): { upstream: string; up: boolean; fails: number }[] {
    return this.#paths.health();
  }

  /** A new policy: new projections and egresses, so cached answers and egress paths are dropped. */
  setPolicy(projectDomain: (name: string) => DomainProjection, egresses: Record<string, EgressConfig>): void {
    this.#project = projectDomain;
    this.#egresses = egresses;
    this.#store.setProjector(projectDomain);
    this.#cache.clear();
    this.#replica?.clear();
    this.#paths.dropEgressPools();
  }

  /**
   * Forgets every cached answer (and the bootstrap's cached host addresses); returns how many
   * answers were dropped. Unlike setPolicy, the upstream and egress resolver pools stay, with their
   * connections and health. Queries already in flight still complete and are cached.
   */
  flushCache(): number {
    const n = this.#cache.size;
    this.#cache.clear();
    this.#replica?.clear();
    this.#paths.clearBootCache();
    return n;
  }

  /** The OS backend lost its sets (restart, flush): every cached answer re-runs the hook on its next hit. */
  invalidateHooks(): void {
    this.#binder.gen++;
    this.#replica?.clear();
  }

  /** Attaches (or with null detaches) the replica that answers hits in another thread. */
  attachReplica(r: HitReplica | null): void {
    this.#replica = r;
  }

  /** Marks a cached client-question entry as recently used (hits the replica answered). */
  touch(key: string): void {
    this.#cache.touch(key);
  }

  close(): void {
    this.#udpPool.close();
    this.#paths.close();
  }

  // ------------------------------------------------------------------ entry point

  /**
   * Answers one query from `client` (its address, for the rate limit). Returns the answer bytes,
   * null to send nothing, or a promise of either. Never throws. `limited`: the caller (the UDP
   * fast path) already applied the rate limit to this query.
   */
  handle(msg: Buffer, client: string, udp: boolean, limited = false): Buffer | null | Promise<Buffer | null> {
    this.stats.queries++;
    const now = this.#now();
    if (msg.length < 12) {
      this.stats.dropped++;
      return null;
    }
    if (!limited && !this.#limiter.allow(client, now)) {
      this.stats.rateLimited++;
      return null;
    }
    let q: Query;
    try {
      q = parseQuery(msg);
    } catch (err) {
      return this.#malformed(msg, err);
    }
    if ((q.flags >> 11) & 0xf) return buildLocalAnswer(msg, q, RCODE.NOTIMP);
    try {
      // Local answers (canary, hosts) are never cached, so the cache is asked first: a hit
      // needs neither the name as text nor any table besides the cache.
      const hit = this.#cache.getQuery(q, msg, now);
      if (hit) {
        this.stats.cacheHits++;
        if (this.#binder.needsRehook(hit, now)) return this.#rehookThenServe(hit, msg, q, udp);
        if (this.#replica !== null) this.#offer(hit);
        return serve(hit, msg, q, now, udp);
      }
      const local = this.#localAnswer(msg, q);
      if (local) return local;
      return this.#miss(msg, q, udp);
    } catch (err) {
      this.#log.error({ err, name: q.name }, 'dns: unexpected failure');
      return this.#servfail(msg, q);
    }
  }

  #malformed(msg: Buffer, err: unknown): Buffer | null {
    this.stats.malformed++;
    let h;
    try {
      h = readHeader(msg);
    } catch {
      this.stats.dropped++;
      return null;
    }
    // Never answer something that claims to be a response: that is how reflection loops start.
    if (h.flags & FLAG.QR) {
      this.stats.dropped++;
      return null;
    }
    this.#log.debug({ reason: err instanceof WireError ? err.reason : String(err) }, 'dns: malformed query');
    return buildHeaderOnlyError(msg, RCODE.FORMERR);
  }

  #servfail(msg: Buffer, q: Query): Buffer {
    this.stats.servfail++;
    return buildLocalAnswer(msg, q, RCODE.SERVFAIL);
  }

  // ------------------------------------------------------------------ local answers

  #localAnswer(msg: Buffer, q: Query): Buffer | Promise<Buffer> | null {
    if (this.#cfg.firefoxCanary && q.name === CANARY) {
      this.stats.local++;
      return buildLocalAnswer(msg, q, RCODE.NXDOMAIN);
    }
    const hosts = this.#hosts.get(q.name);
    if (hosts === undefined) return null;
    this.stats.local++;
    const records: LocalRecord[] = [];
    for (const ip of hosts) {
      const r = addressRdata(ip);
      if (r && (r.type === q.qtype || q.qtype === TYPE.ANY)) records.push({ type: r.type, ttl: LOCAL_TTL, rdata: r.rdata });
    }
    const answer = buildLocalAnswer(msg, q, RCODE.NOERROR, records, true);
    if (records.length === 0) return answer;
    const addresses = hosts.filter((ip) => records.some((r) => r.type === (ip.includes(':') ? TYPE.AAAA : TYPE.A)));
    return this.#binder.bindLocal(q.name, addresses, this.#project(q.name).egresses, LOCAL_TTL).then(
      () => answer,
      () => this.#servfail(msg, q),
    );
  }

  #blockedAnswer(msg: Buffer, q: Query): Buffer {
    this.stats.blocked++;
    if (this.#cfg.blockAnswer === 'nxdomain') return buildLocalAnswer(msg, q, RCODE.NXDOMAIN);
    const records: LocalRecord[] = [];
    if (q.qtype === TYPE.A) records.push({ type: TYPE.A, ttl: LOCAL_TTL, rdata: Buffer.alloc(4) });
    if (q.qtype === TYPE.AAAA) records.push({ type: TYPE.AAAA, ttl: LOCAL_TTL, rdata: Buffer.alloc(16) });
    return buildLocalAnswer(msg, q, RCODE.NOERROR, records);
  }

  // ------------------------------------------------------------------ the hook

  async #rehookThenServe(p: Prepared, msg: Buffer, q: Query, udp: boolean): Promise<Buffer> {
    const ok = await this.#binder.rehook(p, this.#now());
    if (!ok && !this.#binder.isDirect(p.egresses)) return this.#servfail(msg, q);
    if (ok && this.#replica !== null) this.#offer(p);
    return serve(p, msg, q, this.#now(), udp);
  }

  /** Lets the replica serve a client-question entry for as long as no hook has to run for it. */
  #offer(p: Prepared): void {
    if (p.keyBytes === null) return;
    const until = this.#binder.fastUntil(p);
    if (until > this.#now()) this.#replica!.offer(p, until);
  }

  // ------------------------------------------------------------------ misses

  async #miss(msg: Buffer, q: Query, udp: boolean): Promise<Buffer> {
    let proj: DomainProjection;
    try {
      proj = this.#project(q.name);
    } catch (err) {
      this.#log.error({ err, name: q.name }, 'dns: projectDomain failed');
      return this.#servfail(msg, q);
    }
    if (proj.uniform && (proj.egress === 'block' || (proj.egress !== null && this.#egresses[proj.egress]?.type === 'block'))) {
      return this.#blockedAnswer(msg, q);
    }
    const path = this.#pathFor(proj);
    let pending = this.#inflight.get(q.key);
    if (pending) this.stats.coalesced++;
    else if (this.#inflight.size >= MAX_INFLIGHT) {
      this.stats.overloaded++;
      return this.#servfail(msg, q);
    } else {
      this.stats.misses++;
      pending = this.#resolve(buildUpstreamQuery(msg, q), q, path, proj, true, q.key);
      this.#inflight.set(q.key, pending);
      const mine = pending;
      void mine.then(
        () => this.#inflight.delete(q.key),
        () => this.#inflight.delete(q.key),
      );
    }
    try {
      const p = await pending;
      return serve(p, msg, q, this.#now(), udp);
    } catch (err) {
      this.#log.debug({ err, name: q.name }, 'dns: resolution failed');
      return this.#servfail(msg, q);
    }
  }

  /** '' for the default upstreams; the egress name when the name's one egress is a proxy. */
  #pathFor(proj: DomainProjection): string {
    if (!proj.uniform || proj.egress === null) return PATH_DEFAULT;
    const e = this.#egresses[proj.egress];
    return e && (e.type === 'socks5' || e.type === 'http' || e.type === 'interface') ? proj.egress : PATH_DEFAULT;
  }

  /** Asks the path's upstreams, checks and prepares the answer, records bindings, runs the hook, caches. */
  async #resolve(out: OutQuery, q: Query, path: string, proj: DomainProjection, withHook: boolean, cacheKey: string): Promise<Prepared> {
    const pool = this.#paths.poolFor(path);
    const answer = await pool.exchange(out);
    let bytes = answer.bytes;
    let a = analyse(bytes, q.name, q.qtype);
    if (this.#cfg.stripEch && !this.#binder.isDirect(proj.egresses) && a.records.some((r) => r.type === TYPE.HTTPS || r.type === TYPE.SVCB)) {
      const stripped = stripEch(bytes, a.records);
      if (stripped !== bytes) {
        bytes = stripped;
        a = analyse(bytes, q.name, q.qtype);
      }
    }
    const now = this.#now();
    const p = prepare(bytes, a, this.#cfg.cache, now, { name: q.name, upstream: answer.upstream, path, egresses: proj.egresses });
    // The hook (the OS backend filling its sets) starts first and the store is written while it
    // runs: both are done before the answer leaves, but the store no longer delays the hook.
    const hooked = withHook && p.addresses.length > 0 && this.#binder.active ? this.#binder.hookFor(p, now) : null;
    for (const addr of p.addresses) {
      this.#store.record(addr.ip, { name: q.name, chain: p.chain, ttlSeconds: p.ttl, upstream: answer.upstream });
    }
    if (hooked !== null) {
      const ok = await hooked;
      if (!ok && !this.#binder.isDirect(proj.egresses)) {
        throw new DnsError('SY_ERR_DNS_HOOK', `binding hook failed for ${q.name}`);
      }
    }
    if (!withHook || !this.#binder.active || p.addresses.length === 0 || p.hookGen === this.#binder.gen) {
      this.#cache.set(cacheKey, p, cacheKey === q.key);
      // Offered after the waiting clients are answered (copying it to the worker is not free);
      // by then it may have been flushed or evicted: only what is still cached is offered.
      if (this.#replica !== null) setImmediate(() => this.#cache.has(p) && this.#replica !== null && this.#offer(p));
    }
    return p;
  }

  /** Resolves an egress or upstream host name by static hosts and bootstrap addresses only. */
  resolveBootstrap(name: string): Promise<string[]> {
    return this.#paths.resolveHost(name);
  }

  // ------------------------------------------------------------------ EgressResolver

  /**
   * Addresses of `name` for connections leaving by `egress`: through that egress when it is a
   * proxy, else the default upstreams. Shares the cache and coalescing; runs no hook (the front
   * door dials these itself).
   */
  async resolveFor(name: string, egress: string, family?: 4 | 6): Promise<string[]> {
    const lit = canonicalIp(name);
    if (lit !== null) return [lit];
    const key = name.toLowerCase().replace(/\.$/, '');
    const e = this.#egresses[egress];
    if (egress === 'block' || e?.type === 'block') throw new DnsError('SY_ERR_DNS_BLOCKED', `${name}: egress ${egress} blocks`);
    if (!e && egress !== 'direct') throw new DnsError('SY_ERR_DNS_NO_UPSTREAM', `egress ${egress} is not declared`);
    const hosts = this.#hosts.get(key);
    if (hosts?.length) return hosts.filter((ip) => family === undefined || (family === 6) === ip.includes(':'));
    const path = e && (e.type === 'socks5' || e.type === 'http' || e.type === 'interface') ? egress : PATH_DEFAULT;
    const proj: DomainProjection = { egresses: [egress], uniform: true, egress, rule: null };
    const types = family === 4 ? [TYPE.A] : family === 6 ? [TYPE.AAAA] : [TYPE.A, TYPE.AAAA];
    const out: string[] = [];
    for (const qtype of types) {
      const nq = buildNameQuery(key, qtype);
      const q = parseQuery(nq.buf);
      const cacheKey = `${path}|${q.key}`;
      const now = this.#now();
      let p = this.#cache.get(cacheKey, now);
      if (!p) {
        let pending = this.#inflight.get(cacheKey);
        if (!pending) {
          pending = this.#resolve(buildUpstreamQuery(nq.buf, q), q, path, proj, false, cacheKey);
          this.#inflight.set(cacheKey, pending);
          const mine = pending;
          void mine.then(
            () => this.#inflight.delete(cacheKey),
            () => this.#inflight.delete(cacheKey),
          );
        }
        try {
          p = await pending;
        } catch (err) {
          if (qtype === types[types.length - 1] && out.length === 0) throw err;
          continue;
        }
      }
      for (const a of p.addresses) if (a.family === (qtype === TYPE.A ? 4 : 6)) out.push(a.ip);
    }
    if (out.length === 0) throw new DnsError('SY_ERR_DNS_NOT_FOUND', `no address for ${name} via ${egress}`);
    return out;
  }
}
