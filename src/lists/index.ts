// Rule lists: parse any supported format into normalised entries, write entries back out, and turn
// `[[list]]` definitions into RuleConfigs for the policy engine. Pure apart from the injected
// reader: no network, no filesystem of its own.
//
// listsToRules makes ONE RuleConfig PER ENTRY, with origin {list, file, line}: the engine reports
// the rule that matched, so `explain` names the list and the line without knowing about lists.
// Entries repeated within or across lists are loaded once (the first wins) and counted.
import { posix as pathPosix, win32 as pathWin32, isAbsolute, resolve as resolvePath, dirname, basename } from 'node:path';
import { ListError } from '../errors.ts';
import type { AppPattern, Cidr, DomainPattern, PortRange, RuleConfig, RuleOrigin } from '../policy/types.ts';
import { Collector, ExportProblem, describeEntry, type EntrySink } from './collect.ts';
import { exportClash, parseClash, type ClashSyntax } from './formats/clash.ts';
import { exportNetRuleRouter, parseNetRuleRouter } from './formats/netrulerouter.ts';
import { exportPlain, parsePlain } from './formats/plain.ts';
import { exportSingbox, parseSingbox } from './formats/singbox.ts';
import { exportV2fly, parseAttrFilter, parseV2fly, type AttrFilter, type IncludeReader } from './formats/v2fly.ts';
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
}

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
  const rules: RuleConfig[] = [];
  const lists: ListSummary[] = [];
  const conflicts: ListConflict[] = [];
  const errors: ListError[] = [];
  // Dedupe by pattern text per kind, without building a key string for plain destination entries.
  const seenSimple = new Map<string, number>();
  const seenOther = new Map<string, number>();
  const names = new Set<string>();
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
    let entries = 0;
    let duplicates = 0;
    const sink: EntrySink = (e) => {
      entries++;
      if (e.platform && options.platform && e.platform !== options.platform) return;
      const plain = !e.apps && !e.ports && !e.network;
      const map = plain && e.domain ? seenSimple : seenOther;
      const key = plain && e.domain ? e.domain.kind[0] + e.domain.value : entryKey(e);
      const egress = e.block ? 'block' : def.egress;
      const prev = map.get(key);
      if (prev !== undefined) {
        duplicates++;
        const kept = rules[prev - start]!;
        if (kept.egress !== egress) {
          conflicts.push({
            pattern: describeEntry(e),
            kept: { ...kept.origin, egress: kept.egress },
            dropped: { list: def.name, file: e.source ?? source, line: e.line, egress },
          });
        }
        return;
      }
      if (rules.length + 1 > maxTotal) {
        throw new ListError('SY_ERR_LIST_LIMIT', `more than ${maxTotal} entries across all lists`, { list: def.name, line: e.line });
      }
      const index = start + rules.length;
      map.set(key, index);
      rules.push(toRule(e, index, egress, def.name, e.source ?? source));
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
      lists.push({
        name: def.name, format, source, egress: def.egress, entries, loaded: rules.length - firstRule, duplicates,
        skipped: parsed.skipped, disabled: parsed.disabled, notices: parsed.notices,
      });
      entriesTotal += entries;
      duplicatesTotal += duplicates;
      skippedTotal += parsed.skipped.length;
      disabledTotal += parsed.disabled;
    } catch (err) {
      // A failed list contributes nothing: drop what it added, so the result never holds half a list.
      rules.length = firstRule;
      for (const map of [seenSimple, seenOther]) {
        for (const [k, idx] of map) if (idx >= start + firstRule) map.delete(k);
      }
      errors.push(err instanceof ListError ? err : new ListError('SY_ERR_LIST_READ', String((err as Error)?.message ?? err), { list: def.name }, err));
    }
  }
  return {
    rules,
    lists,
    counts: { entries: entriesTotal, unique: rules.length, duplicates: duplicatesTotal, skipped: skippedTotal, disabled: disabledTotal },
    conflicts,
    errors,
  };
}

function toRule(e: ListEntry, index: number, egress: string, list: string, file: string): RuleConfig {
  return {
    index,
    name: null,
    egress,
    domains: e.domain ? [e.domain as DomainPattern] : EMPTY,
    apps: e.apps ?? EMPTY,
    cidrs: e.cidr ? [e.cidr as Cidr] : EMPTY,
    ports: e.ports ?? EMPTY,
    network: e.network ?? null,
    origin: { list, file, line: e.line },
  };
}
