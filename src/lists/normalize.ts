// Values → the policy's normalised patterns. Every function throws ValueError with a short reason;
// the format parsers add list, file and line. Domains are normalised as the config does: lower
// case, no trailing dot, IDN → punycode (node:url domainToASCII).
import { domainToASCII } from 'node:url';
import { isIPv6 } from 'node:net';
import type { AppPattern, Cidr, DomainPattern, PortRange } from '../policy/types.ts';
// The config's own checks, so a list pattern is accepted exactly when the same pattern in the
// config would be (pure functions, no I/O).
import { checkRegexpSafety, normalizeExePath } from '../policy/patterns.ts';
import { MAX_REGEXP_LENGTH } from '../policy/config/limits.ts';

/** A bad value; the caller turns it into a ListError with the line. */
export class ValueError extends Error {}

const ASCII_NAME = /^[a-z0-9_-]+(?:\.[a-z0-9_-]+)*$/;

/** Lower case, no trailing dot, punycode; labels of [a-z0-9_-], ≤ 63 each, ≤ 253 in all. */
export function normalizeDomain(raw: string): string {
  let v = raw.toLowerCase();
  if (v.endsWith('.')) v = v.slice(0, -1);
  if (v === '') throw new ValueError('empty domain');
  if (!ASCII_NAME.test(v)) {
    // Only names with non-ASCII letters go through IDNA; anything else here is plain wrong.
    if (/^[\x00-\x7f]*$/.test(v)) throw new ValueError(`'${raw}' is not a domain name`);
    const a = domainToASCII(v);
    if (a === '' || !ASCII_NAME.test(a)) throw new ValueError(`'${raw}' is not a valid internationalised domain name`);
    v = a;
  }
  if (v.length > 253) throw new ValueError(`domain is ${v.length} characters, over 253`);
  // No top-level domain is all digits (RFC 3696 §2): `1.2.3` is a mistyped address, not a name.
  if (/(?:^|\.)[0-9]+$/.test(v)) throw new ValueError(`'${raw}' looks like a mistyped IP address, not a domain name`);
  if (v.length > 63) {
    for (const label of v.split('.')) if (label.length > 63) throw new ValueError(`label '${label.slice(0, 20)}…' is over 63 characters`);
  }
  return v;
}

export function suffix(raw: string): DomainPattern {
  return { kind: 'suffix', value: normalizeDomain(raw) };
}

export function full(raw: string): DomainPattern {
  return { kind: 'full', value: normalizeDomain(raw) };
}

export function keyword(raw: string): DomainPattern {
  const v = raw.toLowerCase();
  if (!/^[a-z0-9._-]+$/.test(v)) throw new ValueError(`keyword '${raw}' may hold only letters, digits, '.', '_' and '-'`);
  return { kind: 'keyword', value: v };
}

/**
 * A regular expression, checked as the config checks one: it must compile in JavaScript (Go's RE2
 * syntax mostly agrees; `(?i)` and the like do not) and be safe from catastrophic backtracking.
 */
export function regexp(raw: string): DomainPattern {
  if (raw === '') throw new ValueError('empty regular expression');
  if (raw.length > MAX_REGEXP_LENGTH) throw new ValueError(`regular expression is over ${MAX_REGEXP_LENGTH} characters`);
  const problem = checkRegexpSafety(raw);
  if (problem) throw new ValueError(`regular expression '${raw}': ${problem}`);
  return { kind: 'regexp', value: raw };
}

// ------------------------------------------------------------------ wildcards as regexps
// Clash's `.x` (subdomains only), `*.x` (exactly one label more) and sing-box's `.x` suffix have no
// DomainPattern kind of their own, so they become anchored regexps in one canonical shape that the
// exporters recognise and turn back into wildcards.

function escapeLabel(label: string): string {
  return label; // labels are [a-z0-9_-]: nothing to escape
}

