// Domain lookup: a label trie for suffix patterns, flattened into one hash table keyed by the
// suffix text (the trie node for labels com → youtube is the key "youtube.com"). Exact (`full:`)
// names live in the same table: one key holds up to four value slots — full and suffix, each for
// two lanes (the engine's block rules and its other rules) — so one probe per label depth answers
// every kind and both rule sets. A lookup considers the query name and each of its parent names,
// longest first — at most one probe per label depth that some key has, no candidate list.
//
// The table is our own open addressing over a hash that one right-to-left pass over the name
// computes for every suffix at once; a probe compares the stored key in place only when the
// 32-bit hashes agree. The keys' characters live in one byte array (`blob`: a length byte, then
// the characters), not as JS strings: the strings a config or list loader hands over are often
// ropes or slices of a bigger string, so comparing one meant following two or three pointers to
// scattered memory, and the compare was the costliest part of a lookup (bench/policy.bench.ts).
// So a lookup creates no substrings, reads one place for the key, and hashes each character once;
// the same pass checks that the query name needs no normalising (normalizeAndProbe). The probe
// result of the last name is kept, so the second lane (and explain's second walk) reuses it.
// Keywords and regexps are scanned linearly (one `includes` or regexp test per pattern per query;
// see docs/config.md), except that one that needs a character the name lacks (a character mask
// the hash pass computes anyway), or a first/last character it does not have, is skipped without
// a search (regexp-filter.ts).
import type { DomainPattern } from '../types.ts';
import { charMask, mayMatch, regexpNeeds, type RegexpNeeds } from './regexp-filter.ts';
import { normalizeQueryDomain } from './query.ts';

interface Scanned<V> {
  value: V;
  pattern: DomainPattern;
  re: RegExp | null;
  /** What a name needs to possibly match: a keyword's characters; for a regexp, regexp-filter.ts. */
  needs: RegexpNeeds;
}

export function domainPatternText(p: DomainPattern): string {
  return p.kind === 'suffix' ? p.value : `${p.kind}:${p.value}`;
}

/** FNV-1a style hash of name[start..] read right to left: the value the lookup pass computes. */
export function suffixHash(s: string, start = 0): number {
  let h = 0x811c9dc5;
  for (let i = s.length - 1; i >= start; i--) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h;
}

function labelBit(labels: number): number {
  return 1 << (Math.min(labels, 32) - 1);
}

/** The filter's bit for a hash: mixed, so that it does not repeat the slot index's low bits. */
function filterBit(h: number): number {
  return Math.imul(h ^ (h >>> 15), 0x2c1b3c6d) >>> 7;
}

const MAX_LABELS = 128; // a 253-character name has at most 127 labels
const KIND_FULL = 0;
const KIND_SUFFIX = 1;
const NONE = -1;
/** int32 per table slot: entry, hash, what the key holds. */
const SLOT = 3;

/**
 * Domain patterns → values (non-negative integers: rule indexes), in `lanes` independent lanes
 * sharing one table. Open addressing, linear probing, load ≤ 0.8: 1.5 MB of slots at 100k keys
 * instead of 3 MB at load ≤ 1/2, fewer cache misses (about 10 % off a probe pass in
 * bench/policy.bench.ts's set); most probes that would walk a long run stop at the filter below.
 * Each table slot is a record of three int32 side by side: [key's offset in `blob` or -1, full
 * hash of the key, what the key holds]. So a probe that misses (most do) reads one cache line, and a hit on a key that holds one value (nearly
 * all keys: one rule per pattern) reads its value from the same line — no second table. "What
 * the key holds" is that one value as value << codeBits | (lane * 2 + kind), or -2-r for run r
 * of `runs`: lanes × 2 kinds value slots, each NONE, a value, or -2-k for list k (several rules
 * sharing one pattern in one lane).
 */
export class DomainIndex<V extends number = number> {
  private readonly lanes: number;
  private slots = new Int32Array(SLOT * 64).fill(-1);
  private mask = 63; // slot count - 1
  /**
   * Every key as a length byte and its characters (Latin-1), at the offset its slot holds. A key
   * with a character above U+00FF or 255 characters or more (normalised patterns have neither)
   * has length byte 255 and its text in `wide`.
   */
  private blob = new Uint8Array(1024);
  private blobUsed = 0;
  private readonly wide = new Map<number, string>();
  private nKeys = 0;
  /**
   * A bit per hash value (low bits above the slot index's), 8+ bits per key: a probe for a name
   * that is in no pattern (most probes) usually stops at this small, cache-resident array
   * instead of reading the much larger slot array. Built by finish().
   */
  private filter = new Int32Array(0);
  private filterMask = 0;
  /** Keys holding more than one value: runs of lanes × 2 kinds slots, index r * width + lane * 2 + kind. */
  private runs = new Int32Array(0);
  private nRuns = 0;
  /** lanes × 2: value slots per run. */
  private readonly width: number;
  /** Bits of a single value's code (lane * 2 + kind). */
  private readonly codeBits: number;
  private readonly lists: number[][] = [];
  /** Bit k set when some suffix (resp. full) key has k+1 labels (bit 31: 32 or more). */
  private suffixDepths = 0;
  private fullDepths = 0;
  private readonly scanned: Scanned<V>[][];
  private readonly sizes: number[];

