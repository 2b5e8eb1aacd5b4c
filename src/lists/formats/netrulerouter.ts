// NetRuleRouter rules text, as described in the switchyard issue (the upstream project's own parser
// was not available to check against; see docs/lists.md):
//
//   --- Domains
//   youtube.com            that name only
//   *.googlevideo.com      the name and all its subdomains
//   # old.example.com      a disabled rule: counted, not loaded
//   ads.example.com +block blocks instead of taking the list's egress
//   --- IP
//   203.0.113.0/24
//   --- Windows
//   telegram.exe           a process name (lower-cased)
//   C:\Apps\x\x.exe        a full path (lower-cased, `/` separators, as the config does)
//   --- Linux
//   firefox                a process name
//   /usr/bin/curl          a full path
//
// A `#` line that does not hold a valid entry is an ordinary comment. Section names are
// case-insensitive; an entry before the first section is an error.
import { Collector, exportError } from '../collect.ts';
import { ValueError, appAny, cidrText, full, suffix } from '../normalize.ts';
import { forEachLine } from '../text.ts';
import type { ListEntry } from '../types.ts';

type Section = 'domains' | 'ip' | 'windows' | 'linux';
const SECTIONS: Record<string, Section> = { domains: 'domains', ip: 'ip', windows: 'windows', linux: 'linux' };
const HEADERS: Record<Section, string> = { domains: '--- Domains', ip: '--- IP', windows: '--- Windows', linux: '--- Linux' };

/** Builds the entry for one rule line; throws ValueError on a bad value. */
function entryFor(section: Section, text: string, c: Collector, no: number): ListEntry {
  const tokens = text.split(/\s+/);
  let block = false;
  // Paths may contain spaces: everything but a trailing +block is the value.
  if (tokens.length > 1 && tokens[tokens.length - 1]!.toLowerCase() === '+block') {
    block = true;
    tokens.pop();
  }
  const value = tokens.join(' ');
  if (tokens.length > 1 && (section === 'domains' || section === 'ip')) {
    throw new ValueError(`'${text}': one entry a line, optionally followed by +block`);
  }
  const e: ListEntry = { line: no };
  if (section === 'domains') e.domain = value.startsWith('*.') ? suffix(value.slice(2)) : full(value);
  else if (section === 'ip') e.cidr = c.cidr(no, value);
  else {
    e.apps = [appAny(value)];
    e.platform = section;
  }
  if (block) e.block = true;
  return e;
}

export function parseNetRuleRouter(text: string, c: Collector): void {
  let section: Section | null = null;
  forEachLine(text, c.limits.maxLineLength, c.where(), (raw, no) => {
    const t = raw.trim();
    if (t === '') return;
    if (t.startsWith('---')) {
      const name = t.slice(3).trim().toLowerCase();
      const s = SECTIONS[name];
      if (!s) throw c.syntax(no, `unknown section '${t}' (known: ${Object.values(HEADERS).join(', ')})`);
      section = s;
      return;
    }
    if (t.startsWith('#')) {
      // A disabled rule if what follows is one; else a comment.
      const rest = t.slice(1).trim();
      if (section && rest !== '') {
        try {
          entryFor(section, rest, new Collector(c.format, { list: c.list }, () => {}), no);
          c.disabled++;
        } catch { /* a comment */ }
      }
      return;
    }
    if (!section) throw c.syntax(no, `'${t}' comes before any section header (--- Domains, --- IP, --- Windows, --- Linux)`);
    const sec: Section = section;
    c.push(c.value(no, () => entryFor(sec, t, c, no)));
  });
}

export function exportNetRuleRouter(entries: readonly ListEntry[]): string {
  const f = 'netrulerouter' as const;
  const out: Record<Section, string[]> = { domains: [], ip: [], windows: [], linux: [] };
  for (const e of entries) {
    const flag = e.block ? ' +block' : '';
    if (e.ports?.length) throw exportError(f, e, 'the format has no port conditions');
    if (e.network) throw exportError(f, e, 'the format has no network condition');
    if ((e.domain || e.cidr) && e.apps?.length) throw exportError(f, e, 'a line holds a destination or an app, not both');
    if (e.domain) {
      const d = e.domain;
      if (d.kind === 'suffix') out.domains.push(`*.${d.value}${flag}`);
      else if (d.kind === 'full') out.domains.push(`${d.value}${flag}`);
      else throw exportError(f, e, `the format has no ${d.kind} patterns`);
    } else if (e.cidr) {
      out.ip.push(cidrText(e.cidr) + flag);
    } else if (e.apps?.length) {
      for (const a of e.apps) {
        if (a.kind !== 'name' && a.kind !== 'path') throw exportError(f, e, `the format has no app ${a.kind} patterns`);
        const windowsy = /\.exe$/i.test(a.value) || /^(?:[a-z]:[\\/]|\\\\|\/\/)/.test(a.value);
        const sec: Section = e.platform ?? (windowsy ? 'windows' : 'linux');
        out[sec].push(a.value + flag);
      }
    } else throw exportError(f, e, 'nothing to write');
  }
  const parts: string[] = [];
  for (const s of ['domains', 'ip', 'windows', 'linux'] as const) {
    if (out[s].length) parts.push([HEADERS[s], ...out[s]].join('\n'));
  }
  return parts.length ? parts.join('\n\n') + '\n' : '';
}
