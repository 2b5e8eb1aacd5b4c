// The correlation store: which names each IP address was given for, learned from DNS answers.
// Several names per IP (CDNs share addresses), newest first; an entry stays `stale` for a grace
// period after its TTL (a client may still connect to an address it resolved a minute ago) and is
// forgotten after that. Bounded by an LRU over addresses; persisted to the state directory with
// an atomic write (temporary file + rename) so a restart keeps what was learned.
import { LRUCache } from 'lru-cache';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { isIPv4, isIPv6 } from 'node:net';
import { ipv6Bytes } from './build.ts';
import { formatIp } from './wire.ts';
import type { CorrelationLookup, StoreLookup, StoreName } from '../flow/types.ts';
import type { DomainProjection } from '../policy/types.ts';

export const STORE_FILE_NAME = 'dns-store.json';
const FORMAT_VERSION = 1;

interface Entry {
  name: string;
  chain: string[];
  expiresAt: number;
  upstream: string;
  firstSeen: number;
  lastSeen: number;
}

export interface StoreOptions {
  maxEntries: number;
  graceSeconds: number;
  /** File to persist to; null = memory only. */
  file: string | null;
  projectDomain?: (name: string) => DomainProjection;
  /** Names kept per address (newest first). */
  maxNamesPerIp?: number;
  now?: () => number;
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
  #dirty = false;
  #timer: NodeJS.Timeout | null = null;
  #saving: Promise<void> = Promise.resolve();

  constructor(opts: StoreOptions) {
    this.#opts = opts;
    this.#now = opts.now ?? Date.now;
    this.#project = opts.projectDomain;
    this.#lru = new LRUCache<string, Entry[]>({ max: Math.max(1, opts.maxEntries) });
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
    this.#dirty = true;
  }

  /** Entries of `key` still inside TTL + grace (drops the rest). */
  #live(key: string, now: number): Entry[] | undefined {
    const list = this.#lru.peek(key);
    if (!list) return undefined;
    const graceMs = this.#opts.graceSeconds * 1000;
    const kept = list.filter((e) => e.expiresAt + graceMs > now);
    if (kept.length === 0) {
      this.#lru.delete(key);
      this.#dirty = true;
      return undefined;
    }
    if (kept.length !== list.length) this.#dirty = true;
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

  /** Writes the store to its file atomically (temporary file + rename); a no-op when memory-only. */
  save(): Promise<void> {
    const file = this.#opts.file;
    if (!file) return Promise.resolve();
    this.#saving = this.#saving.then(async () => {
      const now = this.#now();
      const graceMs = this.#opts.graceSeconds * 1000;
      const entries: [string, Entry[]][] = [];
      // Oldest first, so that reloading in order leaves the most recently used at the LRU's head.
      for (const [ip, list] of [...this.#lru.entries()].reverse()) {
        const kept = list.filter((e) => e.expiresAt + graceMs > now);
        if (kept.length) entries.push([ip, kept]);
      }
      this.#dirty = false;
      await mkdir(dirname(file), { recursive: true, mode: 0o700 });
      const tmp = `${file}.${process.pid}.tmp`;
      await writeFile(tmp, JSON.stringify({ version: FORMAT_VERSION, savedAt: now, entries }), { mode: 0o600 });
      await rename(tmp, file);
    });
    return this.#saving;
  }

  /**
   * Loads the persisted file, keeping entries still within TTL + grace. A missing file is fine; a
   * damaged one is reported through the returned reason and otherwise ignored (the store starts empty).
   */
  async load(): Promise<{ loaded: number; problem?: string }> {
    const file = this.#opts.file;
    if (!file) return { loaded: 0 };
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { loaded: 0 };
      return { loaded: 0, problem: `cannot read ${file}: ${(err as Error).message}` };
    }
    let doc: unknown;
    try {
      doc = JSON.parse(text);
    } catch {
      return { loaded: 0, problem: `${file} is not valid JSON` };
    }
    const d = doc as { version?: unknown; entries?: unknown };
    if (d.version !== FORMAT_VERSION || !Array.isArray(d.entries)) return { loaded: 0, problem: `${file}: unknown format` };
    const now = this.#now();
    const graceMs = this.#opts.graceSeconds * 1000;
    let loaded = 0;
    for (const item of d.entries.slice(-this.#opts.maxEntries)) {
      if (!Array.isArray(item) || item.length !== 2 || typeof item[0] !== 'string' || !Array.isArray(item[1])) continue;
      const ip = canonicalIp(item[0]);
      if (ip === null) continue;
      const list = (item[1] as unknown[]).filter(isEntry).filter((e) => e.expiresAt + graceMs > now);
      if (list.length === 0) continue;
      this.#lru.set(ip, list.slice(0, this.#opts.maxNamesPerIp ?? 8));
      loaded++;
    }
    return { loaded };
  }

  /** Saves every `intervalMs` when something changed. */
  startAutosave(intervalMs: number, onError: (err: unknown) => void): void {
    if (this.#timer || !this.#opts.file) return;
    this.#timer = setInterval(() => {
      if (this.#dirty) this.save().catch(onError);
    }, intervalMs);
    this.#timer.unref();
  }

  async close(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    await this.save();
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
