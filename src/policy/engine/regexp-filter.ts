// A cheap, sound pre-check for `regexp:` domain patterns. Every query name would otherwise run
// every regexp (tens of nanoseconds each, even when it fails at the first character). From the
// pattern's source we read what any matching name must contain:
//   - the literal characters at the top level of the pattern that are not optional (not followed
//     by `?`, `*` or a `{` quantifier): each must occur somewhere in the name, so their character
//     mask (the same one-bit-per-(code & 31) mask the keyword skip uses) must be a subset of the
//     name's;
//   - with a leading `^` and a literal right after it (not optional): the name's first character;
//   - with a trailing `$` and a literal right before it (not quantified): the name's last one.
// Anything we do not understand — groups, classes, escapes other than an escaped punctuation
// character, a top-level `|` — requires nothing, so the filter can only skip a regexp that cannot
// match. Patterns have no flags (no `i`), so a literal matches only itself.

export interface RegexpNeeds {
  /** Character mask every matching name has (a subset test; 0 = no requirement). */
  mask: number;
  /** Char code the name must start with, or -1. */
  first: number;
  /** Char code the name must end with, or -1. */
  last: number;
}

const NONE: RegexpNeeds = { mask: 0, first: -1, last: -1 };
const SPECIAL = new Set('^$.*+?()[]{}|\\/');
const ANCHOR_START = -2;
const ANCHOR_END = -3;

export function charMask(s: string): number {
  let m = 0;
  for (let i = 0; i < s.length; i++) m |= 1 << (s.charCodeAt(i) & 31);
  return m;
}

/** One top-level atom of the pattern: a literal char code, or -1 for anything else. */
interface Atom {
  lit: number;
  /** The atom may match zero times (`?`, `*`, `{0...}`): it requires nothing. */
  optional: boolean;
  /** The atom is followed by a quantifier (so it may repeat: not a fixed last character). */
  quantified: boolean;
}

/** Splits `src` into top-level atoms; null when we cannot be sure (then nothing is required). */
function atoms(src: string): Atom[] | null {
  const out: Atom[] = [];
  let i = 0;
  while (i < src.length) {
    const c = src[i]!;
    let lit = -1;
    if (c === '|') return null;
    if (c === '^' || c === '$') {
      out.push({ lit: c === '^' ? ANCHOR_START : ANCHOR_END, optional: false, quantified: false });
      i++;
      continue;
    }
    if (c === '(') {
      let depth = 0;
      for (; i < src.length; i++) {
        const d = src[i]!;
        if (d === '\\') { i++; continue; }
        if (d === '[') { i = classEnd(src, i); continue; }
        if (d === '(') depth++;
        else if (d === ')' && --depth === 0) break;
      }
      i++;
    } else if (c === '[') {
      i = classEnd(src, i) + 1;
    } else if (c === '\\') {
      const e = src[i + 1] ?? '';
      // An escaped punctuation character is that literal (`\.`, `\-`); a one-letter class or
      // control escape (`\d`, `\b`, `\n`) is no literal; longer escapes (`\x41`, `\u0041`, `\1`,
      // `\cJ`, `\k<a>`) we do not take apart.
      if (/^[^0-9A-Za-z]$/.test(e)) lit = e.charCodeAt(0);
      else if (!/^[dDwWsSbBfnrtv]$/.test(e)) return null;
      i += 2;
    } else {
      if (!SPECIAL.has(c)) lit = c.charCodeAt(0);
      i++;
    }
    const q = src[i];
    let optional = q === '?' || q === '*';
    const quantified = optional || q === '+' || q === '{';
    if (q === '{') {
      // A `{` that is no quantifier is a literal, and then a later `|` still splits the pattern:
      // give up rather than misread it.
      const m = /^\{(\d+)(,\d*)?\}/.exec(src.slice(i, i + 24));
      if (m === null) return null;
      optional = Number(m[1]) === 0;
      i += m[0].length;
    } else if (quantified) i++;
    if (quantified && src[i] === '?') i++; // lazy marker
    out.push({ lit, optional, quantified });
  }
  return out;
}

/** Index of the `]` closing the class opened at `open` (or the end). In JS `[]` is an empty class. */
function classEnd(src: string, open: number): number {
  for (let i = open + 1; i < src.length; i++) {
    if (src[i] === '\\') { i++; continue; }
    if (src[i] === ']') return i;
  }
  return src.length;
}

/** What every name matching `src` must have (conservative: may require less than it could). */
export function regexpNeeds(src: string): RegexpNeeds {
  const list = atoms(src);
  if (list === null) return NONE;
  let mask = 0;
  for (const a of list) if (a.lit >= 0 && !a.optional) mask |= 1 << (a.lit & 31);
  let first = -1;
  if (list.length >= 2 && list[0]!.lit === ANCHOR_START && list[1]!.lit >= 0 && !list[1]!.optional) first = list[1]!.lit;
  let last = -1;
  const n = list.length;
  if (n >= 2 && list[n - 1]!.lit === ANCHOR_END && list[n - 2]!.lit >= 0 && !list[n - 2]!.quantified) last = list[n - 2]!.lit;
  return { mask, first, last };
}

/** May `name` (with character mask `nameMask`) match a regexp with these needs? */
export function mayMatch(n: RegexpNeeds, name: string, nameMask: number): boolean {
  if ((n.mask & nameMask) !== n.mask) return false;
  if (n.first >= 0 && name.charCodeAt(0) !== n.first) return false;
  return n.last < 0 || name.charCodeAt(name.length - 1) === n.last;
}
