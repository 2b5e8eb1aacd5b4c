// The correlation store: which names each IP address was given for, learned from DNS answers.
// Several names per IP (CDNs share addresses), newest first; an entry stays `stale` for a grace
// period after its TTL (a client may still connect to an address it resolved a minute ago) and is
// forgotten after that. Bounded by an LRU over addresses; persisted to the state directory as a
// snapshot plus an append-only journal of changed addresses (store-journal.ts) so a restart keeps
// what was learned and a periodic save costs what changed, not the whole store.
import { LRUCache } from 'lru-cache';
import { isIPv4, isIPv6 } from 'node:net';
import { ipv6Bytes } from './build.ts';
import { formatIp } from './wire.ts';
import type { CorrelationLookup, StoreLookup, StoreName } from '../flow/types.ts';
import type { DomainProjection } from '../policy/types.ts';
import { StoreJournal, type StoredEntry } from './store-journal.ts';

export const STORE_FILE_NAME = 'dns-store.json';

type Entry = StoredEntry;

export interface StoreOptions {
  maxEntries: number;
  graceSeconds: number;
  /** File to persist to; null = memory only. */
  file: string | null;
  projectDomain?: (name: string) => DomainProjection;
  /** Names kept per address (newest first). */
  maxNamesPerIp?: number;
  now?: () => number;
  /** Journal size (bytes) below which it is never compacted; default JOURNAL_MIN_BYTES (1 MiB). */
  journalMinCompactBytes?: number;
}

export interface RecordInput {
  name: string;
  chain: string[];
  ttlSeconds: number;
  upstream: string;
}

