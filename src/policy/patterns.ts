// Normalisation of domain and app patterns (config side) and of the values a flow query carries
// (engine side). Both sides go through the same functions so that a pattern and a query can only
// differ where the pattern says so. domainToASCII (IDNA/UTS #46) is pure computation, not I/O.
import { domainToASCII } from 'node:url';
import type { AppPattern, DomainPattern } from './types.ts';
import {
  MAX_APP_PATTERN_LENGTH,
  MAX_DOMAIN_LENGTH,
  MAX_KEYWORD_LENGTH,
  MAX_REGEXP_LENGTH,
  MAX_REGEXP_UNBOUNDED,
  MAX_REGEXP_ALTERNATIONS,
} from './config/limits.ts';

/** A pattern longer than its limit: reported with its own error code by the loader. */
export class PatternTooLong {
  readonly limit: number;
  readonly kind: string;
  constructor(kind: string, limit: number) {
    this.kind = kind;
    this.limit = limit;
  }
}

// Letters, digits, '_' (SRV/DMARC names) and '-' anywhere: real names have labels like r1---sn-x.
const LABEL = /^[a-z0-9_-]{1,63}$/;

/** Lower case, one trailing dot dropped, IDN → punycode, labels checked. Returns an error text. */
export function normalizeDomainName(input: string): string | PatternTooLong | { error: string } {
  if (input.length === 0) return { error: 'empty domain name' };
  if (input.length > MAX_DOMAIN_LENGTH + 1) return new PatternTooLong('domain', MAX_DOMAIN_LENGTH);
  let s = input.endsWith('.') ? input.slice(0, -1) : input;
  if (s.length === 0) return { error: 'empty domain name' };
  if (/[\s]/.test(s)) return { error: `'${input}' contains whitespace` };
  if (s.startsWith('*.')) return { error: `'${input}': no wildcards — a bare name already matches its subdomains` };
  if (s.startsWith('.')) return { error: `'${input}': leading dot — a bare name already matches its subdomains` };
  if (/[^\x00-\x7f]/.test(s)) {
    const ascii = domainToASCII(s);
    if (ascii === '') return { error: `'${input}' is not a valid internationalised domain name` };
    s = ascii;
  } else {
    s = s.toLowerCase();
  }
  if (s.length > MAX_DOMAIN_LENGTH) return new PatternTooLong('domain', MAX_DOMAIN_LENGTH);
  const labels = s.split('.');
  for (const l of labels) {
    if (l.length === 0) return { error: `'${input}' has an empty label` };
    if (l.length > 63) return { error: `'${input}' has a label longer than 63 characters` };
    if (!LABEL.test(l)) return { error: `'${input}' has invalid characters in label '${l}'` };
  }
  return s;
}

/** Parses one `domains` entry: bare name, `full:`, `keyword:` or `regexp:`. */
export function parseDomainPattern(raw: string): DomainPattern | PatternTooLong | { error: string } {
  const colon = raw.indexOf(':');
  const prefix = colon < 0 ? '' : raw.slice(0, colon);
  const body = colon < 0 ? raw : raw.slice(colon + 1);
  switch (prefix) {
    case '': {
      const n = normalizeDomainName(raw);
      return typeof n === 'string' ? { kind: 'suffix', value: n } : n;
    }
    case 'full':
    case 'domain': {
      const n = normalizeDomainName(body);
      if (typeof n !== 'string') return n;
      return prefix === 'full' ? { kind: 'full', value: n } : { kind: 'suffix', value: n };
    }
    case 'keyword': {
      if (body.length === 0) return { error: 'empty keyword' };
      if (body.length > MAX_KEYWORD_LENGTH) return new PatternTooLong('keyword', MAX_KEYWORD_LENGTH);
      // Keywords match the punycode form, so non-ASCII keywords are converted like names.
          const value = /[^\x00-\x7f]/.test(body) ? domainToASCII(body) : body.toLowerCase();
      if (value === '' || /[\s]/.test(value)) return { error: `'${body}' is not a usable keyword` };
      return { kind: 'keyword', value };
    }
    case 'regexp': {
      if (body.length === 0) return { error: 'empty regexp' };
      if (body.length > MAX_REGEXP_LENGTH) return new PatternTooLong('regexp', MAX_REGEXP_LENGTH);
      const problem = checkRegexpSafety(body);
      if (problem) return { error: `regexp '${body}': ${problem}` };
      return { kind: 'regexp', value: body };
    }
    default:
      return { error: `unknown pattern prefix '${prefix}:' (use a bare name, full:, keyword: or regexp:)` };
  }
}

