// Domain lookup for one rule set. Exact (`full:`) names sit in one Map; suffix patterns in a second
// Map keyed by the suffix text, which is a label trie flattened into one hash table: the node for
// labels com → youtube is the key "youtube.com". A lookup considers the query name and each of its
// parent names, longest first — at most one probe per label, no candidate list.
//
// Most probes miss, and with 10^5–10^6 keys a Map probe is a cache miss or three. So one pass over
// the name, right to left, hashes every suffix without creating strings; a Bloom filter (two bits
// per key, 16 bits per key) rejects almost all misses, and only the survivors are cut out with
// substring() and looked up. Keywords and regexps are scanned linearly (cost: one `includes` or one
// regexp test per pattern per query; see docs/config.md).
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

/** Specificity of a domain match: full beats any suffix, more labels beat fewer, keyword/regexp last. */
export function domainSpecificity(p: DomainPattern): number {
  if (p.kind === 'full') return 1000;
  if (p.kind === 'suffix') return 1 + countLabels(p.value);
  return 0;
}

function countLabels(s: string): number {
  let n = 1;
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) === 46) n++;
  return n;
}

/** FNV-1a style hash of s[from..] read right to left: the same value the lookup pass computes. */
function suffixHash(s: string): number {
  let h = 0x811c9dc5;
  for (let i = s.length - 1; i >= 0; i--) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h;
}

class Bloom {
  private readonly bits: Int32Array;
  private readonly mask: number;
  constructor(keys: Iterable<string>, count: number) {
    let size = 1024;
    while (size < count * 16) size *= 2;
    this.bits = new Int32Array(size >>> 5);
    this.mask = size - 1;
    for (const k of keys) this.addHash(suffixHash(k));
  }
  private addHash(h: number): void {
    const a = h & this.mask;
    const b = Math.imul(h, 0x9e3779b1) >>> 7 & this.mask;
    this.bits[a >>> 5]! |= 1 << (a & 31);
    this.bits[b >>> 5]! |= 1 << (b & 31);
  }
  has(h: number): boolean {
    const a = h & this.mask;
    if ((this.bits[a >>> 5]! & (1 << (a & 31))) === 0) return false;
    const b = Math.imul(h, 0x9e3779b1) >>> 7 & this.mask;
    return (this.bits[b >>> 5]! & (1 << (b & 31))) !== 0;
  }
}

const MAX_LABELS = 128; // a 253-character name has at most 127 labels

export class DomainIndex<V> {
  private readonly full = new Map<string, Slot<V>>();
  private readonly suffix = new Map<string, Slot<V>>();
  private readonly scanned: Scanned<V>[] = [];
  private fullBloom: Bloom | null = null;
  private suffixBloom: Bloom | null = null;
  // Scratch for one lookup: start offsets of suffixes that passed the filter (find is synchronous).
  private readonly starts = new Int32Array(MAX_LABELS + 1);
  size = 0;

  add(p: DomainPattern, value: V): void {
    this.size++;
    if (p.kind === 'full' || p.kind === 'suffix') {
      const m = p.kind === 'full' ? this.full : this.suffix;
      const cur = m.get(p.value);
      if (cur === undefined) m.set(p.value, value);
      else if (Array.isArray(cur)) { if (!cur.includes(value)) cur.push(value); }
      else if (cur !== value) m.set(p.value, [cur, value]);
    } else {
      this.scanned.push({ value, pattern: p, re: p.kind === 'regexp' ? new RegExp(p.value) : null });
    }
  }

  /** Orders values that share a pattern (or share the scanned level) by `cmp`; call after adding. */
  finish(cmp: (a: V, b: V) => number): void {
    for (const m of [this.full, this.suffix]) for (const v of m.values()) if (Array.isArray(v)) v.sort(cmp);
    this.scanned.sort((a, b) => cmp(a.value, b.value));
    this.fullBloom = new Bloom(this.full.keys(), this.full.size);
    this.suffixBloom = new Bloom(this.suffix.keys(), this.suffix.size);
  }

  /**
   * Visits matches of `name` from most to least specific until `visit` returns true.
   * `kind`/`key` describe the matched pattern (key = the pattern's value).
   */
  find(name: string, visit: (value: V, kind: DomainPattern['kind'], key: string) => boolean): boolean {
    if (this.fullBloom === null) throw new Error('DomainIndex: find before finish');
    if (this.full.size !== 0 || this.suffix.size !== 0) {
      // One right-to-left pass: h is the hash of name[i..]; suffixes start at 0 and after each dot.
      let h = 0x811c9dc5;
      let n = 0;
      const suffixBloom = this.suffixBloom!;
      for (let i = name.length - 1; i >= 0; i--) {
        const c = name.charCodeAt(i);
        h = Math.imul(h ^ c, 0x01000193);
        if ((i === 0 || name.charCodeAt(i - 1) === 46) && n < MAX_LABELS && suffixBloom.has(h)) this.starts[n++] = i;
      }
      if (this.full.size !== 0 && this.fullBloom.has(h)) {
        const s = this.full.get(name);
        if (s !== undefined && visitSlot(s, 'full', name, visit)) return true;
      }
      // Longest suffix first: starts were collected from the right, so walk them backwards.
      for (let k = n - 1; k >= 0; k--) {
        const i = this.starts[k]!;
        const key = i === 0 ? name : name.substring(i);
        const s = this.suffix.get(key);
        if (s !== undefined && visitSlot(s, 'suffix', key, visit)) return true;
      }
    }
    for (const e of this.scanned) {
      const hit = e.re === null ? name.includes(e.pattern.value) : e.re.test(name);
      if (hit && visit(e.value, e.pattern.kind, e.pattern.value)) return true;
    }
    return false;
  }

  /** Every (pattern, value) pair, for projections and tests. */
  get hasScanned(): boolean {
    return this.scanned.length !== 0;
  }
}

function visitSlot<V>(s: Slot<V>, kind: DomainPattern['kind'], key: string, visit: (value: V, kind: DomainPattern['kind'], key: string) => boolean): boolean {
  if (!Array.isArray(s)) return visit(s, kind, key);
  for (const v of s) if (visit(v, kind, key)) return true;
  return false;
}
