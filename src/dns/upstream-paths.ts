// Where the forwarder's upstream queries go, per path: the default upstreams (configured, or the
// system's resolvers), one pool per proxy or interface egress (built on first use), and the
// bootstrap that resolves upstream and egress host names without switchyard and without the OS
// resolver (static hosts, then the bootstrap addresses over plain UDP, direct). Moved out of
// forwarder.ts unchanged in behaviour.
import type { Socket as UdpSocket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import type { DnsConfig, EgressConfig } from '../policy/types.ts';
import { analyse } from './answer.ts';
import { buildNameQuery } from './build.ts';
import { directDialer, egressDialer } from './dial.ts';
import type { ConnectTcp, ResolveHost } from './dial.ts';
import { DnsError } from './errors.ts';
import type { DnsLog } from './forwarder.ts';
import { makeInterfacePool } from './iface-path.ts';
import type { InterfaceSockets } from './iface-path.ts';
import { UpstreamPool } from './pool.ts';
import { systemUpstreams } from './system.ts';
import { windowsSystemResolvers } from './system-windows.ts';
import type { AdapterDnsInfo } from './system-windows.ts';
import type { UdpSocketPool } from './udp-pool.ts';
import { parseUpstream } from './upstream.ts';
import type { TransportDeps, UpstreamSpec } from './upstream.ts';
import { TYPE } from './wire.ts';

/** The path of names asked through the default upstreams; any other path is an egress name. */
export const PATH_DEFAULT = '';

export interface UpstreamPathsOptions {
  config: DnsConfig;
  /** The current egresses (they change with the policy). */
  egresses: () => Record<string, EgressConfig>;
  /** Static hosts, keys lower case without the final dot. */
  hosts: Map<string, string[]>;
  log: DnsLog;
  now: () => number;
  connectTcp: ConnectTcp;
  udpSocket: (family: 4 | 6) => UdpSocket;
  udpPool: UdpSocketPool;
  savedResolvConf?: string;
  resolvConf?: string;
  resolvedConf?: string;
  ownListeners?: { host: string; port: number }[];
  interfaceSockets?: InterfaceSockets;
  readAdapters?: () => AdapterDnsInfo[];
}

export class UpstreamPaths {
  readonly #o: UpstreamPathsOptions;
  readonly #cfg: DnsConfig;
  #defaultPool: UpstreamPool | null = null;
  #defaultUrls: string[] = [];
  #bootstrapPool: UpstreamPool | null = null;
  readonly #egressPools = new Map<string, UpstreamPool | DnsError>();
  readonly #bootCache = new Map<string, { ips: string[]; until: number }>();
  #extraCa: Buffer | undefined;

  constructor(o: UpstreamPathsOptions) {
    this.#o = o;
    this.#cfg = o.config;
    if (o.config.caFile) {
      try {
        this.#extraCa = readFileSync(o.config.caFile);
      } catch (err) {
        throw new DnsError('SY_ERR_DNS_UPSTREAM_URL', `cannot read [dns] ca_file ${o.config.caFile}: ${(err as Error).message}`, err);
      }
    }
    // Parse every upstream URL now, so a bad config fails at start rather than on the first query.
    this.#defaultPool = this.#makeDefaultPool();
  }

  health(): { upstream: string; up: boolean; fails: number }[] {
    return this.#defaultPool?.health() ?? [];
  }

  /** A new policy: egress paths are rebuilt on first use. */
  dropEgressPools(): void {
    for (const p of this.#egressPools.values()) if (p instanceof UpstreamPool) p.close();
    this.#egressPools.clear();
  }

  /** Forgets the bootstrap's cached host addresses (cache flush). */
  clearBootCache(): void {
    this.#bootCache.clear();
  }

  close(): void {
    this.#defaultPool?.close();
    this.#bootstrapPool?.close();
    this.dropEgressPools();
  }

  #deps(): TransportDeps {
    return { dial: directDialer(this.#o.connectTcp, this.resolveHost), udpPool: this.#o.udpPool, resolveHost: this.resolveHost };
  }

  #makeDefaultPool(): UpstreamPool {
    let urls = this.#cfg.upstreams;
    if (urls.length === 0) {
      const o = this.#o;
      urls = o.readAdapters
        ? windowsSystemResolvers({ readAdapters: o.readAdapters, ownListeners: o.ownListeners ?? this.#cfg.listen, ...(o.savedResolvConf ? { savedConf: o.savedResolvConf } : {}), onError: (err) => o.log.warn({ err }, 'dns: reading the adapters\' DNS servers failed') })
        : systemUpstreams({
            ...(o.savedResolvConf ? { savedConf: o.savedResolvConf } : {}),
            ...(o.resolvConf ? { resolvConf: o.resolvConf } : {}),
            ...(o.resolvedConf ? { resolvedConf: o.resolvedConf } : {}),
            ownListeners: o.ownListeners ?? this.#cfg.listen,
          });
      if (urls.length === 0) o.log.warn({}, 'dns: no upstreams configured and none usable in resolv.conf');
    }
    this.#defaultUrls = urls;
    return new UpstreamPool(urls.map((u) => this.#parse(u)), this.#deps(), this.#cfg.timeoutMs);
  }

  #parse(url: string): UpstreamSpec {
    return parseUpstream(url, undefined, this.#extraCa);
  }

  /** The pool for `path` (PATH_DEFAULT or an egress name); throws the egress's error if it cannot carry DNS. */
  poolFor(path: string): UpstreamPool {
    if (path === PATH_DEFAULT) return this.#defaultPool!;
    let pool = this.#egressPools.get(path);
    if (!pool) {
      pool = this.#makeEgressPool(path);
      this.#egressPools.set(path, pool);
    }
    if (pool instanceof DnsError) throw pool;
    return pool;
  }

  /**
   * Upstreams reached through a proxy egress: its own `dns` list, else the default upstreams.
   * UDP cannot cross a CONNECT, so udp:// is asked over TCP; an egress that only obfuscates
   * accepts only DoT/DoH (the ISP could read plaintext DNS through it).
   */
  #makeEgressPool(name: string): UpstreamPool | DnsError {
    const e = this.#o.egresses()[name];
    if (!e) return new DnsError('SY_ERR_DNS_NO_UPSTREAM', `egress ${name} is not declared`);
    if (e.type === 'interface') {
      const o = this.#o;
      return makeInterfacePool(e, { defaultUrls: this.#defaultUrls, parse: (u) => this.#parse(u), resolveHost: this.resolveHost, timeoutMs: this.#cfg.timeoutMs, udpSocket: o.udpSocket, ...(o.interfaceSockets ? { sockets: o.interfaceSockets } : {}) });
    }
    const dial = egressDialer(e, this.#o.connectTcp, this.resolveHost);
    if (!dial) return new DnsError('SY_ERR_DNS_NO_UPSTREAM', `egress ${name} (${e.type}) cannot carry DNS`);
    try {
      let specs = (e.dns.length ? e.dns : this.#cfg.upstreams).map((u) => this.#parse(u));
      if (e.obfuscatesOnly) specs = specs.filter((s) => s.proto === 'tls' || s.proto === 'https');
      if (specs.length === 0) {
        return new DnsError('SY_ERR_DNS_NO_UPSTREAM', `egress ${name} has no resolver it may use${e.obfuscatesOnly ? ' (it only obfuscates: DoT or DoH needed)' : ''}`);
      }
      return new UpstreamPool(specs, { dial, udpPool: null, resolveHost: this.resolveHost }, this.#cfg.timeoutMs);
    } catch (err) {
      return err instanceof DnsError ? err : new DnsError('SY_ERR_DNS_UPSTREAM_URL', String(err));
    }
  }

  /**
   * Resolves an upstream's or egress's host name without switchyard and without the OS resolver:
   * static hosts first, then the bootstrap addresses (plain DNS over UDP, direct).
   */
  readonly resolveHost: ResolveHost = async (name) => {
    const key = name.toLowerCase().replace(/\.$/, '');
    const hosts = this.#o.hosts.get(key);
    if (hosts?.length) return hosts;
    const now = this.#o.now();
    const cached = this.#bootCache.get(key);
    if (cached && cached.until > now) return cached.ips;
    if (this.#cfg.bootstrap.length === 0) throw new DnsError('SY_ERR_DNS_NO_UPSTREAM', `no bootstrap address to resolve ${name} (set [dns] bootstrap or a static host)`);
    this.#bootstrapPool ??= new UpstreamPool(
      this.#cfg.bootstrap.map((b) => parseUpstream(b)),
      { dial: directDialer(this.#o.connectTcp, async (n) => { throw new DnsError('SY_ERR_DNS_NO_UPSTREAM', `bootstrap cannot resolve ${n}`); }), udpPool: this.#o.udpPool, resolveHost: async () => [] },
      this.#cfg.timeoutMs,
    );
    const ips: string[] = [];
    let ttl = 3600;
    for (const qtype of [TYPE.A, TYPE.AAAA]) {
      const out = buildNameQuery(key, qtype);
      try {
        const ans = await this.#bootstrapPool.exchange(out);
        const a = analyse(ans.bytes, key, qtype);
        for (const x of a.addresses) if (x.family === (qtype === TYPE.A ? 4 : 6)) ips.push(x.ip);
        if (a.cacheTtl !== null) ttl = Math.min(ttl, Math.max(60, a.cacheTtl));
      } catch (err) {
        this.#o.log.debug({ err, name }, 'dns: bootstrap lookup failed');
      }
    }
    if (ips.length === 0) throw new DnsError('SY_ERR_DNS_NOT_FOUND', `bootstrap found no address for ${name}`);
    this.#bootCache.set(key, { ips, until: now + ttl * 1000 });
    return ips;
  };
}
