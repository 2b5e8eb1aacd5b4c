// Domain lookup for one rule set: a label trie for suffix patterns, flattened into one hash table
// keyed by the suffix text (the trie node for labels com → youtube is the key "youtube.com"), and
// a second table for exact (`full:`) names. A lookup considers the query name and each of its parent
// names, longest first — at most one probe per label, no candidate list.
//
// The tables are our own open-addressing tables over a hash that one right-to-left pass over the
// name computes for every suffix at once, and a probe compares the stored key in place
// (`startsWith(key, offset)`). So a lookup creates no substrings and hashes each character once;
// with a JavaScript Map each parent name would be cut out and hashed again. Keywords and regexps
// are scanned linearly (cost: one `includes` or one regexp test per pattern per query; see
// docs/config.md).
import type { DomainPattern } from '../types.ts';

type Slot<V> = V | V[];

interface Scanned<V> {
  value: V;
  pattern: DomainPattern;
  re: RegExp | null;
}

export function domainPatternText(p: DomainPattern): string {
  return p.kind === 'suffix' ? p.value : `${p.kind}:${p.value}`;
}

/** FNV-1a style hash of a string read right to left: the value the lookup pass computes. */
function suffixHash(s: string): number {
  let h = 0x811c9dc5;
  for (let i = s.length - 1; i >= 0; i--) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h;
}

function countLabels(s: string): number {
  let n = 1;
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) === 46) n++;
  return n;
}

function labelBit(labels: number): number {
  return 1 << (Math.min(labels, 32) - 1);
}

/**
 * Open addressing, linear probing, load ≤ 1/2; entries hold key and value slot. Each table slot
 * is a pair [entry index or -1, full hash of the key] side by side, so a probe that misses (most
 * do) reads one cache line instead of the slot array plus a separate hash array.
 */
class KeyTable<V> {
  private slots = new Int32Array(2 * 64).fill(-1);
  private mask = 63; // slot count - 1
  /** Bit k set when some key has k+1 labels (bit 31: 32 or more): probes skip other depths. */
  labelMask = 0;
  readonly keys: string[] = [];
  readonly values: Slot<V>[] = [];

  get size(): number {
    return this.keys.length;
  }

  add(key: string, value: V): void {
    const h = suffixHash(key);
    const e = this.lookup(key, 0, h);
    if (e >= 0) {
      const cur = this.values[e]!;
      if (Array.isArray(cur)) { if (!cur.includes(value)) cur.push(value); }
      else if (cur !== value) this.values[e] = [cur, value];
      return;
    }
    this.labelMask |= labelBit(countLabels(key));
    this.keys.push(key);
    this.values.push(value);
    if (this.keys.length * 2 > this.mask + 1) this.grow();
    this.place(h, this.keys.length - 1);
  }

  private place(h: number, e: number): void {
    let i = h & this.mask;
    while (this.slots[2 * i] !== -1) i = (i + 1) & this.mask;
    this.slots[2 * i] = e;
    this.slots[2 * i + 1] = h;
  }

  /** Doubles the slot count and re-places every entry (hashes are read from the old slots). */
  private grow(): void {
    const old = this.slots;
    this.slots = new Int32Array(old.length * 2).fill(-1);
    this.mask = old.length - 1;
    for (let j = 0; j < old.length; j += 2) if (old[j] !== -1) this.place(old[j + 1]!, old[j]!);
  }

  /** Entry whose key equals name[start..], given that substring's hash; -1 if none. */
  lookup(name: string, start: number, h: number): number {
    const len = name.length - start;
    const slots = this.slots;
    const mask = this.mask;
    for (let i = h & mask; ; i = (i + 1) & mask) {
      const e = slots[2 * i]!;
      if (e === -1) return -1;
      if (slots[2 * i + 1] === h) {
        const k = this.keys[e]!;
        if (k.length === len && name.startsWith(k, start)) return e;
      }
    }
  }
}

const MAX_LABELS = 128; // a 253-character name has at most 127 labels

export class DomainIndex<V> {
  private readonly full = new KeyTable<V>();
  private readonly suffix = new KeyTable<V>();
  private readonly scanned: Scanned<V>[] = [];
  // Scratch for one lookup: suffix start offsets and their hashes (find is synchronous).
  private readonly starts = new Int32Array(MAX_LABELS + 1);
  private readonly hashes = new Int32Array(MAX_LABELS + 1);
  size = 0;

  add(p: DomainPattern, value: V): void {
    this.size++;
    if (p.kind === 'full') this.full.add(p.value, value);
    else if (p.kind === 'suffix') this.suffix.add(p.value, value);
    else this.scanned.push({ value, pattern: p, re: p.kind === 'regexp' ? new RegExp(p.value) : null });
  }

  /** Orders values that share a pattern (or share the scanned level) by `cmp`; call after adding. */
  finish(cmp: (a: V, b: V) => number): void {
    for (const t of [this.full, this.suffix]) for (const v of t.values) if (Array.isArray(v)) v.sort(cmp);
    this.scanned.sort((a, b) => cmp(a.value, b.value));
  }

  /**
   * Visits matches of `name` from most to least specific until `visit` returns true.
   * `kind`/`key` describe the matched pattern (key = the pattern's value).
   */
  find(name: string, visit: (value: V, kind: DomainPattern['kind'], key: string) => boolean): boolean {
    const full = this.full;
    const suffix = this.suffix;
    if (full.size !== 0 || suffix.size !== 0) {
      // One right-to-left pass: h is the hash of name[i+1..] when name[i] is a dot, and of the
      // whole name at the end. Only depths (label counts) that some pattern has are probed.
      const mask = suffix.labelMask;
      let h = 0x811c9dc5;
      let n = 0;
      let labels = 1;
      for (let i = name.length - 1; i >= 0; i--) {
        const c = name.charCodeAt(i);
        if (c === 46) {
          if ((mask & labelBit(labels)) !== 0 && n < MAX_LABELS) {
            this.starts[n] = i + 1;
            this.hashes[n++] = h;
          }
          labels++;
        }
        h = Math.imul(h ^ c, 0x01000193);
      }
      if ((mask & labelBit(labels)) !== 0 && n < MAX_LABELS) {
        this.starts[n] = 0;
        this.hashes[n++] = h;
      }
      if (full.size !== 0 && (full.labelMask & labelBit(labels)) !== 0) {
        const e = full.lookup(name, 0, h);
        if (e >= 0 && visitSlot(full.values[e]!, 'full', full.keys[e]!, visit)) return true;
      }
      if (suffix.size !== 0) {
        // Longest suffix first: starts were collected from the right, so walk them backwards.
        for (let k = n - 1; k >= 0; k--) {
          const e = suffix.lookup(name, this.starts[k]!, this.hashes[k]!);
          if (e >= 0 && visitSlot(suffix.values[e]!, 'suffix', suffix.keys[e]!, visit)) return true;
        }
      }
    }
    for (const e of this.scanned) {
      const hit = e.re === null ? name.includes(e.pattern.value) : e.re.test(name);
      if (hit && visit(e.value, e.pattern.kind, e.pattern.value)) return true;
    }
    return false;
  }
}

function visitSlot<V>(s: Slot<V>, kind: DomainPattern['kind'], key: string, visit: (value: V, kind: DomainPattern['kind'], key: string) => boolean): boolean {
  if (!Array.isArray(s)) return visit(s, kind, key);
  for (const v of s) if (visit(v, kind, key)) return true;
  return false;
}