  // Result of the last probe pass (find is synchronous): entries hit, longest key first, and
  // whether the first one is the whole name (only then do its full slots apply).
  private lastName: string | null = null;
  /** Slots hit. */
  private readonly hits = new Int32Array(MAX_LABELS + 1);
  /** Where in the name each hit's key starts (the key is the name from there on). */
  private readonly hitStarts = new Int32Array(MAX_LABELS + 1);
  private nHits = 0;
  private wholeHit = false;
  private nameMask = 0;
  // Scratch for the pass: suffix start offsets and their hashes.
  private readonly starts = new Int32Array(MAX_LABELS + 1);
  private readonly hashes = new Int32Array(MAX_LABELS + 1);

  constructor(lanes = 1) {
    this.lanes = lanes;
    this.width = lanes * 2;
    this.codeBits = 32 - Math.clz32(this.width - 1);
    this.scanned = Array.from({ length: lanes }, () => []);
    this.sizes = new Array<number>(lanes).fill(0);
  }

  /** Number of patterns added to `lane`. */
  laneSize(lane: number): number {
    return this.sizes[lane]!;
  }

  get size(): number {
    let n = 0;
    for (const s of this.sizes) n += s;
    return n;
  }

  add(p: DomainPattern, value: V, lane = 0): void {
    this.filterMask = 0; // rebuilt by finish()
    this.sizes[lane]!++;
    this.lastName = null;
    if (p.kind === 'full' || p.kind === 'suffix') {
      const kind = p.kind === 'full' ? KIND_FULL : KIND_SUFFIX;
      const si = this.entry(p.value);
      const bit = labelBit(this.entryLabels);
      if (kind === KIND_FULL) this.fullDepths |= bit;
      else this.suffixDepths |= bit;
      const code = lane * 2 + kind;
      const held = this.slots[SLOT * si + 2]!;
      if (held === NONE) {
        const single = value * 2 ** this.codeBits + code;
        if (single <= 0x7fffffff) { this.slots[SLOT * si + 2] = single; return; }
      } else if (held >= 0 && held === value * 2 ** this.codeBits + code) return; // the same value again
      // More than one value (or one too big to pack): the key's values go to a run.
      const r = held <= -2 ? -2 - held : this.newRun(held);
      this.slots[SLOT * si + 2] = -2 - r;
      const at = r * this.width + code;
      const cur = this.runs[at]!;
      if (cur === NONE) this.runs[at] = value;
      else if (cur >= 0) { if (cur !== value) { this.lists.push([cur, value]); this.runs[at] = -2 - (this.lists.length - 1); } }
      else { const l = this.lists[-2 - cur]!; if (!l.includes(value)) l.push(value); }
    } else {
      // One bit per character class (code & 31): if a keyword occurs in a name, its mask ⊆ the name's.
      const needs = p.kind === 'regexp' ? regexpNeeds(p.value) : { mask: charMask(p.value), first: -1, last: -1 };
      this.scanned[lane]!.push({ value, pattern: p, re: p.kind === 'regexp' ? new RegExp(p.value) : null, needs });
    }
  }

  /** A new run holding `held` (a single value, or NONE), returned by number. */
  private newRun(held: number): number {
    const w = this.width;
    if ((this.nRuns + 1) * w > this.runs.length) {
      const v = new Int32Array(Math.max(64, this.runs.length * 2)).fill(NONE);
      v.set(this.runs);
      this.runs = v;
    }
    const r = this.nRuns++;
    if (held >= 0) this.runs[r * w + (held & (2 ** this.codeBits - 1))] = held >>> this.codeBits;
    return r;
  }

  /** Label count of the key of the last entry() call. */
  private entryLabels = 1;

