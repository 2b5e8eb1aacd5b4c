// Health of one egress, probed *through* it: a proxy that accepts TCP while its tunnel is down
// must read as down, so the probe asks the egress to reach `health.target`. Without a target the
// probe only checks the proxy (or interface) itself. A proxy-level failure seen by a real flow
// marks the egress down at once; probes bring it back up.
import type { EgressConfig } from '../policy/types.ts';
import type { Connector } from './connectors.ts';

export type HealthState = 'up' | 'down' | 'unknown';

export interface HealthStatus {
  egress: string;
  state: HealthState;
  /** Why it is down (or what the last probe saw). */
  reason: string | null;
  since: number;
  lastProbeAt: number | null;
}

/** How often a down egress is re-probed, at most (so recovery is noticed quickly). */
const DOWN_REPROBE_MS = 2000;

export class HealthMonitor {
  readonly config: EgressConfig;
  private readonly connector: Connector;
  private readonly onChange: (s: HealthStatus) => void;
  private status: HealthStatus;
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private inFlight: Promise<HealthStatus> | undefined;

  constructor(config: EgressConfig, connector: Connector, onChange: (s: HealthStatus) => void) {
    this.config = config;
    this.connector = connector;
    this.onChange = onChange;
    // Built-ins with nothing to probe are up from the start; everything else is unknown until probed.
    const trivial = (config.type === 'direct' || config.type === 'block') && !config.health.target;
    this.status = { egress: config.name, state: trivial ? 'up' : 'unknown', reason: null, since: Date.now(), lastProbeAt: null };
  }

  get(): HealthStatus {
    return { ...this.status };
  }

  private set(state: HealthState, reason: string | null): void {
    const changed = state !== this.status.state;
    this.status = { ...this.status, state, reason, since: changed ? Date.now() : this.status.since };
    if (changed) this.onChange(this.get());
  }

  /** A real flow could not reach the proxy: down now, probe again soon. */
  reportProxyFailure(reason: string): void {
    this.set('down', reason);
    if (this.running) this.schedule();
  }

  /** One probe; concurrent callers share it. */
  probe(): Promise<HealthStatus> {
    if (this.inFlight) return this.inFlight;
    this.inFlight = this.runProbe().finally(() => (this.inFlight = undefined));
    return this.inFlight;
  }

  private async runProbe(): Promise<HealthStatus> {
    const { target, timeoutMs } = this.config.health;
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(), timeoutMs);
    try {
      if (target) {
        const up = await this.connector.connect({ domain: target.host, domainTrusted: true, port: target.port }, ac.signal);
        up.destroy();
        this.set('up', `reached ${target.host}:${target.port} through the egress`);
      } else {
        await this.connector.reachable(ac.signal);
        this.set('up', null);
      }
    } catch (err) {
      this.set('down', (err as Error).message);
    } finally {
      clearTimeout(timer);
      this.status.lastProbeAt = Date.now();
    }
    return this.get();
  }

  start(): void {
    if (this.running || this.config.type === 'block') return;
    this.running = true;
    void this.probe().then(() => this.schedule());
  }

  private schedule(): void {
    clearTimeout(this.timer);
    if (!this.running) return;
    const every = this.status.state === 'down' ? Math.min(this.config.health.intervalMs, DOWN_REPROBE_MS) : this.config.health.intervalMs;
    this.timer = setTimeout(() => void this.probe().then(() => this.schedule()), every);
    this.timer.unref();
  }

  stop(): void {
    this.running = false;
    clearTimeout(this.timer);
  }
}
