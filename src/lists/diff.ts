// What changed between two versions of a list: entries added and removed, compared by their
// conditions (a moved line is not a change). The review screen of a pending revision shows this.
import { describeEntry } from './collect.ts';
import type { ListEntry } from './types.ts';

export interface ListDiff {
  added: ListEntry[];
  removed: ListEntry[];
  /** Entries present in both versions. */
  kept: number;
}

/** Key of an entry's conditions (line and source excluded; +block included: it changes the egress). */
export function conditionKey(e: ListEntry): string {
  const { line: _l, source: _s, ...rest } = e;
  return JSON.stringify(rest);
}

export function diffEntries(before: readonly ListEntry[], after: readonly ListEntry[]): ListDiff {
  const old = new Set(before.map(conditionKey));
  const now = new Set<string>();
  const added: ListEntry[] = [];
  let kept = 0;
  for (const e of after) {
    const k = conditionKey(e);
    if (now.has(k)) continue;
    now.add(k);
    if (old.has(k)) kept++;
    else added.push(e);
  }
  const removed: ListEntry[] = [];
  const gone = new Set<string>();
  for (const e of before) {
    const k = conditionKey(e);
    if (!now.has(k) && !gone.has(k)) {
      gone.add(k);
      removed.push(e);
    }
  }
  return { added, removed, kept };
}

/** `+ suffix youtube.com (line 3)` / `- …` lines, at most `limit` of each, then a count. */
export function formatDiff(d: ListDiff, limit = 50): string[] {
  const out: string[] = [];
  const side = (sign: string, list: ListEntry[]): void => {
    for (const e of list.slice(0, limit)) out.push(`${sign} ${describeEntry(e)} (${e.source ? `${e.source} ` : ''}line ${e.line})`);
    if (list.length > limit) out.push(`${sign} … and ${list.length - limit} more`);
  };
  side('+', d.added);
  side('-', d.removed);
  return out;
}
