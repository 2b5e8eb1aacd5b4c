// The YAML that Clash/mihomo rule-provider files use, and nothing more:
//
//   # comment
//   payload:
//     - '+.example.com'        # single-quoted ('' is a quote)
//     - "DOMAIN,example.org"   # double-quoted (\" \\ \n \t \uXXXX escapes)
//     - 10.0.0.0/8             # plain
//   payload: []                # or a one-line flow sequence of scalars
//
// Why a subset parser and not the `yaml` package: every entry needs its line (for errors and for
// `explain`), a 1M-line payload must parse in a fraction of a second without building a document
// tree, and a list file has no use for anchors, aliases, tags or multi-line scalars — each of which
// is refused here by name instead of being expanded.
import { ListError } from '../errors.ts';
import { forEachLine, type Where } from './text.ts';

export interface YamlItem {
  value: string;
  line: number;
}

/** True when the first significant line is `payload:` (the YAML form of a provider file). */
export function looksLikeYamlPayload(text: string): boolean {
  const m = /^(?:\s*(?:#[^\n]*)?\n)*\s*(?:---\s*\n(?:\s*(?:#[^\n]*)?\n)*\s*)?payload\s*:/.exec(text.slice(0, 65536));
  return m !== null;
}

const INDICATORS = new Set(['&', '*', '!', '|', '>', '%', '@', '`', '{', '[']);

export function parseYamlPayload(text: string, maxLineLength: number, where: Where, onItem: (it: YamlItem) => void): void {
  let state: 'start' | 'payload' | 'done' = 'start';
  let itemIndent = -1;
  const fail = (line: number, msg: string): never => {
    throw new ListError('SY_ERR_LIST_SYNTAX', `YAML: ${msg}`, { ...where, line });
  };
  forEachLine(text, maxLineLength, where, (raw, no) => {
    if (/^\s*(#.*)?$/.test(raw)) return;
    if (/^\t| \t|^ *\t/.test(raw)) fail(no, 'tab characters may not indent YAML');
    const indent = raw.length - raw.trimStart().length;
    const body = raw.slice(indent);
    if (state === 'start') {
      if (indent === 0 && /^---(\s+#.*)?\s*$/.test(body)) return;
      const m = /^payload\s*:(.*)$/.exec(body);
      if (indent !== 0 || !m) fail(no, `expected 'payload:' (a rule-provider file holds only a payload), got '${body.slice(0, 40)}'`);
      const rest = stripYamlComment(m![1]!, no, fail).trim();
      if (rest === '') { state = 'payload'; return; }
      if (!rest.startsWith('[')) fail(no, "'payload' must be a sequence");
      if (!rest.endsWith(']')) fail(no, 'a flow sequence must close on the same line');
      const inner = rest.slice(1, -1).trim();
      if (inner !== '') for (const part of splitFlow(inner, no, fail)) onItem({ value: scalar(part, no, fail), line: no });
      state = 'done';
      return;
    }
    if (state === 'done') {
      if (indent === 0 && /^\.\.\.\s*$/.test(body)) return;
      fail(no, indent === 0 ? `only 'payload' is supported, found '${body.slice(0, 40)}'` : 'unexpected indented line');
    }
    // state === 'payload': block sequence items
    if (indent === 0 && !body.startsWith('-')) {
      if (/^\.\.\.\s*$/.test(body)) { state = 'done'; return; }
      fail(no, `only 'payload' is supported, found '${body.slice(0, 40)}'`);
    }
    if (!body.startsWith('- ') && body !== '-') {
      fail(no, itemIndent >= 0 && indent > itemIndent ? 'multi-line values are not supported' : `expected a '- ' sequence item, got '${body.slice(0, 40)}'`);
    }
    if (itemIndent < 0) itemIndent = indent;
    else if (indent !== itemIndent) fail(no, `sequence items must line up (indent ${itemIndent}, found ${indent})`);
    const v = stripYamlComment(body.slice(1), no, fail).trim();
    if (v === '') fail(no, 'empty sequence item');
    if (v.startsWith('- ') || v === '-') fail(no, 'nested sequences are not supported');
    onItem({ value: scalar(v, no, fail), line: no });
  });
}

/** Removes a ` #` comment outside quotes. */
function stripYamlComment(s: string, line: number, fail: (l: number, m: string) => never): string {
  let q: string | null = null;
  for (let i = 0; i < s.length; i++) {
    const ch = s[i]!;
    if (q) {
      if (q === '"' && ch === '\\') { i++; continue; }
      if (ch === q) {
        if (q === "'" && s[i + 1] === "'") { i++; continue; }
        q = null;
      }
      continue;
    }
    if ((ch === '"' || ch === "'") && (i === 0 || /[\s,\[]/.test(s[i - 1]!))) { q = ch; continue; }
    if (ch === '#' && (i === 0 || /\s/.test(s[i - 1]!))) return s.slice(0, i);
  }
  if (q) fail(line, 'unterminated quoted value (multi-line values are not supported)');
  return s;
}

function splitFlow(s: string, line: number, fail: (l: number, m: string) => never): string[] {
  const out: string[] = [];
  let q: string | null = null;
  let start = 0;
  for (let i = 0; i < s.length; i++) {
    const ch = s[i]!;
    if (q) {
      if (q === '"' && ch === '\\') { i++; continue; }
      if (ch === q) q = null;
      continue;
    }
    if (ch === '"' || ch === "'") q = ch;
    else if (ch === ',') { out.push(s.slice(start, i).trim()); start = i + 1; }
    else if (ch === '[' || ch === ']' || ch === '{' || ch === '}') fail(line, 'nested flow collections are not supported');
  }
  out.push(s.slice(start).trim());
  if (out.some((p) => p === '')) fail(line, 'empty item in a flow sequence');
  return out;
}

function scalar(v: string, line: number, fail: (l: number, m: string) => never): string {
  if (v.startsWith("'")) {
    if (!v.endsWith("'") || v.length < 2) fail(line, 'unterminated single-quoted value');
    const inner = v.slice(1, -1);
    if (/(^|[^'])'([^']|$)/.test(inner.replace(/''/g, ''))) fail(line, 'stray quote in a single-quoted value');
    return inner.replace(/''/g, "'");
  }
  if (v.startsWith('"')) {
    if (!v.endsWith('"') || v.length < 2) fail(line, 'unterminated double-quoted value');
    const inner = v.slice(1, -1);
    let out = '';
    for (let i = 0; i < inner.length; i++) {
      const ch = inner[i]!;
      if (ch === '"') fail(line, 'stray quote in a double-quoted value');
      if (ch !== '\\') { out += ch; continue; }
      const e = inner[++i];
      const simple: Record<string, string> = { '"': '"', '\\': '\\', '/': '/', n: '\n', t: '\t', r: '\r', '0': '\0', ' ': ' ' };
      if (e !== undefined && e in simple) out += simple[e];
      else if (e === 'u' || e === 'x') {
        const len = e === 'u' ? 4 : 2;
        const hex = inner.slice(i + 1, i + 1 + len);
        if (!new RegExp(`^[0-9a-fA-F]{${len}}$`).test(hex)) fail(line, `bad \\${e} escape`);
        out += String.fromCharCode(parseInt(hex, 16));
        i += len;
      } else fail(line, `unsupported escape '\\${e ?? ''}'`);
    }
    return out;
  }
  if (INDICATORS.has(v[0]!)) {
    const what: Record<string, string> = { '&': 'anchors', '*': 'aliases', '!': 'tags', '|': 'block scalars', '>': 'block scalars', '{': 'flow mappings', '[': 'nested sequences' };
    fail(line, `${what[v[0]!] ?? `values starting with '${v[0]}'`} are not supported (quote the value)`);
  }
  if (/:\s|:$/.test(v)) fail(line, `'${v}' is a mapping, not a list item (quote it if it is a value)`);
  return v;
}