/** Canonical text of an address: IPv4-mapped IPv6 becomes IPv4, IPv6 in RFC 5952 form. */
export function canonicalIp(ip: string): string | null {
  let s = ip.trim().toLowerCase();
  if (s.startsWith('[') && s.endsWith(']')) s = s.slice(1, -1);
  const zone = s.indexOf('%');
  if (zone >= 0) s = s.slice(0, zone);
  if (isIPv4(s)) return s;
  if (!isIPv6(s)) return null;
  const b = ipv6Bytes(s);
  const mapped = b.subarray(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff;
  return mapped ? formatIp(b, 12, 4) : formatIp(b, 0, 16);
}

export class CorrelationStore implements CorrelationLookup {
  readonly #lru: LRUCache<string, Entry[]>;
  readonly #opts: StoreOptions;
  readonly #now: () => number;
  #project: ((name: string) => DomainProjection) | undefined;
  /** Persistence (null: memory only). */
  readonly #journal: StoreJournal | null;
  #timer: NodeJS.Timeout | null = null;

  constructor(opts: StoreOptions) {
    this.#opts = opts;
    this.#now = opts.now ?? Date.now;
    this.#project = opts.projectDomain;
    this.#lru = new LRUCache<string, Entry[]>({
      max: Math.max(1, opts.maxEntries),
      // An address pushed out by the bound must be journaled as removed, or a restart would bring it
      // back from its older journal line or the snapshot (and push out one that was kept).
      dispose: (_list, key, reason) => {
        if (reason === 'evict') this.#journal?.markChanged(key);
      },
    });
    this.#journal = opts.file
      ? new StoreJournal(
          opts.file,
          { all: () => this.#persistable(), current: (ip) => this.#livePeek(ip) },
          {
            now: this.#now,
            maxPending: 2 * Math.max(1, opts.maxEntries),
            ...(opts.journalMinCompactBytes !== undefined ? { minCompactBytes: opts.journalMinCompactBytes } : {}),
          },
        )
      : null;
  }

  /** Addresses held (the bound is StoreOptions.maxEntries). */
  get size(): number {
    return this.#lru.size;
  }

  get maxEntries(): number {
    return this.#opts.maxEntries;
  }

  /** Seconds an entry is kept (as stale) after its TTL. */
  get graceSeconds(): number {
    return this.#opts.graceSeconds;
  }

  setProjector(fn: ((name: string) => DomainProjection) | undefined): void {
    this.#project = fn;
  }

  /** Records that `ip` was given for `input.name` (via the chain) with this TTL. */
  record(ip: string, input: RecordInput): void {
    const key = canonicalIp(ip);
    if (key === null) return;
    const now = this.#now();
    const expiresAt = now + input.ttlSeconds * 1000;
    const list = this.#live(key, now) ?? [];
    const i = list.findIndex((e) => e.name === input.name);
    let e: Entry;
    if (i >= 0) {
      e = list[i]!;
      list.splice(i, 1);
      e.chain = input.chain;
      e.expiresAt = Math.max(e.expiresAt, expiresAt);
      e.upstream = input.upstream;
      e.lastSeen = now;
    } else {
      e = { name: input.name, chain: input.chain, expiresAt, upstream: input.upstream, firstSeen: now, lastSeen: now };
    }
    list.unshift(e);
    if (list.length > (this.#opts.maxNamesPerIp ?? 8)) list.length = this.#opts.maxNamesPerIp ?? 8;
    this.#lru.set(key, list);
    this.#journal?.markChanged(key);
  }

  /** Entries of `key` still inside TTL + grace (drops the rest). */
  #live(key: string, now: number): Entry[] | undefined {
    const list = this.#lru.peek(key);
    if (!list) return undefined;
    const graceMs = this.#opts.graceSeconds * 1000;
    const kept = list.filter((e) => e.expiresAt + graceMs > now);
    if (kept.length === 0) {
      this.#lru.delete(key);
      this.#journal?.markChanged(key);
      return undefined;
    }
    if (kept.length !== list.length) this.#journal?.markChanged(key);
    return kept;
  }

  lookup(ip: string): StoreLookup {
    const key = canonicalIp(ip);
    if (key === null) return { names: [], state: 'unknown' };
    const now = this.#now();
    const list = this.#live(key, now);
    if (!list) return { names: [], state: 'unknown' };
    this.#lru.set(key, list);
    const names: StoreName[] = list.map((e) => ({
      name: e.name,
      chain: [...e.chain],
      expiresAt: e.expiresAt,
      upstream: e.upstream,
      firstSeen: e.firstSeen,
      lastSeen: e.lastSeen,
      stale: e.expiresAt <= now,
    }));
    const fresh = names.filter((n) => !n.stale);
    if (fresh.length === 0) return { names, state: 'stale' };
    if (this.#project && fresh.length > 1) {
      const routes = new Set(fresh.map((n) => routeKey(this.#project!(n.name))));
      if (routes.size > 1) return { names, state: 'ambiguous' };
    }
    return { names, state: 'fresh' };
  }

  /** Every address and its names (for `switchyard rdns`-style listings). */
  entries(): [string, StoreName[]][] {
    const out: [string, StoreName[]][] = [];
    for (const ip of [...this.#lru.keys()]) {
      const l = this.lookup(ip);
      if (l.names.length) out.push([ip, l.names]);
    }
    return out;
  }

  // ---- persistence (the file formats and their crash rules: store-journal.ts)

  /** `key`'s entries still inside TTL + grace, without touching the LRU order. */
  #livePeek(key: string): Entry[] | null {
    const list = this.#lru.peek(key);
    if (!list) return null;
    const graceMs = this.#opts.graceSeconds * 1000;
    const now = this.#now();
    return list.filter((e) => e.expiresAt + graceMs > now);
  }

  /** Every address with live entries, least recently used first (reloading in order keeps the LRU order). */
  #persistable(): [string, Entry[]][] {
    const out: [string, Entry[]][] = [];
    for (const ip of [...this.#lru.keys()].reverse()) {
      const kept = this.#livePeek(ip);
      if (kept && kept.length) out.push([ip, kept]);
    }
    return out;
  }

  /** Writes the whole store (a new snapshot, the journal emptied); a no-op when memory-only. */
  save(): Promise<void> {
    return this.#journal ? this.#journal.compact() : Promise.resolve();
  }

  /** Appends what changed since the last flush to the journal (compacting when it grew past its bound). */
  flush(): Promise<void> {
    return this.#journal ? this.#journal.flush() : Promise.resolve();
  }

  /**
   * Loads the snapshot and its journal, keeping entries still within TTL + grace. Missing files are
   * fine; damaged ones are reported through the returned reason (the caller logs it) and the store
   * starts with what could be read (empty when the snapshot itself is damaged). Never throws.
   */
  async load(): Promise<{ loaded: number; problem?: string }> {
    if (!this.#journal) return { loaded: 0 };
    const r = await this.#journal.load();
    const now = this.#now();
    const graceMs = this.#opts.graceSeconds * 1000;
    let loaded = 0;
    const items = [...r.entries];
    for (const [rawIp, raw] of items.slice(-this.#opts.maxEntries)) {
      const ip = canonicalIp(rawIp);
      if (ip === null) continue;
      const list = raw.filter(isEntry).filter((e) => e.expiresAt + graceMs > now);
      if (list.length === 0) continue;
      if (!this.#lru.has(ip)) loaded++;
      this.#lru.set(ip, list.slice(0, this.#opts.maxNamesPerIp ?? 8));
    }
    return r.problem ? { loaded, problem: r.problem } : { loaded };
  }

  /** Flushes the journal every `intervalMs` when something changed. */
  startAutosave(intervalMs: number, onError: (err: unknown) => void): void {
    const j = this.#journal;
    if (this.#timer || !j) return;
    this.#timer = setInterval(() => {
      if (j.pending) j.flush().catch(onError);
    }, intervalMs);
    this.#timer.unref();
  }

  /** Stops the autosave and writes a last snapshot (no journal is left behind). */
  async close(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    await this.#journal?.close();
  }
}

function routeKey(p: DomainProjection): string {
  return p.uniform && p.egress !== null ? p.egress : `any:${[...p.egresses].sort().join(',')}`;
}

function isEntry(x: unknown): x is Entry {
  const e = x as Entry;
  return (
    typeof e === 'object' &&
    e !== null &&
    typeof e.name === 'string' &&
    e.name.length <= 1024 &&
    Array.isArray(e.chain) &&
    e.chain.length <= 32 &&
    e.chain.every((c) => typeof c === 'string') &&
    Number.isFinite(e.expiresAt) &&
    typeof e.upstream === 'string' &&
    Number.isFinite(e.firstSeen) &&
    Number.isFinite(e.lastSeen)
  );
}
