// Several upstreams with failover and health: the first healthy one in config order is asked; a
// failure (error, timeout, SERVFAIL/REFUSED) marks it down for a growing back-off (1 s doubling up
// to 60 s) and the query moves on to the next within the same overall deadline. When all are down
// they are still tried, healthiest first, rather than failing without asking.
import type { OutQuery } from './build.ts';
import { DnsError } from './errors.ts';
import { makeTransport } from './upstream.ts';
import type { Exchange, TransportDeps, UpstreamSpec } from './upstream.ts';
import { RCODE } from './wire.ts';

interface Member {
  spec: UpstreamSpec;
  transport: Exchange;
  fails: number;
  downUntil: number;
}

export interface PoolAnswer {
  bytes: Buffer;
  upstream: string;
}

export interface UpstreamHealth {
  upstream: string;
  up: boolean;
  fails: number;
}

export class UpstreamPool {
  readonly #members: Member[];
  readonly #timeoutMs: number;
  constructor(specs: UpstreamSpec[], deps: TransportDeps, timeoutMs: number) {
    this.#members = specs.map((spec) => ({ spec, transport: makeTransport(spec, deps), fails: 0, downUntil: 0 }));
    this.#timeoutMs = timeoutMs;
  }

  get size(): number {
    return this.#members.length;
  }

  health(now = Date.now()): UpstreamHealth[] {
    return this.#members.map((m) => ({ upstream: m.spec.label, up: m.downUntil <= now, fails: m.fails }));
  }

  async exchange(q: OutQuery): Promise<PoolAnswer> {
    if (this.#members.length === 0) throw new DnsError('SY_ERR_DNS_NO_UPSTREAM', 'no upstream configured');
    const start = Date.now();
    const deadline = start + this.#timeoutMs;
    const order = [...this.#members].sort((a, b) => (a.downUntil <= start ? 0 : a.downUntil) - (b.downUntil <= start ? 0 : b.downUntil));
    let last: Error | null = null;
    let fallback: PoolAnswer | null = null;
    for (let i = 0; i < order.length; i++) {
      const m = order[i]!;
      const now = Date.now();
      const left = deadline - now;
      if (left <= 0) break;
      // Leave later members a share of the budget: an attempt gets at most half of what is left
      // while others remain (so one dead upstream cannot eat the whole timeout).
      const budget = i < order.length - 1 ? Math.max(Math.min(left, 250), Math.floor(left / 2)) : left;
      try {
        const bytes = await m.transport.exchange(q, budget);
        const rcode = bytes[3]! & 0xf;
        if ((rcode === RCODE.SERVFAIL || rcode === RCODE.REFUSED) && i < order.length - 1) {
          this.#markDown(m);
          fallback ??= { bytes, upstream: m.spec.label };
          continue;
        }
        m.fails = 0;
        m.downUntil = 0;
        return { bytes, upstream: m.spec.label };
      } catch (err) {
        last = err as Error;
        this.#markDown(m);
      }
    }
    if (fallback) return fallback;
    if (last instanceof DnsError) throw last;
    throw new DnsError('SY_ERR_DNS_UPSTREAM', `all upstreams failed${last ? `: ${last.message}` : ''}`, last ?? undefined);
  }

  #markDown(m: Member): void {
    m.fails++;
    m.downUntil = Date.now() + Math.min(60_000, 1000 * 2 ** Math.min(m.fails - 1, 6));
  }

  close(): void {
    for (const m of this.#members) m.transport.close();
  }
}
