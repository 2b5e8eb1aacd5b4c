// A strict JSON parser (RFC 8259) that keeps the line of every value, so sing-box rule-set errors
// and origins name a line. Bounded: nesting depth and string length are capped; duplicate keys are
// an error (JSON.parse would silently keep the last).
import { ListError } from '../errors.ts';
import type { Where } from './text.ts';

export type JNode =
  | { t: 'obj'; line: number; entries: { key: string; line: number; value: JNode }[] }
  | { t: 'arr'; line: number; items: JNode[] }
  | { t: 'str'; line: number; v: string }
  | { t: 'num'; line: number; v: number }
  | { t: 'bool'; line: number; v: boolean }
  | { t: 'null'; line: number };

export interface JsonLimits {
  maxDepth: number;
  maxString: number;
}

export function parseJson(text: string, limits: JsonLimits, where: Where): JNode {
  let i = 0;
  let line = 1;
  const n = text.length;

  const fail = (msg: string, code: 'SY_ERR_LIST_SYNTAX' | 'SY_ERR_LIST_LIMIT' = 'SY_ERR_LIST_SYNTAX'): never => {
    throw new ListError(code, `JSON: ${msg}`, { ...where, line });
  };
  const ws = (): void => {
    while (i < n) {
      const ch = text.charCodeAt(i);
      if (ch === 10) { line++; i++; } else if (ch === 32 || ch === 9 || ch === 13) i++;
      else break;
    }
  };
  const str = (): string => {
    // at the opening quote
    i++;
    let out = '';
    let start = i;
    for (;;) {
      if (i >= n) fail('unterminated string');
      const ch = text.charCodeAt(i);
      if (ch === 34) { out += text.slice(start, i); i++; break; }
      if (ch < 0x20) fail('control character in a string (newlines must be escaped)');
      if (ch === 92) {
        out += text.slice(start, i);
        const e = text[i + 1];
        const simple: Record<string, string> = { '"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };
        if (e !== undefined && e in simple) { out += simple[e]; i += 2; }
        else if (e === 'u') {
          const hex = text.slice(i + 2, i + 6);
          if (!/^[0-9a-fA-F]{4}$/.test(hex)) fail('bad \\u escape');
          out += String.fromCharCode(parseInt(hex, 16));
          i += 6;
        } else fail(`bad escape '\\${e ?? ''}'`);
        start = i;
        continue;
      }
      i++;
      if (i - start + out.length > limits.maxString) fail(`string longer than ${limits.maxString} characters`, 'SY_ERR_LIST_LIMIT');
    }
    if (out.length > limits.maxString) fail(`string longer than ${limits.maxString} characters`, 'SY_ERR_LIST_LIMIT');
    return out;
  };
  const value = (depth: number): JNode => {
    ws();
    if (i >= n) fail('unexpected end of input');
    const at = line;
    const ch = text[i]!;
    if (ch === '{' || ch === '[') {
      if (depth >= limits.maxDepth) fail(`nesting deeper than ${limits.maxDepth}`, 'SY_ERR_LIST_LIMIT');
      i++;
      if (ch === '{') {
        const entries: { key: string; line: number; value: JNode }[] = [];
        const seen = new Set<string>();
        ws();
        if (text[i] === '}') { i++; return { t: 'obj', line: at, entries }; }
        for (;;) {
          ws();
          if (text[i] !== '"') fail('expected a "key"');
          const kline = line;
          const key = str();
          if (seen.has(key)) fail(`duplicate key "${key}"`);
          seen.add(key);
          ws();
          if (text[i] !== ':') fail(`expected ':' after "${key}"`);
          i++;
          entries.push({ key, line: kline, value: value(depth + 1) });
          ws();
          if (text[i] === ',') { i++; continue; }
          if (text[i] === '}') { i++; return { t: 'obj', line: at, entries }; }
          fail("expected ',' or '}'");
        }
      }
      const items: JNode[] = [];
      ws();
      if (text[i] === ']') { i++; return { t: 'arr', line: at, items }; }
      for (;;) {
        items.push(value(depth + 1));
        ws();
        if (text[i] === ',') { i++; continue; }
        if (text[i] === ']') { i++; return { t: 'arr', line: at, items }; }
        fail("expected ',' or ']'");
      }
    }
    if (ch === '"') return { t: 'str', line: at, v: str() };
    if (text.startsWith('true', i)) { i += 4; return { t: 'bool', line: at, v: true }; }
    if (text.startsWith('false', i)) { i += 5; return { t: 'bool', line: at, v: false }; }
    if (text.startsWith('null', i)) { i += 4; return { t: 'null', line: at }; }
    const m = /^-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/.exec(text.slice(i, i + 64));
    if (m) { i += m[0].length; return { t: 'num', line: at, v: Number(m[0]) }; }
    return fail(`unexpected '${ch}'`);
  };
  const root = value(0);
  ws();
  if (i < n) fail('trailing characters after the JSON value');
  return root;
}

export function typeName(node: JNode): string {
  return { obj: 'an object', arr: 'an array', str: 'a string', num: 'a number', bool: 'a boolean', null: 'null' }[node.t];
}