  /**
   * The slot of `key`'s entry, created if new. One pass reads each character once: it hashes the
   * key, counts its labels and copies it into the blob's free space, which becomes the key's
   * record only if the key is new (reading a rope's characters is slow: read them once).
   */
  private entry(key: string): number {
    const n = key.length;
    if (this.blobUsed + n + 1 > this.blob.length) {
      const b = new Uint8Array(Math.max(this.blob.length * 2, this.blobUsed + n + 1));
      b.set(this.blob.subarray(0, this.blobUsed));
      this.blob = b;
    }
    const blob = this.blob;
    const at = this.blobUsed + 1;
    let h = 0x811c9dc5;
    let labels = 1;
    let wide = n >= 255;
    for (let i = n - 1; i >= 0; i--) {
      const c = key.charCodeAt(i);
      if (c === 46) labels++;
      if (c > 255) wide = true;
      blob[at + i] = c; // past blobUsed: unused unless the key is new and fits
      h = Math.imul(h ^ c, 0x01000193);
    }
    this.entryLabels = labels;
    const found = this.lookup(key, 0, h);
    if (found >= 0) return found;
    const off = this.blobUsed;
    if (wide) {
      blob[off] = 255; // the text lives in `wide`
      this.wide.set(off, key);
      this.blobUsed = off + 1;
    } else {
      blob[off] = n;
      this.blobUsed = off + 1 + n;
    }
    if (++this.nKeys * 5 > (this.mask + 1) * 4) this.grow();
    return this.place(h, off, NONE);
  }

  private place(h: number, e: number, held: number): number {
    let i = h & this.mask;
    while (this.slots[SLOT * i] !== -1) i = (i + 1) & this.mask;
    this.slots[SLOT * i] = e;
    this.slots[SLOT * i + 1] = h;
    this.slots[SLOT * i + 2] = held;
    return i;
  }

  /** Doubles the slot count and re-places every entry (hashes are read from the old slots). */
  private grow(): void {
    const old = this.slots;
    const n = old.length / SLOT;
    this.slots = new Int32Array(old.length * 2).fill(-1);
    this.mask = 2 * n - 1;
    for (let j = 0; j < old.length; j += SLOT) if (old[j] !== -1) this.place(old[j + 1]!, old[j]!, old[j + 2]!);
  }

  /** Slot of the entry whose key equals name[start..], given that substring's hash; -1 if none. */
  private lookup(name: string, start: number, h: number): number {
    if (this.filterMask !== 0) {
      const b = filterBit(h) & this.filterMask;
      if ((this.filter[b >>> 5]! & (1 << (b & 31))) === 0) return -1;
    }
    const len = name.length - start;
    const slots = this.slots;
    const mask = this.mask;
    const blob = this.blob;
    for (let i = h & mask; ; i = (i + 1) & mask) {
      const off = slots[SLOT * i]!;
      if (off === -1) return -1;
      if (slots[SLOT * i + 1] === h) {
        const n = blob[off]!;
        if (n === 255) {
          if (this.wide.get(off) === (start === 0 ? name : name.slice(start))) return i;
        } else if (n === len) {
          let j = 0;
          while (j < len && blob[off + 1 + j] === name.charCodeAt(start + j)) j++;
          if (j === len) return i;
        }
      }
    }
  }

  /** Orders values that share a pattern (or share the scanned level) by `cmp`; call after adding. */
  finish(cmp: (a: V, b: V) => number): void {
    for (const l of this.lists) l.sort(cmp as (a: number, b: number) => number);
    for (const s of this.scanned) s.sort((a, b) => cmp(a.value, b.value));
    let bits = 1 << 10;
    while (bits < this.nKeys * 8) bits *= 2;
    this.filter = new Int32Array(bits >>> 5);
    this.filterMask = bits - 1;
    for (let j = 0; j < this.slots.length; j += SLOT) {
      if (this.slots[j] !== -1) {
        const b = filterBit(this.slots[j + 1]!) & this.filterMask;
        this.filter[b >>> 5]! |= 1 << (b & 31);
      }
    }
    // Trim the runs to those there are (the doubling leaves up to half unused).
    const used = this.nRuns * this.width;
    if (this.runs.length > used) this.runs = this.runs.slice(0, used);
    if (this.blob.length > this.blobUsed) this.blob = this.blob.slice(0, this.blobUsed);
  }

  /**
   * The query name as patterns are stored (lower case, no trailing dot, punycode), probed: the
   * pass that hashes the name also checks that it needs no normalising (most names are already
   * lower-case ASCII), so the common case reads each character once. A following find() with
   * the returned string reuses the probe.
   */
  normalizeAndProbe(raw: string): string {
    if (this.probe(raw, true)) return raw;
    const name = normalizeQueryDomain(raw);
    this.probe(name, false);
    return name;
  }