/**
 * Rejects regexps whose matching time can explode. JavaScript regexps backtrack: nested or
 * repeated variable quantifiers are exponential (`(a+)+`, `(a|a)+`) and k variable quantifiers in
 * a row are O(n^k), times n more when the pattern is not anchored with `^` (the engine retries at
 * every start position): `.*a.*a.*x` took 1.6 s on one 253-character name on the test machine.
 * Names are at most 253 characters, so bounding the *structure* bounds the time. Allowed:
 *  - at most MAX_REGEXP_UNBOUNDED (2) variable quantifiers (`*` `+` `?` `{n,}` `{n,m}`), where a
 *    pattern not starting with `^` spends one of them on the implicit scan over start positions;
 *  - a group may carry `?`, or an exact `{n}` if it holds no variable quantifier and no `|`;
 *  - at most MAX_REGEXP_ALTERNATIONS (3) `|`;
 *  - no backreferences, no lookarounds.
 * The worst case is then about 2^3 · 253^2 ≈ 500 000 backtracking steps per test.
 */
export function checkRegexpSafety(src: string): string | null {
  try {
    new RegExp(src);
  } catch (e) {
    return `does not compile (${(e as Error).message})`;
  }
  if (/\\[1-9]|\\k</.test(src)) return 'backreferences are not allowed';
  if (/\(\?<?[=!]/.test(src)) return 'lookarounds are not allowed';
  interface Group { variable: boolean; alternation: boolean }
  const stack: Group[] = [];
  let cur: Group = { variable: false, alternation: false };
  let variable = 0;
  let alternations = 0;
  let inClass = false;
  for (let i = 0; i < src.length; i++) {
    const c = src[i]!;
    if (c === '\\') { i++; continue; }
    if (inClass) { if (c === ']') inClass = false; continue; }
    if (c === '[') { inClass = true; continue; }
    if (c === '|') { alternations++; cur.alternation = true; continue; }
    if (c === '(') {
      stack.push(cur);
      cur = { variable: false, alternation: false };
      if (src[i + 1] === '?' && src[i + 2] === ':') i += 2;
      else if (src[i + 1] === '?' && src[i + 2] === '<') { const close = src.indexOf('>', i); if (close > 0) i = close; }
      continue;
    }
    const q = quantifierAt(src, i);
    if (q === null) {
      if (c === ')') {
        const inner = cur;
        cur = stack.pop() ?? { variable: false, alternation: false };
        const gq = quantifierAt(src, i + 1);
        if (gq !== null) {
          const qlen = quantifierLength(src, i + 1);
          const exact = gq === 'exact';
          const optional = src[i + 1] === '?';
          if (!optional && !(exact && !inner.variable && !inner.alternation)) {
            return 'a repeated group may only be optional (?) or repeated an exact number of times without | or variable quantifiers inside';
          }
          if (gq !== 'exact') variable++;
          i += qlen;
          if (src[i + 1] === '?') i++; // lazy marker
        }
        if (inner.variable || gq === 'variable') cur.variable = true;
      }
      continue;
    }
    // A quantifier on a single atom.
    if (q === 'variable') { variable++; cur.variable = true; }
    i += quantifierLength(src, i) - 1;
    if (src[i + 1] === '?') i++; // lazy marker, not a quantifier
  }
  if (!src.startsWith('^')) variable++; // the implicit scan over start positions
  if (variable > MAX_REGEXP_UNBOUNDED) {
    return `more than ${MAX_REGEXP_UNBOUNDED} variable quantifiers (*, +, ?, {n,}, {n,m}; an unanchored pattern — no leading ^ — counts one more)`;
  }
  if (alternations > MAX_REGEXP_ALTERNATIONS) return `more than ${MAX_REGEXP_ALTERNATIONS} alternatives (|)`;
  return null;
}

function quantifierAt(src: string, i: number): 'variable' | 'exact' | null {
  const c = src[i];
  if (c === '*' || c === '+' || c === '?') return 'variable';
  if (c === '{') {
    const m = /^\{(\d+)(,(\d*))?\}/.exec(src.slice(i, i + 24));
    if (!m) return null;
    return m[2] === undefined || m[3] === m[1] ? 'exact' : 'variable';
  }
  return null;
}

function quantifierLength(src: string, i: number): number {
  if (src[i] !== '{') return 1;
  return src.indexOf('}', i) - i + 1;
}

/** Windows-looking paths: a drive letter, a UNC prefix, or any backslash. */
function isWindowsPath(p: string): boolean {
  return /^[A-Za-z]:[\\/]/.test(p) || p.startsWith('\\\\') || p.includes('\\');
}

/** Normalises an executable path: Windows paths to lower case with forward slashes. */
export function normalizeExePath(p: string): string {
  return isWindowsPath(p) ? p.replace(/\\/g, '/').toLowerCase() : p;
}

/** The lower-cased base name of a process name or path (`C:\X\ZEN.EXE` → `zen.exe`). */
export function normalizeProcessName(p: string): string {
  // charCodeAt, not p[i]: runs for every decision, and p[i] materialises one-character strings.
  // Most names are already a lower-case ASCII base name: then return p itself (no slice, no
  // toLowerCase, which costs a call into the case-mapping code even when nothing changes).
  let plain = true;
  for (let i = 0; i < p.length; i++) {
    const c = p.charCodeAt(i);
    if (c === 47 || c === 92 || (c >= 65 && c <= 90) || c > 127) { plain = false; break; }
  }
  if (plain) return p;
  let end = p.length;
  while (end > 0 && (p.charCodeAt(end - 1) === 47 || p.charCodeAt(end - 1) === 92)) end--; // '/', '\\'
  let start = end;
  while (start > 0 && p.charCodeAt(start - 1) !== 47 && p.charCodeAt(start - 1) !== 92) start--;
  return p.slice(start, end).toLowerCase();
}

/** Parses one `apps` entry: `group:NAME`, a glob, an absolute path, or a base name. */
export function parseAppPattern(raw: string): AppPattern | PatternTooLong | { error: string } {
  if (raw.length === 0) return { error: 'empty app pattern' };
  if (raw.length > MAX_APP_PATTERN_LENGTH) return new PatternTooLong('app', MAX_APP_PATTERN_LENGTH);
  if (raw.includes('\0')) return { error: 'app pattern contains a NUL character' };
  if (raw.startsWith('group:')) {
    const g = raw.slice(6);
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(g)) return { error: `'${raw}': a group is an egress group name ([A-Za-z0-9_-])` };
    return { kind: 'group', value: g };
  }
  const hasSep = raw.includes('/') || raw.includes('\\');
  if (/[*?]/.test(raw)) {
    if (hasSep && !isAbsolute(raw)) return { error: `'${raw}': a path glob must be absolute` };
    return { kind: 'glob', value: hasSep ? normalizeExePath(raw) : raw.toLowerCase() };
  }
  if (hasSep) {
    if (!isAbsolute(raw)) return { error: `'${raw}': a path must be absolute (or give just the base name)` };
    return { kind: 'path', value: normalizeExePath(raw) };
  }
  if (raw.trim() !== raw) return { error: `'${raw}' has leading or trailing whitespace` };
  return { kind: 'name', value: raw.toLowerCase() };
}

