// Rule lists: parse any supported format into normalised entries, write entries back out, and turn
// `[[list]]` definitions into RuleConfigs for the policy engine. Pure apart from the injected
// reader: no network, no filesystem of its own.
//
// listsToRules makes ONE RuleConfig PER ENTRY, with origin {list, file, line}: the engine reports
// the rule that matched, so `explain` names the list and the line without knowing about lists.
// Entries repeated within or across lists are loaded once (the first wins) and counted.
import { posix as pathPosix, win32 as pathWin32, isAbsolute, resolve as resolvePath, dirname, basename } from 'node:path';
import { ListError } from '../errors.ts';
import type { AppPattern, Cidr, Decision, DomainPattern, PortRange, RuleConfig, RuleOrigin } from '../policy/types.ts';
import { domainPatternText } from '../policy/engine/domain-index.ts';
import { parseCidr } from './normalize.ts';
import { Collector, ExportProblem, describeEntry, type EntrySink } from './collect.ts';
import { exportClash, parseClash, type ClashSyntax } from './formats/clash.ts';
import { exportNetRuleRouter, parseNetRuleRouter } from './formats/netrulerouter.ts';
import { exportPlain, parsePlain } from './formats/plain.ts';
import { exportSingbox, parseSingbox } from './formats/singbox.ts';
import { exportV2fly, parseAttrFilter, parseV2fly, type AttrFilter, type IncludeReader } from './formats/v2fly.ts';
import { StringIndex } from './string-index.ts';
import { decodeList } from './text.ts';
import { DEFAULT_LIMITS, LIST_FORMATS, isListFormat, type ListEntry, type ListFormat, type ListLimits, type ListReader, type ParseOptions, type ParsedList } from './types.ts';

export * from './types.ts';
export { ValueError } from './normalize.ts';

export interface ParseListOptions extends ParseOptions {
  /** v2fly: reads `include:NAME` (another file of the same data directory). */
  readInclude?: IncludeReader;
  /** v2fly: keep only entries with/without these attributes (`['cn', '-ads']`). */
  attrs?: string[];
}

/** Parses one list, sending each entry to `sink` (or collecting them when no sink is given). */
export async function parseList(data: Uint8Array | string, format: ListFormat, opts: ParseListOptions, sink?: EntrySink): Promise<ParsedList> {
  const entries: ListEntry[] = [];
  const c = new Collector(format, opts, sink ?? ((e) => entries.push(e)));
  const text = decodeList(data, c.limits, c.where());
  switch (format) {
    case 'plain': parsePlain(text, c); break;
    case 'v2fly': {
      const filter = opts.attrs?.length ? parseAttrFilter(opts.attrs.map((a) => (a.startsWith('@') ? a : `@${a}`)), c, 0) : undefined;
      const self = opts.file === undefined ? undefined : basename(opts.file);
      await parseV2fly(text, c, opts.readInclude, filter, self);
      break;
    }
    case 'singbox': parseSingbox(text, c); break;
    case 'clash-domain': parseClash(text, 'domain', c); break;
    case 'clash-ipcidr': parseClash(text, 'ipcidr', c); break;
    case 'clash-classical': parseClash(text, 'classical', c); break;
    case 'netrulerouter': parseNetRuleRouter(text, c); break;
  }
  return c.finish(entries);
}

export interface ExportOptions {
  /** Clash formats: `yaml` (default, `payload:`) or `text`. */
  clashSyntax?: ClashSyntax;
  /** List name and source file, for messages about entries that cannot be written. */
  list?: string;
  file?: string;
}

/** Writes entries in `format`; an entry the format cannot hold is an SY_ERR_LIST_EXPORT naming its line. */
export function exportList(entries: readonly ListEntry[], format: ListFormat, opts: ExportOptions = {}): string {
  try {
    return exportAs(entries, format, opts.clashSyntax ?? 'yaml');
  } catch (e) {
    if (!(e instanceof ExportProblem)) throw e;
    const file = e.entry.source ?? opts.file;
    throw new ListError('SY_ERR_LIST_EXPORT', e.message, {
      ...(opts.list === undefined ? {} : { list: opts.list }),
      ...(file === undefined ? {} : { file }),
      line: e.entry.line,
    });
  }
}

function exportAs(entries: readonly ListEntry[], format: ListFormat, syntax: ClashSyntax): string {
  switch (format) {
    case 'plain': return exportPlain(entries);
    case 'v2fly': return exportV2fly(entries);
    case 'singbox': return exportSingbox(entries);
    case 'clash-domain': return exportClash(entries, 'domain', syntax);
    case 'clash-ipcidr': return exportClash(entries, 'ipcidr', syntax);
    case 'clash-classical': return exportClash(entries, 'classical', syntax);
    case 'netrulerouter': return exportNetRuleRouter(entries);
  }
}

// ------------------------------------------------------------------ [[list]] → rules