/** `.example.com` → `^.+\.example\.com$`; `*.example.com` → `^[^.]+\.example\.com$`. */
export function wildcardToRegexp(pattern: string): DomainPattern {
  let subdomainsOnly = false;
  let rest = pattern.toLowerCase();
  if (rest.endsWith('.') && rest.length > 1) rest = rest.slice(0, -1);
  if (rest.startsWith('.')) {
    subdomainsOnly = true;
    rest = rest.slice(1);
  }
  if (rest === '') throw new ValueError(`'${pattern}' has no name after the wildcard`);
  const labels = rest.split('.');
  for (const l of labels) if (l !== '*' && l.includes('*')) throw new ValueError(`'${pattern}': '*' must stand for a whole label`);
  // Validate the name as a whole (a stand-in label where `*` is), then put the wildcards back.
  const norm = normalizeDomain(labels.map((l) => (l === '*' ? 'x' : l)).join('.')).split('.');
  if (norm.length !== labels.length) throw new ValueError(`'${pattern}' is not a domain pattern`);
  const parts = labels.map((l, i) => (l === '*' ? '[^.]+' : escapeLabel(norm[i]!)));
  return regexp(`^${subdomainsOnly ? '.+\\.' : ''}${parts.join('\\.')}$`);
}

/** The inverse of wildcardToRegexp for its canonical shapes; null for any other regexp. */
export function regexpToWildcard(re: string): string | null {
  if (!re.startsWith('^') || !re.endsWith('$')) return null;
  let body = re.slice(1, -1);
  let prefix = '';
  if (body.startsWith('.+\\.')) {
    prefix = '.';
    body = body.slice(4);
  }
  const labels = body.split('\\.');
  const out: string[] = [];
  for (const l of labels) {
    if (l === '[^.]+') out.push('*');
    else if (/^[a-z0-9_-]+$/.test(l)) out.push(l);
    else return null;
  }
  if (prefix === '' && !out.includes('*')) return null; // a plain anchored name is not a wildcard
  return prefix + out.join('.');
}

// ------------------------------------------------------------------ addresses

function parseV4(s: string): number[] | null {
  const parts = s.split('.');
  if (parts.length !== 4) return null;
  const out: number[] = [];
  for (const p of parts) {
    if (!/^(0|[1-9][0-9]{0,2})$/.test(p)) return null;
    const n = Number(p);
    if (n > 255) return null;
    out.push(n);
  }
  return out;
}

/** 16 bytes of an IPv6 address (node:net has checked the syntax). */
function parseV6(s: string): number[] {
  let head = s;
  let v4tail: number[] = [];
  const lastColon = s.lastIndexOf(':');
  if (s.indexOf('.', lastColon) > 0) {
    const v4 = parseV4(s.slice(lastColon + 1));
    if (!v4) throw new ValueError(`'${s}' is not an IPv6 address`);
    v4tail = v4;
    head = s.slice(0, lastColon + 1) + '0:0';
  }
  const [l, r] = head.includes('::') ? head.split('::') as [string, string] : [head, undefined];
  const left = l === '' ? [] : l.split(':');
  const right = r === undefined || r === '' ? [] : r.split(':');
  const fill = r === undefined ? 0 : 8 - left.length - right.length;
  const groups = [...left, ...Array<string>(fill).fill('0'), ...right].map((g) => parseInt(g, 16));
  const bytes: number[] = [];
  for (const g of groups) bytes.push(g >> 8, g & 0xff);
  if (v4tail.length) bytes.splice(12, 4, ...v4tail);
  return bytes;
}

/** RFC 5952 text: lower-case hex, no leading zeros, the longest run of ≥ 2 zero groups as `::`. */
function formatV6(b: number[]): string {
  const g: number[] = [];
  for (let i = 0; i < 16; i += 2) g.push((b[i]! << 8) | b[i + 1]!);
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) { bestStart = i; bestLen = j - i; }
    i = j;
  }
  const hex = g.map((x) => x.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}

function maskBytes(bytes: number[], prefix: number): boolean {
  let changed = false;
  for (let i = 0; i < bytes.length; i++) {
    const keep = Math.max(0, Math.min(8, prefix - i * 8));
    const mask = keep === 0 ? 0 : (0xff << (8 - keep)) & 0xff;
    const v = bytes[i]! & mask;
    if (v !== bytes[i]) { changed = true; bytes[i] = v; }
  }
  return changed;
}

export interface ParsedCidr {
  cidr: Cidr;
  /** The text had host bits set (`10.1.2.3/8`); they were cleared. */
  masked: boolean;
}

