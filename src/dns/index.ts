// The DNS forwarder's public face: start it from the config, get back its store (the front door's
// CorrelationLookup), an EgressResolver, and close(). See docs/dns.md.
import { join } from 'node:path';
import type { BindingHook, EgressResolver } from '../flow/types.ts';
import type { Config, DomainProjection } from '../policy/types.ts';
import type { ConnectTcp } from './dial.ts';
import type { InterfaceSockets } from './iface-path.ts';
import type { AdapterDnsInfo } from './system-windows.ts';
import { Forwarder, silentLog } from './forwarder.ts';
import type { DnsLog, ForwarderStats } from './forwarder.ts';
import { FastReplicas } from './fast-replicas.ts';
import type { FastPathStats } from './fast-path.ts';
import { listen } from './listen.ts';
import type { Listener } from './listen.ts';
import { CorrelationStore, STORE_FILE_NAME } from './store.ts';
import { SAVED_RESOLVERS_FILE } from './system.ts';
import type { HostPort } from '../policy/types.ts';
import type { Socket as UdpSocket } from 'node:dgram';

export { CorrelationStore, canonicalIp, STORE_FILE_NAME } from './store.ts';
export { Forwarder, CANARY } from './forwarder.ts';
export type { DnsLog, ForwarderStats } from './forwarder.ts';
export type { FastPathStats } from './fast-path.ts';
export { parseUpstream } from './upstream.ts';
export type { InterfaceSockets } from './iface-path.ts';
export { selectWindowsResolvers, windowsSystemResolvers } from './system-windows.ts';
export type { AdapterDnsInfo } from './system-windows.ts';
export { systemUpstreams, parseResolvConf, SAVED_RESOLVERS_FILE } from './system.ts';

export interface StartDnsOptions {
  config: Pick<Config, 'dns' | 'egress'>;
  projectDomain: (name: string) => DomainProjection;
  onBindings?: BindingHook;
  /** An existing store (e.g. shared with the front door); else one is made from config.dns.store. */
  store?: CorrelationStore;
  /** Where the store persists (`dns-store.json` inside); null = memory only. */
  stateDir?: string | null;
  log?: DnsLog;
  connectTcp?: ConnectTcp;
  udpSocket?: (family: 4 | 6) => UdpSocket;
  resolvConf?: string;
  resolvedConf?: string;
  hookTimeoutMs?: number;
  /** Seconds between saves of the store when it changed (default 30). */
  autosaveSeconds?: number;
  /** SO_BINDTODEVICE for `interface` egresses' resolver sockets (Linux; see docs/dns.md). */
  interfaceSockets?: InterfaceSockets;
  /** Windows: the adapters' DNS servers (iphlpapi adapterDnsServers), used when no upstream is configured. */
  readAdapters?: () => AdapterDnsInfo[];
  /**
   * Try the UDP fast path (Linux: a worker thread answering cache hits with recvmmsg/sendmmsg;
   * docs/dns.md). Default true; where it cannot start, the listener uses a dgram socket.
   */
  fastPath?: boolean;
  /**
   * Default true: at low load the main thread reads the fast path's socket itself (a miss takes no
   * thread hop) and the worker takes over when queries queue up; false: the worker always reads.
   */
  fastPathMainAtLowLoad?: boolean;
}

export interface DnsForwarder {
  /** The addresses actually bound (port 0 resolved). */
  addresses: HostPort[];
  store: CorrelationStore;
  resolver: EgressResolver;
  /** Resolves an egress or upstream host name by static hosts and bootstrap addresses only. */
  resolveBootstrap(name: string): Promise<string[]>;
  forwarder: Forwarder;
  /** Counters; queries, cacheHits, rateLimited and dropped include what the UDP fast path answered or dropped. */
  stats(): ForwarderStats & { cacheEntries: number; storeEntries: number; storeMax: number; fastPath: FastPathStats };
  /** Per listen address, the UDP fast path serving it (null: dgram). For status output and tests. */
  listeners: Listener[];
  /** Drops every cached answer, keeping upstream and egress resolver paths; returns how many. */
  flushCache(): number;
  /** Applies a new policy (drops cached answers and egress paths). */
  setPolicy(projectDomain: (name: string) => DomainProjection, egress: Config['egress']): void;
  close(): Promise<void>;
}

