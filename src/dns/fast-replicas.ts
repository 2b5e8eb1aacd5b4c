// The forwarder's HitReplica on the UDP fast path (fast-path.ts): what the forwarder offers,
// drops and clears goes to the replica of every fast listener's worker (IPv4 and IPv6), and the
// listeners' counters add up here, including those of listeners that stopped.
import type { Prepared } from './cache.ts';
import type { FastPathStats, FastUdp } from './fast-path.ts';
import type { ToWorker } from './fast-proto.ts';
import type { HitReplica } from './forwarder.ts';

/** The forwarder's HitReplica: fans entries out to every fast listener (IPv4 and IPv6). */
export class FastReplicas implements HitReplica {
  readonly #listeners = new Set<FastUdp>();
  /** Bumped whenever a replica may have lost entries (clear, worker restart): entries are offered again. */
  #gen = 0;
  #restarts = 0;
  #fallbacks = 0;
  #gone: FastPathStats = { listeners: 0, hits: 0, forwarded: 0, rateLimited: 0, dropped: 0, batches: 0, datagrams: 0, replicaEntries: 0, overflow: 0, toWorker: 0, toMain: 0, restarts: 0, fallbacks: 0 };

  /** Told of replica entries that answered hits (the forwarder refreshes them in its LRU). */
  onTouch: ((key: string) => void) | null = null;

  get size(): number {
    return this.#listeners.size;
  }

  add(l: FastUdp): void {
    this.#listeners.add(l);
  }

  /** A listener stopped (closed or fell back): keep its counts in the totals. */
  remove(l: FastUdp, fellBack: boolean): void {
    if (!this.#listeners.delete(l)) return;
    const s = l.counters();
    for (const k of ['hits', 'forwarded', 'rateLimited', 'dropped', 'batches', 'datagrams', 'overflow', 'toWorker', 'toMain'] as const) this.#gone[k] += s[k];
    if (fellBack) this.#fallbacks++;
  }

  restarted(): void {
    this.#restarts++;
    this.#gen++;
  }

  offer(p: Prepared, until: number): void {
    if (p.replicaGen === this.#gen && p.replicaUntil === until) return;
    if (this.#listeners.size === 0 || p.keyBytes === null) return;
    p.replicaGen = this.#gen;
    p.replicaUntil = until;
    // Copies: p.bytes and keyBytes may be views of larger buffers, which a clone would copy whole.
    const m: ToWorker = {
      t: 'put',
      key: p.key,
      keyBytes: new Uint8Array(p.keyBytes),
      hash: p.hash,
      bytes: new Uint8Array(p.bytes),
      ttlOffsets: p.ttlOffsets,
      ttls: p.ttls,
      optStart: p.optStart,
      storedAt: p.storedAt,
      until,
    };
    for (const l of this.#listeners) l.post(m);
  }

  drop(p: Prepared): void {
    if (p.replicaGen < 0 || p.keyBytes === null) return; // never offered
    const m: ToWorker = { t: 'del', key: p.key, hash: p.hash };
    for (const l of this.#listeners) l.post(m);
  }

  clear(): void {
    this.#gen++;
    for (const l of this.#listeners) l.post({ t: 'clear' });
  }

  stats(): FastPathStats {
    const t: FastPathStats = { ...this.#gone, listeners: this.#listeners.size, replicaEntries: 0, restarts: this.#restarts, fallbacks: this.#fallbacks };
    for (const l of this.#listeners) {
      const s = l.counters();
      for (const k of ['hits', 'forwarded', 'rateLimited', 'dropped', 'batches', 'datagrams', 'overflow', 'toWorker', 'toMain'] as const) t[k] += s[k];
      t.replicaEntries += s.replicaEntries;
    }
    return t;
  }
}
