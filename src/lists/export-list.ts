// Normalised entries → the text of one list format (`switchyard lists convert`, `lists export`).
import { ListError } from '../errors.ts';
import { ExportProblem } from './collect.ts';
import { exportClash, type ClashSyntax } from './formats/clash.ts';
import { exportNetRuleRouter } from './formats/netrulerouter.ts';
import { exportPlain } from './formats/plain.ts';
import { exportSingbox } from './formats/singbox.ts';
import { exportV2fly } from './formats/v2fly.ts';
import type { ListEntry, ListFormat } from './types.ts';

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
