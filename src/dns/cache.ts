// The answer cache. An entry is an upstream's answer bytes plus the offsets of its TTL fields,
// computed once when it arrived; a hit copies the bytes and patches ID, question case and TTLs
// (no decode on the hit path). Keyed by name/type/class/DO bit; bounded by lru-cache.
import { LRUCache } from 'lru-cache';
import { buildTruncated } from './build.ts';
import { FLAG, HEADER_LEN, keyHash } from './wire.ts';
import type { Query } from './wire.ts';
import type { Analysis } from './answer.ts';
import type { DnsCacheConfig } from '../policy/types.ts';

export interface BindingSeed {
  ip: string;
  family: 4 | 6;
}

/** An upstream answer made ready to serve: to the waiting clients and, if cacheable, from the cache. */
export interface Prepared {
  bytes: Buffer;
  qEnd: number;
  ttlOffsets: Uint16Array;
  /** TTLs after clamping, as written into `bytes`. */
  ttls: Uint32Array;
  optStart: number;
  storedAt: number;
  /** When the cache must forget it (ms); equal to storedAt when not cacheable. */
  expiresAt: number;
  /** Seconds the addresses stay valid (the smallest clamped answer TTL). */
  ttl: number;
  name: string;
  chain: string[];
  upstream: string;
  /** Egress path the answer came through ('' = the default upstreams). */
  path: string;
  addresses: BindingSeed[];
  /** Egresses the name projects to (for the hook's bindings). */
  egresses: string[];
  /** When the OS sets hold these addresses until (ms), and for which hook generation. */
  hookedUntil: number;
  hookGen: number;
  rehook: Promise<boolean> | null;
  /** Set by AnswerCache.set: the LRU key, and for client-question keys their bytes and hash. */
  key: string;
  keyBytes: Uint8Array | null;
  hash: number;
  /** What the hit replica (fast-path.ts) was last told about this entry: its `until` and replica generation. */
  replicaUntil: number;
  replicaGen: number;
}

/** Clamps every TTL in place and returns the entry's lifetime in seconds (0 = do not cache). */
export function prepare(
  bytes: Buffer,
  a: Analysis,
  cfg: DnsCacheConfig,
  now: number,
  meta: { name: string; upstream: string; path: string; egresses: string[] },
): Prepared {
  const n = a.ttlOffsets.length;
  const ttlOffsets = new Uint16Array(n);
  const ttls = new Uint32Array(n);
  for (let i = 0; i < n; i++) {
    let t = Math.min(a.ttls[i]!, cfg.maxTtl);
    if (!a.negative) t = Math.max(t, cfg.minTtl);
    else t = Math.min(t, cfg.negativeTtl);
    ttlOffsets[i] = a.ttlOffsets[i]!;
    ttls[i] = t;
    bytes.writeUInt32BE(t, a.ttlOffsets[i]!);
  }
  let life = 0;
  if (!a.truncated && a.cacheTtl !== null) {
    life = a.negative
      ? Math.min(a.cacheTtl, cfg.negativeTtl)
      : Math.max(cfg.minTtl, Math.min(a.cacheTtl, cfg.maxTtl));
  }
  const ttl = a.negative ? 0 : Math.max(cfg.minTtl, Math.min(a.cacheTtl ?? 0, cfg.maxTtl));
  const seen = new Set<string>();
  const addresses: BindingSeed[] = [];
  for (const x of a.addresses) {
    if (seen.has(x.ip)) continue;
    seen.add(x.ip);
    addresses.push({ ip: x.ip, family: x.family });
  }
  return {
    bytes,
    qEnd: a.qEnd,
    ttlOffsets,
    ttls,
    optStart: a.optStart,
    storedAt: now,
    expiresAt: now + life * 1000,
    ttl,
    name: meta.name,
    chain: a.chain,
    upstream: meta.upstream,
    path: meta.path,
    addresses,
    egresses: meta.egresses,
    hookedUntil: 0,
    hookGen: -1,
    rehook: null,
    key: '',
    keyBytes: null,
    hash: -1,
    replicaUntil: 0,
    replicaGen: -1,
  };
}

/** Seconds left for the addresses of `p` at `now`. */
export function remainingTtl(p: Prepared, now: number): number {
  return Math.max(0, p.ttl - Math.floor((now - p.storedAt) / 1000));
}

/**
 * The bytes for one client: a copy of `p` with the client's ID, question (its case) and RD bit,
 * TTLs aged, the OPT cut when the client sent none, and TC when it exceeds the client's UDP size.
 */
export function serve(p: Prepared, client: Buffer, q: Query, now: number, udp: boolean): Buffer {
  const len = servedLength(p, q);
  if (udp && len > (q.edns ? q.udpSize : 512)) {
    return buildTruncated(client, q, (p.bytes[2]! << 8) | p.bytes[3]!);
  }
  const out = Buffer.allocUnsafe(len);
  serveInto(p, client, 0, q, now, out, 0);
  return out;
}

/** What a hit needs of a cached answer (a Prepared, or the fast path's copy of one). */
export interface Servable {
  bytes: Uint8Array;
  ttlOffsets: Uint16Array;
  ttls: Uint32Array;
  optStart: number;
  storedAt: number;
}

/** What serving needs of a query (a parsed Query, or the fast path's QuickQuery). */
export interface ServeQuery {
  id: number;
  flags: number;
  qEnd: number;
  edns: boolean;
}

/** Length of the answer `serve` gives `q` (before any truncation): without the OPT when the client sent none. */
export function servedLength(p: Servable, q: Pick<ServeQuery, 'edns'>): number {
  return !q.edns && p.optStart >= 0 ? p.optStart : p.bytes.length;
}

