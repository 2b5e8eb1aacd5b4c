// `[[list]]` definitions → RuleConfigs for the policy engine. Pure apart from the injected reader:
// no network, no filesystem of its own.
//
// Granularity `entry` makes ONE RuleConfig PER ENTRY, with origin {list, file, line}: the engine
// reports the rule that matched, so `explain` names the list and the line without knowing about
// lists; `list` groups destination-only entries (see ListsToRulesOptions). Entries repeated within
// or across lists are loaded once (the first wins) and counted.
import { posix as pathPosix, win32 as pathWin32, isAbsolute, resolve as resolvePath, dirname } from 'node:path';
import { ListError } from '../errors.ts';
import type { Cidr, DomainPattern, RuleConfig, RuleOrigin } from '../policy/types.ts';
import { describeEntry, type EntrySink } from './collect.ts';
import type { IncludeReader } from './formats/v2fly.ts';
import { defError, validateListDef, type ListDef } from './list-def.ts';
import { parseList, type ParseListOptions } from './parse-list.ts';
import { StringIndex } from './string-index.ts';
import { DEFAULT_LIMITS, type ListEntry, type ListFormat, type ListLimits, type ListReader, type ParsedList } from './types.ts';

export interface ListsToRulesOptions {
  /** Index of the first list rule: the number of rules the config itself declares. */
  startIndex?: number;
  limits?: Partial<ListLimits>;
  /** Entries across all lists (after dedupe). Default 3,000,000. */
  maxTotalEntries?: number;
  /** Declared egress names (with `direct` and `block`); when given, each list's egress is checked. */
  egresses?: ReadonlySet<string>;
  /** Relative `path`s are resolved against this directory (the config file's). */
  baseDir?: string;
  /** Keep only NetRuleRouter app sections for this OS; default: both. */
  platform?: 'windows' | 'linux';
  /**
   * `entry`: one RuleConfig per entry, origin {list, file, line}: the engine's explain names the
   * line by itself. `list`: entries with only a domain or only a CIDR (the bulk of any big list)
   * share one RuleConfig per list and egress — under a third of the memory at 1M entries — and
   * their lines live in `patternLines`. `auto` (default): `list` for lists holding more than
   * `groupAbove` such entries, `entry` for the others. Either way listOriginOf() gives the line.
   */
  granularity?: 'entry' | 'list' | 'auto';
  /** `auto`: group a list with more destination-only entries than this. Default 10,000. */
  groupAbove?: number;
}

/** Lines (and files, where an include differs from the list) parallel to a grouped rule's patterns. */
export interface PatternLines {
  domains: Int32Array;
  cidrs: Int32Array;
  /** Per pattern index: the v2fly include it came from, when not the list file itself. */
  domainFiles: Map<number, string> | null;
  cidrFiles: Map<number, string> | null;
}

export interface ListSummary {
  name: string;
  format: ListFormat;
  /** The path (resolved) or URL. */
  source: string;
  egress: string;
  /** Entries the list holds (before dedupe). */
  entries: number;
  /** Entries that became rules (not already loaded by this or an earlier list). */
  loaded: number;
  /** Entries that repeated an earlier one and were not loaded again. */
  duplicates: number;
  skipped: ParsedList['skipped'];
  disabled: number;
  notices: string[];
}

export interface ListConflict {
  pattern: string;
  kept: RuleOrigin & { egress: string };
  dropped: RuleOrigin & { egress: string };
}

export interface ListsResult {
  /** One per unique entry; append to the config's rules (indexes continue from startIndex). */
  rules: RuleConfig[];
  lists: ListSummary[];
  counts: { entries: number; unique: number; duplicates: number; skipped: number; disabled: number };
  /** The same entry sent to different egresses by different lists: the first list wins. */
  conflicts: ListConflict[];
  /** One per failed list. A caller must not activate a config while this is non-empty. */
  errors: ListError[];
  /** granularity `list`: rule index → the lines of its patterns. Empty otherwise. */
  patternLines: Map<number, PatternLines>;
}

/** Dedupe-map marker base for entries still waiting (granularity auto); group ids stay far above. */
const WAITING = -(2 ** 30);
/** Value of an entry just inserted, replaced before the next insertion (StringIndex.setLast). */
const PROVISIONAL = -(2 ** 31);
// Shared by every rule without such conditions (frozen: nobody may push into it). Saves ~3 arrays a rule.
const EMPTY = Object.freeze([]) as unknown as never[];

/** Key of an entry's conditions; equal keys are the same rule whatever list they come from. */
function entryKey(e: ListEntry): string {
  let k = e.domain ? `${e.domain.kind[0]}${e.domain.value}` : e.cidr ? `c${e.cidr.address}/${e.cidr.prefix}` : '-';
  if (e.apps?.length) k += `|a${e.apps.map((a) => `${a.kind}:${a.value}`).join(',')}`;
  if (e.ports?.length) k += `|p${e.ports.map((p) => `${p.from}-${p.to}`).join(',')}`;
  if (e.network) k += `|n${e.network}`;
  return k;
}

