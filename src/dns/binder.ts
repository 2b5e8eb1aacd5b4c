// The forwarder's side of the binding hook (DESIGN.md, "before an answer with addresses leaves,
// it awaits the binding hook"): which bindings an answer produces, when a cached answer must run
// the hook again (its OS set entry is close to expiry, or the sets were lost), and until when a
// copy of a cached answer may be served without asking (the UDP fast path's replica).
// The calls themselves are batched by HookBatcher (hook.ts).
import type { Binding, BindingHook } from '../flow/types.ts';
import type { EgressConfig } from '../policy/types.ts';
import { remainingTtl } from './cache.ts';
import type { Prepared } from './cache.ts';
import type { DnsLog, ForwarderStats } from './forwarder.ts';
import { HookBatcher } from './hook.ts';
import type { CorrelationStore } from './store.ts';

export interface BinderOptions {
  onBindings?: BindingHook;
  hookTimeoutMs?: number;
  graceSeconds: number;
  egresses: () => Record<string, EgressConfig>;
  store: CorrelationStore;
  log: DnsLog;
  stats: ForwarderStats;
}

export class Binder {
  readonly #batcher: HookBatcher | null;
  readonly #grace: number;
  readonly #egresses: () => Record<string, EgressConfig>;
  readonly #store: CorrelationStore;
  readonly #log: DnsLog;
  readonly #stats: ForwarderStats;
  /** Bumped when the OS backend lost its sets: every cached answer re-runs the hook on its next hit. */
  gen = 0;

  constructor(opts: BinderOptions) {
    this.#batcher = opts.onBindings ? new HookBatcher(opts.onBindings, { timeoutMs: opts.hookTimeoutMs ?? 2000 }) : null;
    this.#grace = opts.graceSeconds;
    this.#egresses = opts.egresses;
    this.#store = opts.store;
    this.#log = opts.log;
    this.#stats = opts.stats;
  }

  get active(): boolean {
    return this.#batcher !== null;
  }

  isDirect(egresses: string[]): boolean {
    const all = this.#egresses();
    return egresses.length > 0 && egresses.every((e) => all[e]?.type === 'direct' || e === 'direct');
  }

  binding(ip: string, family: 4 | 6, name: string, egresses: string[], ttl: number): Binding {
    return { ip, family, name, egresses, ttlSeconds: ttl, holdSeconds: ttl + this.#grace };
  }

  needsRehook(p: Prepared, now: number): boolean {
    if (!this.#batcher || p.addresses.length === 0) return false;
    if (p.hookGen !== this.gen) return true;
    // The set entry must outlive what the client is told, plus half the grace period.
    return p.hookedUntil - now < remainingTtl(p, now) * 1000 + (this.#grace * 1000) / 2;
  }

  /**
   * Until when (ms) `p` may be served without this thread: needsRehook stays false and the entry
   * stays fresh up to then; 0 when a hit must come here now. While the TTL runs,
   * hookedUntil - now - remainingTtl*1000 equals C - ((now - storedAt) mod 1000) with
   * C = hookedUntil - storedAt - ttl*1000, so it never drops below half the grace when C - 999
   * does not; after the TTL it is hookedUntil - now. (test/dns/binder.test.ts checks this against
   * needsRehook.)
   */
  fastUntil(p: Prepared): number {
    if (!this.#batcher || p.addresses.length === 0) return p.expiresAt;
    if (p.hookGen !== this.gen) return 0;
    const half = (this.#grace * 1000) / 2;
    const c = p.hookedUntil - p.storedAt - p.ttl * 1000;
    if (c - 999 < half) return 0;
    return Math.min(p.expiresAt, p.hookedUntil - half);
  }

  /** Runs the hook for `p`'s addresses with what is left of its TTL; true when it succeeded. */
  hookFor(p: Prepared, now: number): Promise<boolean> {
    if (!this.#batcher || p.addresses.length === 0) return Promise.resolve(true);
    const ttl = remainingTtl(p, now);
    const bindings = p.addresses.map((a) => this.binding(a.ip, a.family, p.name, p.egresses, ttl));
    const gen = this.gen;
    return this.#batcher.submit(bindings).then(
      () => {
        p.hookedUntil = now + (ttl + this.#grace) * 1000;
        p.hookGen = gen;
        return true;
      },
      (err: unknown) => {
        this.#stats.hookFailures++;
        this.#log.warn({ err, name: p.name }, 'dns: binding hook failed');
        return false;
      },
    );
  }

  /** The hook for a cache hit that needs it; concurrent hits of one entry share one call. */
  rehook(p: Prepared, now: number): Promise<boolean> {
    this.#stats.rehooks++;
    if (!p.rehook) {
      const r = this.hookFor(p, now);
      p.rehook = r;
      void r.finally(() => {
        if (p.rehook === r) p.rehook = null;
      });
    }
    return p.rehook;
  }

  /** Static hosts answers bind their addresses like upstream answers do (store + hook). */
  async bindLocal(name: string, ips: string[], egresses: string[], ttl: number): Promise<void> {
    for (const ip of ips) this.#store.record(ip, { name, chain: [name], ttlSeconds: ttl, upstream: 'hosts' });
    if (!this.#batcher) return;
    const bindings = ips.map((ip) => this.binding(ip, ip.includes(':') ? 6 : 4, name, egresses, ttl));
    try {
      await this.#batcher.submit(bindings);
    } catch (err) {
      this.#stats.hookFailures++;
      this.#log.warn({ err, name }, 'dns: binding hook failed');
      if (!this.isDirect(egresses)) throw err;
    }
  }
}