/** `1.2.3.0/24`, `2001:db8::/32`, or a bare address (a /32 or /128). */
export function parseCidr(raw: string): ParsedCidr {
  const slash = raw.indexOf('/');
  const addr = slash < 0 ? raw : raw.slice(0, slash);
  const ptext = slash < 0 ? null : raw.slice(slash + 1);
  const v4 = parseV4(addr);
  let family: 4 | 6;
  let bytes: number[];
  if (v4) {
    family = 4;
    bytes = v4;
  } else if (!addr.includes('%') && isIPv6(addr)) {
    family = 6;
    bytes = parseV6(addr.toLowerCase());
  } else {
    throw new ValueError(`'${raw}' is not an IP address or CIDR`);
  }
  const max = family === 4 ? 32 : 128;
  let prefix = max;
  if (ptext !== null) {
    if (!/^(0|[1-9][0-9]{0,2})$/.test(ptext) || Number(ptext) > max) throw new ValueError(`'${raw}': prefix length must be 0..${max}`);
    prefix = Number(ptext);
  }
  const masked = maskBytes(bytes, prefix);
  const address = family === 4 ? bytes.join('.') : formatV6(bytes);
  return { cidr: { family, address, prefix }, masked };
}

export function looksLikeIp(s: string): boolean {
  const a = s.indexOf('/') < 0 ? s : s.slice(0, s.indexOf('/'));
  if (/^[0-9.]+$/.test(a)) return a.split('.').length === 4;
  return a.includes(':') && /^[0-9a-fA-F:.]+$/.test(a);
}

export function cidrText(c: Cidr): string {
  return `${c.address}/${c.prefix}`;
}

// ------------------------------------------------------------------ ports

function port(s: string, what: string): number {
  if (!/^[0-9]{1,5}$/.test(s)) throw new ValueError(`${what} '${s}' is not a port number`);
  const n = Number(s);
  if (n < 1 || n > 65535) throw new ValueError(`${what} ${n} is outside 1..65535`);
  return n;
}

export function singlePort(n: number | string): PortRange {
  const p = typeof n === 'number' ? (Number.isInteger(n) ? port(String(n), 'port') : NaN) : port(n, 'port');
  if (Number.isNaN(p)) throw new ValueError(`port ${n} is not an integer`);
  return { from: p, to: p };
}

/** `a-b` (Clash) or `a:b`, `:b`, `a:` (sing-box port_range). */
export function portRange(raw: string, sep: '-' | ':'): PortRange {
  const i = raw.indexOf(sep);
  if (i < 0) return singlePort(raw);
  const a = raw.slice(0, i);
  const b = raw.slice(i + 1);
  const open = sep === ':';
  const from = a === '' && open ? 1 : port(a, 'range start');
  const to = b === '' && open ? 65535 : port(b, 'range end');
  if (from > to) throw new ValueError(`port range '${raw}' runs backwards`);
  return { from, to };
}

export function portText(p: PortRange, sep: '-' | ':'): string {
  return p.from === p.to ? String(p.from) : `${p.from}${sep}${p.to}`;
}

// ------------------------------------------------------------------ apps

const WINDOWS_PATH = /^(?:[a-zA-Z]:[\\/]|\\\\)/;

/** A process name (`chrome.exe`), lower-cased; a glob if it holds `*` or `?`. */
export function appName(raw: string): AppPattern {
  const v = raw.trim();
  if (v === '') throw new ValueError('empty process name');
  if (v.includes('/') || v.includes('\\')) throw new ValueError(`'${raw}' is a path, not a process name`);
  if (/[*?]/.test(v)) return { kind: 'glob', value: v.toLowerCase() };
  return { kind: 'name', value: v.toLowerCase() };
}

/**
 * A full executable path, normalised as the config does (policy normalizeExePath): Windows paths
 * lower-cased with `/` separators, POSIX paths kept as written. `*`/`?` make it a glob.
 */
export function appPath(raw: string): AppPattern {
  const v = raw.trim();
  if (!WINDOWS_PATH.test(v) && !v.startsWith('/')) throw new ValueError(`'${raw}' is not an absolute path`);
  const value = normalizeExePath(v);
  if (value.includes('\0')) throw new ValueError('path holds a NUL character');
  return { kind: /[*?]/.test(value) ? 'glob' : 'path', value };
}

/** A Windows/Linux section entry: a path when it looks like one, else a name. */
export function appAny(raw: string): AppPattern {
  const v = raw.trim();
  return WINDOWS_PATH.test(v) || v.startsWith('/') ? appPath(v) : appName(v);
}
