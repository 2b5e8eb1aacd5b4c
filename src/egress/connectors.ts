// One connector per egress type. A connector turns a destination (IP and/or name, port) into a
// connected Upstream that is ready to relay — for proxies, after the proxy said yes. Names are
// resolved through the injected EgressResolver for this egress, never through the OS resolver
// (which may be switchyard itself).
import net from 'node:net';
import { EgressError, OsCallError } from '../errors.ts';
import type { EgressConfig, HostPort } from '../policy/types.ts';
import type { EgressResolver } from '../flow/types.ts';
import { dial, type SocketFactory, type Upstream } from './upstream.ts';
import type { CancelSignal } from './cancel.ts';
import { socks5Handshake } from './socks5-client.ts';
import { httpConnect } from './http-client.ts';
import { CMD } from './socks5-wire.ts';
import { InterfaceResolver, interfaceAddresses, type IfaceRoots } from './iface.ts';

export interface ConnectRequest {
  /** The IP the app dialled, when known (transparent flows, SOCKS/HTTP IP literals). */
  ip?: string;
  /** Destination name: client-given (SOCKS domain, HTTP Host) or sniffed. */
  domain?: string;
  /**
   * Whether a proxy egress may be sent the name instead of an IP: true for names the client gave
   * the proxy inbound, and for sniffed names that agree with the destination. Store hints: false.
   */
  domainTrusted: boolean;
  port: number;
}

export interface ConnectorDeps {
  resolver: EgressResolver;
  socketFactory: SocketFactory;
  connectTimeoutMs: number;
  ifaceRoots?: IfaceRoots;
}

export interface Connector {
  readonly config: EgressConfig;
  connect(req: ConnectRequest, signal?: CancelSignal): Promise<Upstream>;
  /** Cheap reachability check used when no health target is configured. */
  reachable(signal?: CancelSignal): Promise<void>;
}

async function resolveFor(deps: ConnectorDeps, egress: string, name: string): Promise<string[]> {
  if (net.isIP(name)) return [name];
  let list: string[];
  try {
    list = await deps.resolver.resolve(name, egress);
  } catch (err) {
    throw new EgressError('SY_ERR_EGRESS_RESOLVE', 'resolve', egress, `cannot resolve ${name}: ${(err as Error).message}`, { cause: err });
  }
  const ips = list.filter((a) => net.isIP(a));
  if (ips.length === 0) throw new EgressError('SY_ERR_EGRESS_RESOLVE', 'resolve', egress, `no address for ${name}`);
  return ips;
}

/** Addresses to dial for a request: the app's IP when given, else the name's addresses. */
async function targetAddresses(deps: ConnectorDeps, egress: string, req: ConnectRequest): Promise<string[]> {
  if (req.ip) return [req.ip];
  if (req.domain) return resolveFor(deps, egress, req.domain);
  throw new EgressError('SY_ERR_EGRESS_CONNECT', 'host-unreachable', egress, 'request has neither IP nor name');
}

/** Tries up to two addresses (e.g. an AAAA then an A) before giving up. */
async function dialAny(addrs: string[], tryOne: (a: string) => Promise<Upstream>): Promise<Upstream> {
  let last: unknown;
  for (const a of addrs.slice(0, 2)) {
    try {
      return await tryOne(a);
    } catch (err) {
      last = err;
      if (err instanceof EgressError && err.failure === 'interface') break;
    }
  }
  throw last;
}

function directConnector(cfg: EgressConfig, deps: ConnectorDeps): Connector {
  return {
    config: cfg,
    async connect(req, signal) {
      const dialTo = (address: string) => dial({ factory: deps.socketFactory, egress: cfg.name, address, port: req.port, timeoutMs: deps.connectTimeoutMs, signal, role: 'target' });
      // One known address: dial it without the multi-address loop (fewer promise hops per flow).
      if (req.ip) return dialTo(req.ip);
      return dialAny(await targetAddresses(deps, cfg.name, req), dialTo);
    },
    async reachable() {},
  };
}