  /**
   * One right-to-left pass over `name`: the entries it hits, longest first (cached per name).
   * With `strict`, gives up (false, nothing cached) on a character that normalising would change.
   */
  private probe(name: string, strict: boolean): boolean {
    if (name === this.lastName) return true;
    const len = name.length;
    if (strict && (len === 0 || name.charCodeAt(len - 1) === 46)) return false; // trailing dot
    this.nHits = 0;
    this.wholeHit = false;
    const sdepths = this.suffixDepths;
    // h is the hash of name[i+1..] when name[i] is a dot, and of the whole name at the end.
    // Only depths (label counts) that some key has are probed.
    let h = 0x811c9dc5;
    let n = 0;
    let labels = 1;
    let m = 0;
    for (let i = len - 1; i >= 0; i--) {
      const c = name.charCodeAt(i);
      // 'A'..'Z' or non-ASCII: lower-casing or punycode would change the name.
      if (strict && c >= 65 && (c <= 90 || c > 127)) return false;
      m |= 1 << (c & 31);
      if (c === 46) {
        if ((sdepths & labelBit(labels)) !== 0 && n < MAX_LABELS) {
          this.starts[n] = i + 1;
          this.hashes[n++] = h;
        }
        labels++;
      }
      h = Math.imul(h ^ c, 0x01000193);
    }
    this.nameMask = m;
    if (this.nKeys !== 0) {
      if (((sdepths | this.fullDepths) & labelBit(labels)) !== 0) {
        const si = this.lookup(name, 0, h);
        if (si >= 0) {
          this.hitStarts[this.nHits] = 0;
          this.hits[this.nHits++] = si;
          this.wholeHit = true;
        }
      }
      // Longest suffix first: starts were collected from the right, so walk them backwards.
      for (let k = n - 1; k >= 0; k--) {
        const start = this.starts[k]!;
        const si = this.lookup(name, start, this.hashes[k]!);
        if (si >= 0) {
          this.hitStarts[this.nHits] = start;
          this.hits[this.nHits++] = si;
        }
      }
    }
    this.lastName = name;
    return true;
  }

  /**
   * Visits matches of `name` in `lane` from most to least specific until `visit` returns true:
   * the exact name, suffixes longest first, then keywords/regexps. `kind`/`key` describe the
   * matched pattern (key = the pattern's value).
   */
  find(name: string, visit: (value: V, kind: DomainPattern['kind'], key: string) => boolean, lane = 0): boolean {
    if (this.sizes[lane] === 0) return false;
    this.probe(name, false);
    const base = lane * 2;
    const slots = this.slots;
    const codeMask = 2 ** this.codeBits - 1;
    for (let k = 0; k < this.nHits; k++) {
      const si = this.hits[k]!;
      const held = slots[SLOT * si + 2]!;
      const whole = k === 0 && this.wholeHit; // full: applies to the whole name only
      if (held >= 0) {
        const code = held & codeMask;
        if (code === base + KIND_SUFFIX || (whole && code === base + KIND_FULL)) {
          if (visit((held >>> this.codeBits) as V, code === base + KIND_FULL ? 'full' : 'suffix', this.hitKey(name, k))) return true;
        }
        continue;
      }
      const at = (-2 - held) * this.width + base;
      const key = this.hitKey(name, k);
      if (whole) {
        const f = this.runs[at + KIND_FULL]!;
        if (f !== NONE && this.visitSlot(f, 'full', key, visit)) return true;
      }
      const s = this.runs[at + KIND_SUFFIX]!;
      if (s !== NONE && this.visitSlot(s, 'suffix', key, visit)) return true;
    }
    const scanned = this.scanned[lane]!;
    if (scanned.length !== 0) {
      const m = this.nameMask;
      for (const e of scanned) {
        if (!mayMatch(e.needs, name, m)) continue; // e.g. some keyword character is not in the name
        const hit = e.re === null ? name.includes(e.pattern.value) : e.re.test(name);
        if (hit && visit(e.value, e.pattern.kind, e.pattern.value)) return true;
      }
    }
    return false;
  }

  /** The key of hit `k` of `name`'s probe: the name from the hit's start (equal to the key). */
  private hitKey(name: string, k: number): string {
    const start = this.hitStarts[k]!;
    return start === 0 ? name : name.slice(start);
  }

  private visitSlot(s: number, kind: DomainPattern['kind'], key: string, visit: (value: V, kind: DomainPattern['kind'], key: string) => boolean): boolean {
    if (s >= 0) return visit(s as V, kind, key);
    for (const v of this.lists[-2 - s]!) if (visit(v as V, kind, key)) return true;
    return false;
  }
}
