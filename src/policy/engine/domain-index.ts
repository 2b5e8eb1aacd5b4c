// Domain lookup for one rule set. Exact (`full:`) names sit in one Map; suffix patterns in a second
// Map keyed by the suffix text, which is a label trie flattened into one hash table: the node for
// labels com → youtube is the key "youtube.com". A lookup probes the query name and each of its
// parent names, longest first — at most one probe per label, no candidate list, no allocation
// beyond V8's substring views. Keywords and regexps are scanned linearly (cost: one `includes` or
// one regexp test per pattern per query; see docs/config.md).
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

export class DomainIndex<V extends object> {
  private readonly full = new Map<string, Slot<V>>();
  private readonly suffix = new Map<string, Slot<V>>();
  private readonly scanned: Scanned<V>[] = [];
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
  }

  /**
   * Visits matches of `name` from most to least specific until `visit` returns true.
   * `kind`/`key` describe the matched pattern (key = the pattern's value).
   */
  find(name: string, visit: (value: V, kind: DomainPattern['kind'], key: string) => boolean): boolean {
    if (this.full.size !== 0) {
      const s = this.full.get(name);
      if (s !== undefined && visitSlot(s, 'full', name, visit)) return true;
    }
    if (this.suffix.size !== 0) {
      let i = 0;
      for (;;) {
        const key = i === 0 ? name : name.substring(i);
        const s = this.suffix.get(key);
        if (s !== undefined && visitSlot(s, 'suffix', key, visit)) return true;
        const dot = name.indexOf('.', i);
        if (dot < 0) break;
        i = dot + 1;
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