function interfaceConnector(cfg: Extract<EgressConfig, { type: 'interface' }>, deps: ConnectorDeps): Connector {
  const ifr = new InterfaceResolver(cfg.interface, deps.ifaceRoots);
  const current = (): string => {
    const name = ifr.current();
    if (!name) throw new EgressError('SY_ERR_EGRESS_INTERFACE', 'interface', cfg.name, cfg.interface === 'auto' ? 'no physical interface carries the default route' : `interface ${cfg.interface} not found`);
    if (!interfaceAddresses(name)) throw new EgressError('SY_ERR_EGRESS_INTERFACE', 'interface', cfg.name, `interface ${name} not found or has no address`);
    return name;
  };
  const dialVia = async (device: string, address: string, port: number, signal?: CancelSignal): Promise<Upstream> => {
    try {
      return await dial({ factory: deps.socketFactory, egress: cfg.name, address, port, timeoutMs: deps.connectTimeoutMs, signal, device, role: 'target' });
    } catch (err) {
      // SO_BINDTODEVICE refused (no CAP_NET_RAW, or no OS factory): fall back to the interface's
      // own address as source, which steers by source-based routing only.
      const cause = err instanceof EgressError ? err.cause : undefined;
      const denied = err instanceof EgressError && err.failure === 'interface' && (!(cause instanceof OsCallError) || cause.errno === 1);
      if (!denied) throw err;
      const addrs = interfaceAddresses(device);
      const local = net.isIP(address) === 6 ? addrs?.v6 : addrs?.v4;
      if (!local) throw new EgressError('SY_ERR_EGRESS_INTERFACE', 'interface', cfg.name, `interface ${device} has no IPv${net.isIP(address)} address`);
      return dial({ factory: deps.socketFactory, egress: cfg.name, address, port, timeoutMs: deps.connectTimeoutMs, signal, localAddress: local, role: 'target' });
    }
  };
  return {
    config: cfg,
    async connect(req, signal) {
      const device = current();
      const addrs = await targetAddresses(deps, cfg.name, req);
      return dialAny(addrs, (a) => dialVia(device, a, req.port, signal));
    },
    async reachable() {
      current();
    },
  };
}

/** What a proxy egress sends as destination: the trusted name, else the IP, else a resolved IP. */
async function proxyTarget(deps: ConnectorDeps, cfg: { name: string; sendDomain: boolean }, req: ConnectRequest): Promise<string> {
  if (req.domain && req.domainTrusted && cfg.sendDomain) return req.domain;
  if (req.ip) return req.ip;
  if (req.domain) return (await resolveFor(deps, cfg.name, req.domain))[0]!;
  throw new EgressError('SY_ERR_EGRESS_CONNECT', 'host-unreachable', cfg.name, 'request has neither IP nor name');
}

async function dialProxy(deps: ConnectorDeps, egress: string, endpoint: HostPort, signal?: CancelSignal): Promise<Upstream> {
  // The proxy's own host name is a bootstrap name: resolved for `direct`.
  let addrs: string[];
  try {
    addrs = await resolveFor(deps, 'direct', endpoint.host);
  } catch (err) {
    throw new EgressError('SY_ERR_EGRESS_PROXY', 'proxy', egress, `cannot resolve proxy ${endpoint.host}: ${(err as Error).message}`, { cause: err });
  }
  return dialAny(addrs, (address) => dial({ factory: deps.socketFactory, egress, address, port: endpoint.port, timeoutMs: deps.connectTimeoutMs, signal, role: 'proxy' }));
}

function socks5Connector(cfg: Extract<EgressConfig, { type: 'socks5' }>, deps: ConnectorDeps): Connector {
  return {
    config: cfg,
    async connect(req, signal) {
      const host = await proxyTarget(deps, cfg, req);
      const up = await dialProxy(deps, cfg.name, cfg.endpoint, signal);
      try {
        await socks5Handshake(up, { egress: cfg.name, auth: cfg.auth, command: CMD.CONNECT, host, port: req.port, timeoutMs: deps.connectTimeoutMs });
        return up;
      } catch (err) {
        up.destroy();
        throw err;
      }
    },
    async reachable(signal) {
      (await dialProxy(deps, cfg.name, cfg.endpoint, signal)).destroy();
    },
  };
}

function httpConnector(cfg: Extract<EgressConfig, { type: 'http' }>, deps: ConnectorDeps): Connector {
  return {
    config: cfg,
    async connect(req, signal) {
      const host = await proxyTarget(deps, cfg, req);
      const up = await dialProxy(deps, cfg.name, cfg.endpoint, signal);
      try {
        await httpConnect(up, { egress: cfg.name, auth: cfg.auth, host, port: req.port, timeoutMs: deps.connectTimeoutMs });
        return up;
      } catch (err) {
        up.destroy();
        throw err;
      }
    },
    async reachable(signal) {
      (await dialProxy(deps, cfg.name, cfg.endpoint, signal)).destroy();
    },
  };
}

function blockConnector(cfg: EgressConfig): Connector {
  return {
    config: cfg,
    connect: () => Promise.reject(new EgressError('SY_ERR_EGRESS_BLOCKED', 'blocked', cfg.name, 'blocked by policy')),
    async reachable() {},
  };
}

export function createConnector(cfg: EgressConfig, deps: ConnectorDeps): Connector {
  switch (cfg.type) {
    case 'direct':
      return directConnector(cfg, deps);
    case 'interface':
      return interfaceConnector(cfg, deps);
    case 'socks5':
      return socks5Connector(cfg, deps);
    case 'http':
      return httpConnector(cfg, deps);
    case 'block':
      return blockConnector(cfg);
  }
}
