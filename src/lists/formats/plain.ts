// Plain lists: one entry a line. A bare name matches itself and its subdomains (as a bare name does
// in the config); `full:`, `keyword:`, `regexp:` (and `domain:`, the explicit form of a bare name)
// as in v2fly; an IP address or CIDR; `#` comments at the start of a line or after whitespace.
import { Collector } from '../collect.ts';
import { cidrText, full, keyword, looksLikeIp, regexp, suffix } from '../normalize.ts';
import { forEachLine, stripComment } from '../text.ts';
import type { ListEntry } from '../types.ts';
import { requireDestinationOnly, exportError } from '../collect.ts';

const PREFIXES: Record<string, (v: string) => ListEntry['domain']> = {
  'domain:': suffix,
  'full:': full,
  'keyword:': keyword,
  'regexp:': regexp,
};

// The common line — an already-normalised name whose last label starts with a letter (so it is
// not an IPv4 address) — skips the general path. Anything else takes the general path below.
const FAST_NAME = /^(?:[a-z0-9_-]{1,63}\.)*[a-z_][a-z0-9_-]{0,62}$/;

export function parsePlain(text: string, c: Collector): void {
  forEachLine(text, c.limits.maxLineLength, c.where(), (raw, no) => {
    const s = raw.indexOf('#') < 0 ? raw.trim() : stripComment(raw);
    if (s === '') return;
    if (s.length <= 253 && FAST_NAME.test(s)) {
      c.push({ line: no, domain: { kind: 'suffix', value: s } });
      return;
    }
    if (/\s/.test(s)) throw c.syntax(no, `'${s}' holds whitespace: one entry a line (hosts-file lines are not a plain list)`);
    if (looksLikeIp(s)) {
      c.push({ line: no, cidr: c.cidr(no, s) });
      return;
    }
    const colon = s.indexOf(':');
    if (colon > 0) {
      const prefix = s.slice(0, colon + 1).toLowerCase();
      const make = PREFIXES[prefix];
      if (!make) throw c.syntax(no, `unknown prefix '${prefix}' (plain lists know domain:, full:, keyword:, regexp:)`);
      const v = s.slice(colon + 1);
      c.push({ line: no, domain: c.value(no, () => make(v)) });
      return;
    }
    if (s.startsWith('*.') || s.startsWith('.') || s.startsWith('+.')) {
      throw c.syntax(no, `'${s}': wildcards are not plain-list syntax; a bare name already matches its subdomains (use full: for the name alone)`);
    }
    c.push({ line: no, domain: c.value(no, () => suffix(s)) });
  });
}

export function exportPlain(entries: readonly ListEntry[]): string {
  const out: string[] = [];
  for (const e of entries) {
    requireDestinationOnly('plain', e);
    if (e.cidr) out.push(cidrText(e.cidr));
    else if (e.domain) {
      const d = e.domain;
      out.push(d.kind === 'suffix' ? d.value : `${d.kind}:${d.value}`);
    } else throw exportError('plain', e, 'nothing to write');
  }
  return out.length ? out.join('\n') + '\n' : '';
}
