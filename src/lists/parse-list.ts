// One list's bytes → normalised entries: decodes the text and hands it to the parser of its format.
import { basename } from 'node:path';
import { Collector, type EntrySink } from './collect.ts';
import { parseClash } from './formats/clash.ts';
import { parseNetRuleRouter } from './formats/netrulerouter.ts';
import { parsePlain } from './formats/plain.ts';
import { parseSingbox } from './formats/singbox.ts';
import { parseAttrFilter, parseV2fly, type IncludeReader } from './formats/v2fly.ts';
import { decodeList } from './text.ts';
import type { ListEntry, ListFormat, ParseOptions, ParsedList } from './types.ts';

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
