// Matches a process against app patterns: exact base names and exact paths in Maps, globs as
// anchored RegExps, OS groups in a Map. Used both as the app-stage index (values: rule lists) and
// per rule for a secondary `apps` condition.
import type { AppPattern } from '../types.ts';
import { globToRegExp } from '../patterns.ts';
import type { QueryCtx } from './query.ts';

/** Rank of app pattern kinds within the app stage: an exact path says most about the process. */
export const APP_KIND_RANK = { path: 3, name: 2, glob: 1, group: 0 } as const;

export function appPatternText(p: AppPattern): string {
  return p.kind === 'group' ? `group:${p.value}` : p.value;
}

interface Glob<V> {
  re: RegExp;
  onPath: boolean;
  pattern: AppPattern;
  value: V;
}

/** A multi-map from app patterns to values V; `find` yields matches from most to least specific. */
export class AppIndex<V> {
  private readonly names = new Map<string, V[]>();
  private readonly paths = new Map<string, V[]>();
  private readonly groups = new Map<string, V[]>();
  private readonly globs: Glob<V>[] = [];
  size = 0;

  add(p: AppPattern, value: V): void {
    this.size++;
    const push = (m: Map<string, V[]>) => {
      const l = m.get(p.value);
      if (l) { if (!l.includes(value)) l.push(value); } else m.set(p.value, [value]);
    };
    if (p.kind === 'name') push(this.names);
    else if (p.kind === 'path') push(this.paths);
    else if (p.kind === 'group') push(this.groups);
    else this.globs.push({ re: globToRegExp(p.value), onPath: p.value.includes('/'), pattern: p, value });
  }

  /** Orders values sharing a pattern, and globs, by `cmp` (stable); call after adding. */
  finish(cmp: (a: V, b: V) => number): void {
    for (const m of [this.names, this.paths, this.groups]) for (const l of m.values()) l.sort(cmp);
    this.globs.sort((a, b) => cmp(a.value, b.value));
  }

  /**
   * Calls `visit` for each match, most specific kind first (path, name, glob, group), until it
   * returns true. Returns whether a visit returned true.
   */
  find(ctx: QueryCtx, visit: (value: V, pattern: AppPattern, observed: string) => boolean): boolean {
    if (ctx.exe !== null && this.paths.size) {
      const l = this.paths.get(ctx.exe);
      if (l) for (const v of l) if (visit(v, { kind: 'path', value: ctx.exe }, ctx.q.exe!)) return true;
    }
    if (ctx.name !== null && this.names.size) {
      const l = this.names.get(ctx.name);
      if (l) for (const v of l) if (visit(v, { kind: 'name', value: ctx.name }, ctx.name)) return true;
    }
    for (const g of this.globs) {
      const subject = g.onPath ? ctx.exe : ctx.name;
      if (subject !== null && g.re.test(subject) && visit(g.value, g.pattern, subject)) return true;
    }
    if (ctx.q.group !== undefined && this.groups.size) {
      const l = this.groups.get(ctx.q.group);
      if (l) for (const v of l) if (visit(v, { kind: 'group', value: ctx.q.group }, ctx.q.group)) return true;
    }
    return false;
  }

  /** Whether any pattern matches; allocates nothing (the common, non-matching case is cheap). */
  matches(ctx: QueryCtx): boolean {
    if (ctx.exe !== null && this.paths.size !== 0 && this.paths.has(ctx.exe)) return true;
    if (ctx.name !== null && this.names.size !== 0 && this.names.has(ctx.name)) return true;
    for (const g of this.globs) {
      const subject = g.onPath ? ctx.exe : ctx.name;
      if (subject !== null && g.re.test(subject)) return true;
    }
    return ctx.q.group !== undefined && this.groups.size !== 0 && this.groups.has(ctx.q.group);
  }

  /** First matching pattern, or null (for a rule's secondary condition). */
  first(ctx: QueryCtx): { pattern: AppPattern; observed: string } | null {
    if (!this.matches(ctx)) return null;
    let found: { pattern: AppPattern; observed: string } | null = null;
    this.find(ctx, (_v, pattern, observed) => {
      found = { pattern, observed };
      return true;
    });
    return found;
  }
}
