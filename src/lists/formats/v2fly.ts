// v2fly domain-list-community source files (data/<name>):
//   # comment (anywhere on a line)
//   include:other @attr @-attr     (only entries of `other` with attr and without attr)
//   domain:example.com @ads        (the prefix may be omitted)
//   full:www.example.com
//   keyword:example
//   regexp:^ex[0-9]\.example\.com$
// `&list` affiliations add an entry to another list as well; loading one list, they change nothing
// in it and are ignored. Includes are read through the injected reader, with cycle detection and
// depth/file limits.
import { ListError } from '../../errors.ts';
import { Collector, exportError, requireDestinationOnly } from '../collect.ts';
import { full, keyword, regexp, suffix } from '../normalize.ts';
import { decodeList, forEachLine } from '../text.ts';
import type { ListEntry } from '../types.ts';

/** Reads another list of the same data directory by name. */
export type IncludeReader = (name: string) => Promise<Uint8Array | string>;

/** `@cn` must have cn; `@-ads` must not have ads. */
export interface AttrFilter {
  must: string[];
  mustNot: string[];
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9!._-]{0,127}$/;
const ATTR = /^[a-z0-9!][a-z0-9!._-]{0,63}$/;

const KINDS: Record<string, (v: string) => NonNullable<ListEntry['domain']>> = {
  domain: suffix,
  full,
  keyword,
  regexp,
};

export function parseAttrFilter(tokens: readonly string[], c: Collector, line: number): AttrFilter {
  const f: AttrFilter = { must: [], mustNot: [] };
  for (const t of tokens) {
    const neg = t.startsWith('@-');
    const name = (neg ? t.slice(2) : t.startsWith('@') ? t.slice(1) : '').toLowerCase();
    if (!ATTR.test(name)) throw c.syntax(line, `'${t}' is not an attribute filter (@attr or @-attr)`);
    (neg ? f.mustNot : f.must).push(name);
  }
  return f;
}

export function passes(e: ListEntry, f: AttrFilter): boolean {
  const attrs = e.attrs ?? [];
  for (const a of f.must) if (!attrs.includes(a)) return false;
  for (const a of f.mustNot) if (attrs.includes(a)) return false;
  return true;
}

interface Parsed {
  /** The file's own entries and its includes, in file order; include results are spliced in. */
  items: ({ entry: ListEntry } | { include: string; filter: AttrFilter; line: number })[];
}

/** Parses one v2fly file (no include resolution). */
function parseFile(text: string, c: Collector): Parsed {
  const items: Parsed['items'] = [];
  forEachLine(text, c.limits.maxLineLength, c.where(), (raw, no) => {
    const hash = raw.indexOf('#');
    const s = (hash < 0 ? raw : raw.slice(0, hash)).trim();
    if (s === '') return;
    const [head, ...rest] = s.split(/\s+/) as [string, ...string[]];
    const colon = head.indexOf(':');
    const kind = colon < 0 ? 'domain' : head.slice(0, colon).toLowerCase();
    const value = colon < 0 ? head : head.slice(colon + 1);
    if (kind === 'include') {
      if (!NAME.test(value)) throw new ListError('SY_ERR_LIST_INCLUDE', `'${value}' is not a list name`, c.where(no));
      if (rest.some((t) => t.startsWith('&'))) throw c.syntax(no, 'an include cannot have affiliations (&list)');
      items.push({ include: value, filter: parseAttrFilter(rest, c, no), line: no });
      return;
    }
    const make = KINDS[kind];
    if (!make) {
      const hint = kind === 'regex' ? " (v2fly spells it 'regexp:')" : '';
      throw c.syntax(no, `unknown rule type '${kind}:'${hint}; v2fly knows domain:, full:, keyword:, regexp:, include:`);
    }
    const attrs: string[] = [];
    for (const t of rest) {
      if (t.startsWith('&')) {
        if (!NAME.test(t.slice(1))) throw c.syntax(no, `'${t}' is not an affiliation (&list)`);
        continue; // affiliation: belongs to another list too; nothing changes here
      }
      if (!t.startsWith('@') || t.startsWith('@-') || !ATTR.test(t.slice(1).toLowerCase())) {
        throw c.syntax(no, `'${t}' is not an attribute (@attr)`);
      }
      attrs.push(t.slice(1).toLowerCase());
    }
    const entry: ListEntry = { line: no, domain: c.value(no, () => make(value)) };
    if (attrs.length) entry.attrs = attrs;
    items.push({ entry });
  });
  return { items };
}