export async function startDnsForwarder(opts: StartDnsOptions): Promise<DnsForwarder> {
  const cfg = opts.config.dns;
  const log = opts.log ?? silentLog;
  const stateDir = opts.stateDir ?? null;
  const store =
    opts.store ??
    new CorrelationStore({
      maxEntries: cfg.store.maxEntries,
      graceSeconds: cfg.store.graceSeconds,
      file: cfg.store.persist && stateDir ? join(stateDir, STORE_FILE_NAME) : null,
      projectDomain: opts.projectDomain,
    });
  if (!opts.store) {
    const r = await store.load();
    if (r.problem) log.warn({ problem: r.problem }, 'dns: store not reloaded');
    else if (r.loaded) log.info({ loaded: r.loaded }, 'dns: store reloaded');
  }
  store.setProjector(opts.projectDomain);
  const forwarder = new Forwarder({
    config: cfg,
    egresses: opts.config.egress,
    projectDomain: opts.projectDomain,
    ...(opts.onBindings ? { onBindings: opts.onBindings } : {}),
    store,
    log,
    ...(opts.connectTcp ? { connectTcp: opts.connectTcp } : {}),
    ...(opts.udpSocket ? { udpSocket: opts.udpSocket } : {}),
    ...(stateDir ? { savedResolvConf: join(stateDir, SAVED_RESOLVERS_FILE) } : {}),
    ...(opts.resolvConf ? { resolvConf: opts.resolvConf } : {}),
    ...(opts.resolvedConf ? { resolvedConf: opts.resolvedConf } : {}),
    ownListeners: cfg.listen,
    ...(opts.hookTimeoutMs ? { hookTimeoutMs: opts.hookTimeoutMs } : {}),
    ...(opts.interfaceSockets ? { interfaceSockets: opts.interfaceSockets } : {}),
    ...(opts.readAdapters ? { readAdapters: opts.readAdapters } : {}),
  });
  const listeners: Listener[] = [];
  const replicas = new FastReplicas();
  replicas.onTouch = (key) => forwarder.touch(key);
  const fast = opts.fastPath === false ? undefined : { replicas, options: { maxEntries: cfg.cache.maxEntries, rateLimit: cfg.rateLimit, ...(opts.fastPathMainAtLowLoad === false ? { mainAtLowLoad: false } : {}) } };
  // The replica is attached before the first listener exists, so no cached entry is missed.
  forwarder.attachReplica(replicas);
  // All addresses at once (each fast listener's worker takes a moment to load); on any failure,
  // close the ones that did bind.
  const bound = await Promise.allSettled(cfg.listen.map((addr) => listen(addr, (m, c, u, l) => forwarder.handle(m, c, u, l), log, undefined, fast)));
  for (const b of bound) if (b.status === 'fulfilled') listeners.push(b.value);
  const failed = bound.find((b): b is PromiseRejectedResult => b.status === 'rejected');
  if (failed) {
    await Promise.all(listeners.map((l) => l.close()));
    forwarder.close();
    throw failed.reason;
  }
  store.startAutosave((opts.autosaveSeconds ?? 30) * 1000, (err) => log.warn({ err }, 'dns: saving the store failed'));
  const resolver: EgressResolver = { resolve: (name, egress, family) => forwarder.resolveFor(name, egress, family) };
  let closed = false;
  return {
    addresses: listeners.map((l) => l.address),
    store,
    resolver,
    resolveBootstrap: (name) => forwarder.resolveBootstrap(name),
    forwarder,
    listeners,
    stats: () => {
      const f = replicas.stats();
      const s = forwarder.stats;
      return {
        ...s,
        queries: s.queries + f.hits + f.rateLimited + f.dropped + f.overflow,
        cacheHits: s.cacheHits + f.hits,
        rateLimited: s.rateLimited + f.rateLimited,
        dropped: s.dropped + f.dropped + f.overflow,
        cacheEntries: forwarder.cacheSize,
        storeEntries: store.size,
        storeMax: store.maxEntries,
        fastPath: f,
      };
    },
    flushCache: () => forwarder.flushCache(),
    setPolicy: (p, e) => forwarder.setPolicy(p, e),
    close: async () => {
      if (closed) return;
      closed = true;
      await Promise.all(listeners.map((l) => l.close()));
      forwarder.close();
      if (!opts.store) await store.close();
    },
  };
}
