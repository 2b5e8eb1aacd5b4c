// The configured egresses as one object: connect a flow through a named egress, honouring
// health and explicit fallbacks. Fail closed: an egress that is down refuses the flow with its
// reason unless its config names a `fallback` — nothing is silently sent another way.
import { EventEmitter } from 'node:events';
import { EgressError } from '../errors.ts';
import type { EgressConfig } from '../policy/types.ts';
import type { EgressResolver } from '../flow/types.ts';
import { createConnector, type Connector, type ConnectRequest } from './connectors.ts';
import { HealthMonitor, type HealthStatus } from './health.ts';
import { plainSocketFactory, type SocketFactory, type Upstream } from './upstream.ts';
import type { IfaceRoots } from './iface.ts';
import type { CancelSignal } from './cancel.ts';
import type dgram from 'node:dgram';
import { openUdpChannel, type UdpChannel } from './udp.ts';

export interface EgressSetOptions {
  egresses: Record<string, EgressConfig>;
  resolver: EgressResolver;
  /** Outgoing socket maker; the daemon passes the OS's exempt-socket factory. */
  socketFactory?: SocketFactory;
  connectTimeoutMs?: number;
  ifaceRoots?: IfaceRoots;
  /** Called with each datagram socket after bind (Linux: mark it exempt). */
  udpSocketHook?: (s: dgram.Socket) => void;
  /** SO_BINDTODEVICE for `interface` UDP (see UdpDeps.udpDeviceBinder). */
  udpDeviceBinder?: (s: dgram.Socket, device: string) => void;
}

export interface EgressConnection {
  upstream: Upstream;
  /** The egress that carried the flow (differs from the requested one after a fallback). */
  egress: string;
  /** Set when a fallback was taken: the egress that was down. */
  fallbackFrom: string | null;
}

export interface EgressSetEvents {
  health: [HealthStatus];
}

export class EgressSet extends EventEmitter<EgressSetEvents> {
  private readonly entries = new Map<string, { config: EgressConfig; connector: Connector; health: HealthMonitor }>();
  readonly resolver: EgressResolver;
  readonly socketFactory: SocketFactory;
  readonly connectTimeoutMs: number;
  private readonly udpSocketHook: ((s: dgram.Socket) => void) | undefined;
  private readonly udpDeviceBinder: ((s: dgram.Socket, device: string) => void) | undefined;

  constructor(o: EgressSetOptions) {
    super();
    this.udpSocketHook = o.udpSocketHook;
    this.udpDeviceBinder = o.udpDeviceBinder;
    this.resolver = o.resolver;
    this.socketFactory = o.socketFactory ?? plainSocketFactory;
    this.connectTimeoutMs = o.connectTimeoutMs ?? 10_000;
    const deps = { resolver: o.resolver, socketFactory: this.socketFactory, connectTimeoutMs: this.connectTimeoutMs, ifaceRoots: o.ifaceRoots };
    for (const [name, config] of Object.entries(o.egresses)) {
      const connector = createConnector(config, deps);
      const health = new HealthMonitor(config, connector, (s) => this.emit('health', s));
      this.entries.set(name, { config, connector, health });
    }
  }

  names(): string[] {
    return [...this.entries.keys()];
  }

  config(name: string): EgressConfig | undefined {
    return this.entries.get(name)?.config;
  }

  health(name: string): HealthStatus | undefined {
    return this.entries.get(name)?.health.get();
  }

  healthAll(): HealthStatus[] {
    return [...this.entries.values()].map((e) => e.health.get());
  }

  probe(name: string): Promise<HealthStatus> {
    const e = this.entries.get(name);
    if (!e) return Promise.reject(new EgressError('SY_ERR_EGRESS_UNKNOWN', 'unknown-egress', name, 'not configured'));
    return e.health.probe();
  }

  start(): void {
    for (const e of this.entries.values()) e.health.start();
  }

  stop(): void {
    for (const e of this.entries.values()) e.health.stop();
  }

  /**
   * The egress a flow for `name` actually takes: itself when not down, else its explicit
   * fallback chain; refuses (EgressError) for block, unknown and down-without-fallback.
   */
  select(name: string): { egress: string; config: EgressConfig; fallbackFrom: string | null } {
    // Only a fallback chain needs the loop guard: no Set for the usual first-egress-is-up case
    // (this runs once per flow).
    let seen: Set<string> | undefined;
    let current = name;
    let fallbackFrom: string | null = null;
    for (;;) {
      const e = this.entries.get(current);
      if (!e) throw new EgressError('SY_ERR_EGRESS_UNKNOWN', 'unknown-egress', current, 'not configured');
      if (e.config.type === 'block') throw new EgressError('SY_ERR_EGRESS_BLOCKED', 'blocked', current, 'blocked by policy');
      const h = e.health.get();
      if (h.state !== 'down') return { egress: current, config: e.config, fallbackFrom };
      (seen ??= new Set()).add(current);
      const next = e.config.fallback;
      if (!next || seen.has(next)) throw new EgressError('SY_ERR_EGRESS_DOWN', 'down', current, `down (${h.reason ?? 'no reason recorded'}); no fallback, refusing (fail closed)`);
      fallbackFrom ??= current;
      current = next;
    }
  }

  /** A UDP channel through the (health-selected) egress; refuses http, block and down egresses. */
  async openUdp(name: string): Promise<UdpChannel> {
    const sel = this.select(name);
    return openUdpChannel(sel.config, { resolver: this.resolver, socketFactory: this.socketFactory, connectTimeoutMs: this.connectTimeoutMs, udpSocketHook: this.udpSocketHook, ...(this.udpDeviceBinder ? { udpDeviceBinder: this.udpDeviceBinder } : {}) });
  }

  async connect(name: string, req: ConnectRequest, signal?: CancelSignal): Promise<EgressConnection> {
    const sel = this.select(name);
    const e = this.entries.get(sel.egress)!;
    try {
      const upstream = await e.connector.connect(req, signal);
      return { upstream, egress: sel.egress, fallbackFrom: sel.fallbackFrom };
    } catch (err) {
      // The proxy itself failed (not the destination behind it): mark the egress down now.
      if (err instanceof EgressError && err.proxyUnreachable) e.health.reportProxyFailure(err.message);
      throw err;
    }
  }
}

export function createEgressSet(o: EgressSetOptions): EgressSet {
  return new EgressSet(o);
}