/**
 * Parses a v2fly list and resolves its includes. `filter` applies to the whole list (the `@attr`
 * part of `geosite:name@attr`).
 */
export async function parseV2fly(
  text: string,
  c: Collector,
  readInclude: IncludeReader | undefined,
  filter?: AttrFilter,
  selfName?: string,
): Promise<void> {
  // Each file is parsed once; its fully resolved entries are cached by name (a diamond of
  // includes is fine, a cycle is not).
  const resolved = new Map<string, ListEntry[]>();
  let files = 0;

  const resolve = async (name: string | undefined, body: string, chain: string[]): Promise<ListEntry[]> => {
    const saved = c.source;
    c.source = name;
    const parsed = parseFile(body, c);
    c.source = saved;
    const out: ListEntry[] = [];
    for (const it of parsed.items) {
      if ('entry' in it) {
        if (name !== undefined) it.entry.source = name;
        out.push(it.entry);
        continue;
      }
      const where = { ...c.where(it.line), ...(name === undefined ? {} : { file: name }) };
      if (chain.includes(it.include)) {
        throw new ListError('SY_ERR_LIST_INCLUDE', `include cycle: ${[...chain, it.include].join(' -> ')}`, where);
      }
      if (chain.length >= c.limits.maxIncludeDepth) {
        throw new ListError('SY_ERR_LIST_LIMIT', `includes nest deeper than ${c.limits.maxIncludeDepth}`, where);
      }
      let sub = resolved.get(it.include);
      if (!sub) {
        if (!readInclude) throw new ListError('SY_ERR_LIST_INCLUDE', `include:${it.include} cannot be resolved here (no list directory)`, where);
        if (++files > c.limits.maxIncludeFiles) {
          throw new ListError('SY_ERR_LIST_LIMIT', `more than ${c.limits.maxIncludeFiles} included files`, where);
        }
        let data: Uint8Array | string;
        try {
          data = await readInclude(it.include);
        } catch (e) {
          throw new ListError('SY_ERR_LIST_INCLUDE', `include:${it.include} could not be read: ${(e as Error).message}`, where, e);
        }
        const subText = decodeList(data, c.limits, { list: c.list, file: it.include });
        sub = await resolve(it.include, subText, [...chain, it.include]);
        resolved.set(it.include, sub);
      }
      for (const e of sub) if (passes(e, it.filter)) out.push(e);
      // Repeated includes multiply entries; stop before memory does.
      if (out.length > c.limits.maxEntries) {
        throw new ListError('SY_ERR_LIST_LIMIT', `more than ${c.limits.maxEntries} entries with includes resolved`, where);
      }
    }
    return out;
  };

  const top = await resolve(undefined, text, [selfName ?? c.list]);
  for (const e of top) {
    if (filter && !passes(e, filter)) continue;
    const src = e.source;
    c.source = src;
    c.push(e);
  }
  c.source = undefined;
}

export function exportV2fly(entries: readonly ListEntry[]): string {
  const out: string[] = [];
  for (const e of entries) {
    requireDestinationOnly('v2fly', e);
    if (!e.domain) throw exportError('v2fly', e, 'v2fly lists hold domains only');
    const attrs = e.attrs?.length ? ' ' + e.attrs.map((a) => `@${a}`).join(' ') : '';
    out.push(`${e.domain.kind === 'suffix' ? 'domain' : e.domain.kind}:${e.domain.value}${attrs}`);
  }
  return out.length ? out.join('\n') + '\n' : '';
}