function isAbsolute(p: string): boolean {
  return p.startsWith('/') || /^[A-Za-z]:[\\/]/.test(p) || p.startsWith('\\\\');
}

/**
 * Compiles a glob to an anchored RegExp: `**` any characters, `*` any except '/', `?` one except
 * '/'. Name globs (no separator) match the base name; path globs the normalised path.
 */
export function globToRegExp(glob: string): RegExp {
  let re = '^';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*') {
      if (glob[i + 1] === '*') { re += '.*'; i++; } else re += '[^/]*';
    } else if (c === '?') re += '[^/]';
    else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(re + '$');
}

/** Parses `443`, `"443"` or `"8000-8999"`. */
export function parsePortSpec(v: number | string): { from: number; to: number } | { error: string } {
  if (typeof v === 'number') {
    if (!Number.isInteger(v) || v < 1 || v > 65535) return { error: `port ${v} is not in 1..65535` };
    return { from: v, to: v };
  }
  const m = /^([0-9]{1,5})(?:-([0-9]{1,5}))?$/.exec(v);
  if (!m) return { error: `'${v}' is not a port or a range like "8000-8999"` };
  const from = Number(m[1]);
  const to = m[2] === undefined ? from : Number(m[2]);
  if (from < 1 || to > 65535 || from > 65535) return { error: `'${v}': ports are 1..65535` };
  if (from > to) return { error: `'${v}': range start is above its end` };
  return { from, to };
}
