// What every format parser shares: turning ValueErrors into line-numbered ListErrors, the entry
// limit, `unsupported = "skip"`, and the parse result. Entries go to a sink so that a 1M-entry list
// can become rules without first living as a 1M-element array of entries.
import { ListError } from '../errors.ts';
import type { Cidr } from '../policy/types.ts';
import { ValueError, parseCidr } from './normalize.ts';
import { DEFAULT_LIMITS, type ListEntry, type ListFormat, type ListLimits, type ParseOptions, type ParsedList, type SkippedEntry } from './types.ts';

export type EntrySink = (e: ListEntry) => void;

export class Collector {
  readonly format: ListFormat;
  readonly list: string;
  readonly file: string | undefined;
  readonly limits: ListLimits;
  readonly skipMode: boolean;
  readonly skipped: SkippedEntry[] = [];
  readonly notices: string[] = [];
  disabled = 0;
  count = 0;
  masked = 0;
  /** The v2fly include being parsed, stamped on entries and errors. */
  source: string | undefined;
  private readonly sink: EntrySink;

  constructor(format: ListFormat, opts: ParseOptions, sink: EntrySink) {
    this.format = format;
    this.list = opts.list;
    this.file = opts.file;
    this.limits = { ...DEFAULT_LIMITS, ...opts.limits };
    this.skipMode = opts.unsupported === 'skip';
    this.sink = sink;
  }

  where(line?: number): { list: string; file?: string; line?: number } {
    const file = this.source ?? this.file;
    return { list: this.list, ...(file === undefined ? {} : { file }), ...(line === undefined ? {} : { line }) };
  }

  syntax(line: number, message: string): ListError {
    return new ListError('SY_ERR_LIST_SYNTAX', message, this.where(line));
  }

  /** Runs a normaliser; its ValueError becomes a syntax error on `line`. */
  value<T>(line: number, fn: () => T): T {
    try {
      return fn();
    } catch (e) {
      if (e instanceof ValueError) throw this.syntax(line, e.message);
      throw e;
    }
  }

  cidr(line: number, raw: string): Cidr {
    const r = this.value(line, () => parseCidr(raw));
    if (r.masked) this.masked++;
    return r.cidr;
  }

  push(e: ListEntry): void {
    if (++this.count > this.limits.maxEntries) {
      throw new ListError('SY_ERR_LIST_LIMIT', `more than ${this.limits.maxEntries} entries`, this.where(e.line));
    }
    if (this.source !== undefined) e.source = this.source;
    this.sink(e);
  }

  /** An unsupported construct: an error, or with `unsupported = "skip"` a counted skip. */
  unsupported(line: number, reason: string): void {
    if (!this.skipMode) throw new ListError('SY_ERR_LIST_UNSUPPORTED', reason, this.where(line));
    this.skipped.push({ line, reason, ...(this.source === undefined ? {} : { source: this.source }) });
  }

  finish(entries: ListEntry[]): ParsedList {
    if (this.masked > 0) this.notices.push(`${this.masked} CIDR(s) had host bits set; they were cleared`);
    if (this.skipped.length > 0) this.notices.push(`${this.skipped.length} unsupported entr${this.skipped.length === 1 ? 'y' : 'ies'} skipped`);
    if (this.disabled > 0) this.notices.push(`${this.disabled} disabled (#) entr${this.disabled === 1 ? 'y' : 'ies'} not loaded`);
    return { format: this.format, entries, skipped: this.skipped, disabled: this.disabled, notices: this.notices };
  }
}

/** An entry an exporter cannot write; exportList turns it into a ListError naming file and line. */
export class ExportProblem extends Error {
  readonly entry: ListEntry;
  constructor(format: ListFormat, e: ListEntry, why: string) {
    super(`cannot write ${describeEntry(e)} as ${format}: ${why}`);
    this.entry = e;
  }
}

export function exportError(format: ListFormat, e: ListEntry, why: string): ExportProblem {
  return new ExportProblem(format, e, why);
}

export function describeEntry(e: ListEntry): string {
  const parts: string[] = [];
  if (e.domain) parts.push(`${e.domain.kind} ${e.domain.value}`);
  if (e.cidr) parts.push(`cidr ${e.cidr.address}/${e.cidr.prefix}`);
  if (e.apps?.length) parts.push(`apps ${e.apps.map((a) => `${a.kind}:${a.value}`).join(',')}`);
  if (e.ports?.length) parts.push(`ports ${e.ports.map((p) => (p.from === p.to ? p.from : `${p.from}-${p.to}`)).join(',')}`);
  if (e.network) parts.push(`network ${e.network}`);
  if (e.block) parts.push('+block');
  return parts.join(' ') || 'an empty entry';
}

/** Rejects conditions a destination-only format cannot carry. */
export function requireDestinationOnly(format: ListFormat, e: ListEntry): void {
  if (e.apps?.length) throw exportError(format, e, 'the format has no app conditions');
  if (e.ports?.length) throw exportError(format, e, 'the format has no port conditions');
  if (e.network) throw exportError(format, e, 'the format has no network condition');
  if (e.block) throw exportError(format, e, 'only netrulerouter lists can mark an entry +block');
  if (!e.domain && !e.cidr) throw exportError(format, e, 'the entry has no domain or address');
}