function includeReader(readFile: ListReader, source: string): IncludeReader {
  // v2fly includes live next to the list: same directory, or the same URL folder.
  if (/^https:\/\//.test(source)) return (name) => readFile(new URL(name, source).href);
  const path = /^[a-zA-Z]:[\\/]/.test(source) || source.includes('\\') ? pathWin32 : pathPosix;
  return (name) => readFile(path.join(dirname(source), name));
}

export async function listsToRules(defs: readonly ListDef[], readFile: ListReader, options: ListsToRulesOptions = {}): Promise<ListsResult> {
  const limits: ListLimits = { ...DEFAULT_LIMITS, ...options.limits };
  const maxTotal = options.maxTotalEntries ?? 3_000_000;
  const start = options.startIndex ?? 0;
  const granularity = options.granularity ?? 'auto';
  const grouped = granularity !== 'entry';
  const groupAbove = granularity === 'list' ? -1 : (options.groupAbove ?? 10_000);
  const rules: RuleConfig[] = [];
  const lists: ListSummary[] = [];
  const conflicts: ListConflict[] = [];
  const errors: ListError[] = [];
  const patternLines = new Map<number, PatternLines>();
  // Dedupe: one Map per domain kind keyed by the value itself (no key string to build for the
  // common case), one for everything else. Values: a rule index, or for grouped entries
  // -(group id + 1).
  const seen = { suffix: new StringIndex(), full: new StringIndex(), keyword: new StringIndex(), regexp: new StringIndex(), other: new StringIndex() };
  const groupsMeta: { egress: string; list: string; file: string }[] = [];
  const names = new Set<string>();
  let unique = 0;
  let entriesTotal = 0;
  let duplicatesTotal = 0;
  let skippedTotal = 0;
  let disabledTotal = 0;

  for (const def of defs) {
    let format: ListFormat;
    try {
      format = validateListDef(def, options.egresses);
      if (names.has(def.name)) throw defError(def, `list name '${def.name}' is used twice`);
      names.add(def.name);
    } catch (e) {
      errors.push(e as ListError);
      continue;
    }
    const source = def.url ?? (options.baseDir && !isAbsolute(def.path!) ? resolvePath(options.baseDir, def.path!) : def.path!);
    const firstRule = rules.length;
    const firstGroup = groupsMeta.length;
    const uniqueBefore = unique;
    let entries = 0;
    let duplicates = 0;
    // granularity `list`: per egress, the destination-only entries of this list.
    const groups = new Map<string, Group>();
    // `auto`: entries wait here, in order, until the list proves big (then it is grouped) or ends
    // (then each becomes its own rule, in file order). Dedupe maps point at waiting entries with
    // WAITING - position.
    let waiting: ListEntry[] | null = granularity === 'auto' ? [] : null;
    let waitingSimple = 0;
    // Hot path (once per entry): no allocation for the common destination-only domain entry.
    const mapOf = (e: ListEntry): StringIndex => (!e.apps && !e.ports && !e.network && e.domain ? seen[e.domain.kind] : seen.other);
    const keyOf = (e: ListEntry): string => (!e.apps && !e.ports && !e.network && e.domain ? e.domain.value : entryKey(e));
    const isDest = (e: ListEntry): boolean => !e.apps && !e.ports && !e.network && (e.domain !== undefined || e.cidr !== undefined);
    const groupFor = (egress: string): Group => {
      let g = groups.get(egress);
      if (!g) {
        g = newGroup(groupsMeta.length);
        groupsMeta.push({ egress, list: def.name, file: source });
        groups.set(egress, g);
      }
      return g;
    };
    /** Where an entry goes: a group (grouped destination entries) or its own rule. Returns the dedupe value. */
    const place = (e: ListEntry, group: boolean): number => {
      const egress = e.block ? 'block' : def.egress;
      if (group && isDest(e)) {
        const g = groupFor(egress);
        g.add(e);
        return -g.id - 1;
      }
      const index = start + rules.length;
      rules.push(toRule(e, index, egress, { list: def.name, file: e.source ?? source, line: e.line }));
      return index;
    };
    const flush = (group: boolean): void => {
      const w = waiting!;
      waiting = null;
      for (const e of w) mapOf(e).set(keyOf(e), place(e, group));
    };
    const sink: EntrySink = (e) => {
      entries++;
      if (e.platform && options.platform && e.platform !== options.platform) return;
      const map = mapOf(e);
      const key = keyOf(e);
      // One hash probe for the common case: insert a provisional marker, or learn it is a repeat.
      const prev = map.addIfAbsent(key, PROVISIONAL);
      if (prev !== undefined) {
        duplicates++;
        const egress = e.block ? 'block' : def.egress;
        const kept = prev <= WAITING
          ? (() => { const w = waiting![WAITING - prev]!; return { list: def.name, file: w.source ?? source, line: w.line, egress: w.block ? 'block' : def.egress }; })()
          : prev >= 0 ? { ...rules[prev - start]!.origin, egress: rules[prev - start]!.egress } : { ...groupsMeta[-prev - 1]! };
        if (kept.egress !== egress) {
          conflicts.push({ pattern: describeEntry(e), kept, dropped: { list: def.name, file: e.source ?? source, line: e.line, egress } });
        }
        return;
      }
      if (++unique > maxTotal) {
        throw new ListError('SY_ERR_LIST_LIMIT', `more than ${maxTotal} entries across all lists`, { list: def.name, line: e.line });
      }
      if (waiting) {
        map.setLast(WAITING - waiting.length);
        waiting.push(e);
        if (isDest(e) && ++waitingSimple > groupAbove) flush(true);
        return;
      }
      map.setLast(place(e, grouped));
    };
    try {
      let data: Uint8Array | string;
      try {
        data = await readFile(source);
      } catch (err) {
        throw new ListError('SY_ERR_LIST_READ', (err as Error).message, { list: def.name, file: source }, err);
      }
      const opts: ParseListOptions = {
        list: def.name,
        file: source,
        limits,
        ...(def.unsupported ? { unsupported: def.unsupported } : {}),
        ...(format === 'v2fly' ? { readInclude: includeReader(readFile, source) } : {}),
        ...(def.attrs ? { attrs: def.attrs } : {}),
      };
      const parsed = await parseList(data, format, opts, sink);
      if (waiting) flush(false); // `auto` and the list stayed small: one rule per entry, in order
      for (const [egress, g] of groups) {
        for (const r of g.rules(egress, def.name, source, start + rules.length)) {
          rules.push(r.rule);
          patternLines.set(r.rule.index, r.lines);
        }
      }
      lists.push({
        name: def.name, format, source, egress: def.egress, entries, loaded: unique - uniqueBefore, duplicates,
        skipped: parsed.skipped, disabled: parsed.disabled, notices: parsed.notices,
      });
      entriesTotal += entries;
      duplicatesTotal += duplicates;
      skippedTotal += parsed.skipped.length;
      disabledTotal += parsed.disabled;
    } catch (err) {
      // A failed list contributes nothing: drop what it added, so the result never holds half a list.
      rules.length = firstRule;
      groupsMeta.length = firstGroup;
      unique = uniqueBefore;
      for (const map of Object.values(seen)) {
        map.retain((idx) => !(idx >= start + firstRule || idx <= WAITING || (idx < 0 && -idx - 1 >= firstGroup)));
        // (PROVISIONAL ≤ WAITING: an entry whose insertion failed half-way goes too.)
      }
      errors.push(err instanceof ListError ? err : new ListError('SY_ERR_LIST_READ', String((err as Error)?.message ?? err), { list: def.name }, err));
    }
  }
  return {
    rules,
    lists,
    counts: { entries: entriesTotal, unique, duplicates: duplicatesTotal, skipped: skippedTotal, disabled: disabledTotal },
    conflicts,
    errors,
    patternLines,
  };
}

interface Group {
  id: number;
  add(e: ListEntry): void;
  rules(egress: string, list: string, file: string, nextIndex: number): { rule: RuleConfig; lines: PatternLines }[];
}

function newGroup(id: number): Group {
  const domains: DomainPattern[] = [];
  const dLines: number[] = [];
  let dFiles: Map<number, string> | null = null;
  const cidrs: Cidr[] = [];
  const cLines: number[] = [];
  let cFiles: Map<number, string> | null = null;
  return {
    id,
    add(e) {
      if (e.domain) {
        if (e.source !== undefined) (dFiles ??= new Map()).set(domains.length, e.source);
        domains.push(e.domain);
        dLines.push(e.line);
      } else if (e.cidr) {
        if (e.source !== undefined) (cFiles ??= new Map()).set(cidrs.length, e.source);
        cidrs.push(e.cidr);
        cLines.push(e.line);
      }
    },
    rules(egress, list, file, nextIndex) {
      // Domains and CIDRs in separate rules: one rule ANDs its conditions, a list ORs its entries.
      const out: { rule: RuleConfig; lines: PatternLines }[] = [];
      const origin: RuleOrigin = { list, file };
      if (domains.length) {
        out.push({
          rule: { index: nextIndex, name: null, egress, domains, apps: EMPTY, cidrs: EMPTY, ports: EMPTY, network: null, origin },
          lines: { domains: Int32Array.from(dLines), cidrs: new Int32Array(0), domainFiles: dFiles, cidrFiles: null },
        });
      }
      if (cidrs.length) {
        out.push({
          rule: { index: nextIndex + out.length, name: null, egress, domains: EMPTY, apps: EMPTY, cidrs, ports: EMPTY, network: null, origin },
          lines: { domains: new Int32Array(0), cidrs: Int32Array.from(cLines), domainFiles: null, cidrFiles: cFiles },
        });
      }
      return out;
    },
  };
}


function toRule(e: ListEntry, index: number, egress: string, origin: RuleOrigin): RuleConfig {
  return {
    index,
    name: null,
    egress,
    domains: e.domain ? [e.domain as DomainPattern] : EMPTY,
    apps: e.apps ?? EMPTY,
    cidrs: e.cidr ? [e.cidr as Cidr] : EMPTY,
    ports: e.ports ?? EMPTY,
    network: e.network ?? null,
    origin,
  };
}
