// The answer cache. An entry is an upstream's answer bytes plus the offsets of its TTL fields,
// computed once when it arrived; a hit copies the bytes and patches ID, question case and TTLs
// (no decode on the hit path). Keyed by name/type/class/DO bit; bounded by lru-cache.
import { LRUCache } from 'lru-cache';
import { buildTruncated } from './build.ts';
import { FLAG, HEADER_LEN } from './wire.ts';
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
  const cutOpt = !q.edns && p.optStart >= 0;
  const len = cutOpt ? p.optStart : p.bytes.length;
  if (udp && len > (q.edns ? q.udpSize : 512)) {
    return buildTruncated(client, q, (p.bytes[2]! << 8) | p.bytes[3]!);
  }
  const out = Buffer.allocUnsafe(len);
  const src = p.bytes;
  // TypedArray#set is a plain memcpy (measured faster here than Buffer#copy or a loop).
  out.set(len === src.length ? src : src.subarray(0, len));
  out[0] = q.id >> 8;
  out[1] = q.id & 0xff;
  out[2] = (out[2]! & ~(FLAG.RD >> 8)) | ((q.flags >> 8) & (FLAG.RD >> 8));
  // Same name modulo case, so the same length: the client gets its own spelling back.
  for (let i = HEADER_LEN; i < q.qEnd; i++) out[i] = client[i]!;
  if (cutOpt) {
    const ar = (out[10]! << 8) | out[11]!;
    out.writeUInt16BE(ar - 1, 10);
  }
  const elapsed = Math.floor((now - p.storedAt) / 1000);
  const offs = p.ttlOffsets;
  const ttls = p.ttls;
  for (let i = 0; i < offs.length; i++) {
    const o = offs[i]!;
    if (o >= len) continue;
    const t = elapsed === 0 ? ttls[i]! : Math.max(0, ttls[i]! - elapsed);
    out[o] = t >>> 24;
    out[o + 1] = (t >>> 16) & 0xff;
    out[o + 2] = (t >>> 8) & 0xff;
    out[o + 3] = t & 0xff;
  }
  return out;
}

export class AnswerCache {
  readonly #lru: LRUCache<string, Prepared>;
  #touch = 0;
  constructor(maxEntries: number) {
    this.#lru = new LRUCache<string, Prepared>({ max: Math.max(1, maxEntries) });
  }
  get(key: string, now: number): Prepared | undefined {
    // Refreshing recency on every hit costs a measurable share of the hit path; every 8th hit
    // is enough to keep hot names away from eviction.
    const p = (this.#touch++ & 7) === 0 ? this.#lru.get(key) : this.#lru.peek(key);
    if (p === undefined) return undefined;
    if (p.expiresAt <= now) {
      this.#lru.delete(key);
      return undefined;
    }
    return p;
  }
  set(key: string, p: Prepared): void {
    if (p.expiresAt > p.storedAt) this.#lru.set(key, p);
  }
  clear(): void {
    this.#lru.clear();
  }
  get size(): number {
    return this.#lru.size;
  }
}