/**
 * Writes the answer for `q` (whose bytes start at `clientOff` in `client`) at `off` in `out`, which
 * must have servedLength(p, q) bytes free there; the caller has checked the client's UDP size.
 */
export function serveInto(p: Servable, client: Uint8Array, clientOff: number, q: ServeQuery, now: number, out: Uint8Array, off: number): number {
  const cutOpt = !q.edns && p.optStart >= 0;
  const len = cutOpt ? p.optStart : p.bytes.length;
  const src = p.bytes;
  // TypedArray#set is a plain memcpy (measured faster here than Buffer#copy or a loop).
  out.set(len === src.length ? src : src.subarray(0, len), off);
  out[off] = q.id >> 8;
  out[off + 1] = q.id & 0xff;
  out[off + 2] = (out[off + 2]! & ~(FLAG.RD >> 8)) | ((q.flags >> 8) & (FLAG.RD >> 8));
  // Same name modulo case, so the same length: the client gets its own spelling back.
  for (let i = HEADER_LEN; i < q.qEnd; i++) out[off + i] = client[clientOff + i]!;
  if (cutOpt) {
    const ar = ((out[off + 10]! << 8) | out[off + 11]!) - 1;
    out[off + 10] = ar >> 8;
    out[off + 11] = ar & 0xff;
  }
  const elapsed = Math.floor((now - p.storedAt) / 1000);
  const offs = p.ttlOffsets;
  const ttls = p.ttls;
  for (let i = 0; i < offs.length; i++) {
    const o = offs[i]!;
    if (o >= len) continue;
    const t = elapsed === 0 ? ttls[i]! : Math.max(0, ttls[i]! - elapsed);
    out[off + o] = t >>> 24;
    out[off + o + 1] = (t >>> 16) & 0xff;
    out[off + o + 2] = (t >>> 8) & 0xff;
    out[off + o + 3] = t & 0xff;
  }
  return len;
}

/** True when `client`'s question (ASCII case folded) and DO bit are the bytes `p` is cached under. */
export function sameQuestion(kb: Uint8Array, client: Uint8Array, q: Query): boolean {
  const klen = q.qEnd - HEADER_LEN;
  if (kb.length !== klen + 1 || kb[klen] !== (q.dnssecOk ? 1 : 0)) return false;
  for (let i = 0; i < klen; i++) {
    const c = client[HEADER_LEN + i]!;
    if (kb[i] !== (c >= 0x41 && c <= 0x5a ? c | 0x20 : c)) return false;
  }
  return true;
}

/**
 * Bounded by lru-cache, keyed by string. Entries stored under a client question's key are also
 * indexed by that key's 32-bit hash, so a hit neither builds the key string nor hashes it: it
 * finds the entry by number and compares the question bytes. A hash collision only costs the
 * slower string lookup (the index holds one entry per hash; the LRU holds them all).
 */
export class AnswerCache {
  readonly #lru: LRUCache<string, Prepared>;
  readonly #fast = new Map<number, Prepared>();
  #touch = 0;
  #clearing = false;
  /** `onDrop`: told of every entry that leaves one by one (not of clear(): its caller knows). */
  constructor(maxEntries: number, onDrop?: (p: Prepared) => void) {
    this.#lru = new LRUCache<string, Prepared>({
      max: Math.max(1, maxEntries),
      // Evicted, replaced or deleted: drop it from the index too (if it is the one indexed).
      dispose: (p) => {
        if (p.keyBytes !== null && this.#fast.get(p.hash) === p) this.#fast.delete(p.hash);
        if (onDrop && !this.#clearing) onDrop(p);
      },
    });
  }

  /** True when `p` is the entry cached under its key. */
  has(p: Prepared): boolean {
    return p.key !== '' && this.#lru.peek(p.key) === p;
  }

  /** Refreshes the recency of `key` (hits another thread answered). */
  touch(key: string): void {
    this.#lru.get(key);
  }

  /** The entry for a client's query `q` parsed from `client`, if cached and not expired. */
  getQuery(q: Query, client: Uint8Array, now: number): Prepared | undefined {
    let p = this.#fast.get(q.hash);
    if (p === undefined || !sameQuestion(p.keyBytes!, client, q)) {
      p = this.#lru.peek(q.key);
      if (p === undefined) return undefined;
    }
    return this.#fresh(p, now);
  }

  get(key: string, now: number): Prepared | undefined {
    const p = this.#lru.peek(key);
    return p === undefined ? undefined : this.#fresh(p, now);
  }

  #fresh(p: Prepared, now: number): Prepared | undefined {
    if (p.expiresAt <= now) {
      this.#lru.delete(p.key);
      return undefined;
    }
    // Refreshing recency on every hit costs a measurable share of the hit path; every 8th hit is
    // enough to keep hot names away from eviction (the stored key string has its hash cached).
    if ((this.#touch++ & 7) === 0) this.#lru.get(p.key);
    return p;
  }

  /** `question`: the key is a client question's key (Query.key), so index it by hash too. */
  set(key: string, p: Prepared, question = false): void {
    if (p.expiresAt <= p.storedAt) return;
    p.key = key;
    if (question) {
      p.keyBytes = Buffer.from(key, 'latin1');
      p.hash = keyHash(p.keyBytes);
    }
    this.#lru.set(key, p);
    if (question && this.#lru.peek(key) === p) this.#fast.set(p.hash, p);
  }
  clear(): void {
    this.#clearing = true;
    try {
      this.#lru.clear();
    } finally {
      this.#clearing = false;
    }
    this.#fast.clear();
  }
  get size(): number {
    return this.#lru.size;
  }
}