/** One `[[list]]` table of the config, already read from TOML (keys in docs/lists.md). */
export interface ListDef {
  name: string;
  path?: string;
  url?: string;
  format: string;
  egress: string;
  /** v2fly attribute filter: `["cn"]` keeps @cn entries, `["-ads"]` drops @ads ones. */
  attrs?: string[];
  /** `error` (default) or `skip`: what an unsupported field or rule type does. */
  unsupported?: 'error' | 'skip';
  /** Remote lists: pinned sha256 of the body (hex). Checked by the fetcher. */
  sha256?: string;
  /** Remote lists: download size limit in bytes. */
  maxBytes?: number;
  /** Remote lists: the egress the download goes through (default `direct`). */
  via?: string;
  /** Config line of the [[list]] table, for messages. */
  line?: number;
}

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
const LIST_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
// Shared by every rule without such conditions (frozen: nobody may push into it). Saves ~3 arrays a rule.
const EMPTY = Object.freeze([]) as unknown as never[];

function defError(def: Partial<ListDef>, message: string): ListError {
  return new ListError('SY_ERR_LIST_DEF', message + (def.line === undefined ? '' : ` (config line ${def.line})`), def.name ? { list: def.name } : {});
}

/** Checks one definition; returns the format. */
export function validateListDef(def: ListDef, egresses?: ReadonlySet<string>): ListFormat {
  if (typeof def.name !== 'string' || !LIST_NAME.test(def.name)) throw defError(def, `list name '${String(def.name)}' must be 1–64 of A-Z a-z 0-9 . _ - (starting with a letter or digit)`);
  const hasPath = typeof def.path === 'string' && def.path !== '';
  const hasUrl = typeof def.url === 'string' && def.url !== '';
  if (hasPath === hasUrl) throw defError(def, 'give exactly one of path and url');
  if (hasUrl) {
    let u: URL;
    try { u = new URL(def.url!); } catch { throw defError(def, `url '${def.url}' is not a URL`); }
    if (u.protocol !== 'https:') throw defError(def, `url must be https:// (got ${u.protocol})`);
  }
  if (typeof def.format !== 'string' || !isListFormat(def.format)) throw defError(def, `format '${String(def.format)}' is not one of ${LIST_FORMATS.join(', ')}`);
  if (typeof def.egress !== 'string' || def.egress === '') throw defError(def, 'egress is required');
  if (egresses && !egresses.has(def.egress)) throw defError(def, `egress '${def.egress}' is not declared`);
  if (def.unsupported !== undefined && def.unsupported !== 'error' && def.unsupported !== 'skip') throw defError(def, "unsupported must be 'error' or 'skip'");
  if (def.attrs !== undefined && (!Array.isArray(def.attrs) || def.format !== 'v2fly')) throw defError(def, 'attrs is a list of v2fly attributes (format = "v2fly" only)');
  if (def.sha256 !== undefined && !/^[0-9a-fA-F]{64}$/.test(def.sha256)) throw defError(def, 'sha256 must be 64 hex digits');
  if (def.sha256 !== undefined && !hasUrl) throw defError(def, 'sha256 applies to url lists only');
  if (def.maxBytes !== undefined && (!Number.isSafeInteger(def.maxBytes) || def.maxBytes < 1 || !hasUrl)) throw defError(def, 'max_bytes is a positive integer, for url lists only');
  if (def.via !== undefined) {
    if (typeof def.via !== 'string' || def.via === '' || !hasUrl) throw defError(def, 'via names the egress a url list is fetched through');
    if (egresses && !egresses.has(def.via)) throw defError(def, `via egress '${def.via}' is not declared`);
  }
  return def.format;
}

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

/**
 * The origin of a decision with the line filled in: for `entry` rules it is the rule's origin;
 * for grouped rules it looks the matched pattern up (a linear scan — explain is interactive).
 */
export function listOriginOf(result: Pick<ListsResult, 'patternLines' | 'rules'>, d: Pick<Decision, 'rule' | 'matched'>): RuleOrigin | null {
  if (!d.rule) return null;
  const lines = result.patternLines.get(d.rule.index);
  if (!lines) return d.rule.origin;
  const rule = result.rules.find((r) => r.index === d.rule!.index);
  if (!rule) return d.rule.origin;
  for (const m of d.matched) {
    if (m.condition === 'domain') {
      const i = rule.domains.findIndex((p) => domainPatternText(p) === m.pattern);
      if (i >= 0) return { ...d.rule.origin, ...(lines.domainFiles?.has(i) ? { file: lines.domainFiles.get(i)! } : {}), line: lines.domains[i]! };
    } else if (m.condition === 'cidr') {
      const want = parseCidrSafe(m.pattern);
      const i = want === null ? -1 : rule.cidrs.findIndex((c) => c.family === want.family && c.prefix === want.prefix && c.address === want.address);
      if (i >= 0) return { ...d.rule.origin, ...(lines.cidrFiles?.has(i) ? { file: lines.cidrFiles.get(i)! } : {}), line: lines.cidrs[i]! };
    }
  }
  return d.rule.origin;
}

function parseCidrSafe(text: string): Cidr | null {
  try {
    return parseCidr(text).cidr;
  } catch {
    return null;
  }
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
