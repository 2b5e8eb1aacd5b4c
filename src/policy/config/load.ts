// Config bytes → `Config`. Pure: the caller reads the file (src/config-file.ts) and passes the
// bytes with a label for messages. Order of checks: size, UTF-8, TOML syntax, format/version,
// limits, shape, meaning. Every failure is a ConfigError (exit code 2) naming key path and line.
import { parse, TomlError } from 'smol-toml';
import { ConfigError } from '../../errors.ts';
import type { Config } from '../types.ts';
import { firstInvalidUtf8 } from './utf8.ts';
import { indexLines, type LineIndex } from './locate.ts';
import { MAX_CONFIG_BYTES, MAX_TOML_DEPTH } from './limits.ts';
import { Issues, issuesToError, type PathMap } from './issues.ts';
import { normalizeConfig } from './normalize.ts';
import { fromPolicyRouter, isPolicyRouterConfig } from './compat-policy-router.ts';

export interface ParsedToml {
  value: Record<string, unknown>;
  text: string;
}

/** Size, encoding and TOML syntax checks; returns the parsed document and its text. */
export function parseConfigToml(bytes: Uint8Array, source: string): ParsedToml {
  if (bytes.length > MAX_CONFIG_BYTES) {
    throw new ConfigError(
      'SY_ERR_CONFIG_TOO_LARGE',
      `${source}: config is ${bytes.length} bytes; the limit is ${MAX_CONFIG_BYTES} bytes (1 MiB) — put big rule sets in lists`,
    );
  }
  const bad = firstInvalidUtf8(bytes);
  if (bad >= 0) {
    let line = 1;
    for (let i = 0; i < bad; i++) if (bytes[i] === 0x0a) line++;
    const shown = Array.from(bytes.subarray(bad, bad + 4), (b) => b.toString(16).padStart(2, '0')).join(' ');
    throw new ConfigError('SY_ERR_CONFIG_ENCODING', `${source}: not valid UTF-8 at byte offset ${bad} (line ${line}; bytes ${shown})`, [
      { path: '(file)', line, message: `invalid UTF-8 at byte offset ${bad}` },
    ]);
  }
  let text = new TextDecoder('utf-8').decode(bytes);
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1); // a BOM is harmless; TOML parsers differ on it
  try {
    const value = parse(text, { maxDepth: MAX_TOML_DEPTH, unsafeKeyBehaviour: 'throw' }) as Record<string, unknown>;
    return { value, text };
  } catch (e) {
    if (e instanceof TomlError) {
      const first = e.message.split('\n')[0]!.replace(/^Invalid TOML document: /, '');
      const deep = /excessively nested/.test(first);
      throw new ConfigError(
        deep ? 'SY_ERR_CONFIG_LIMIT' : 'SY_ERR_CONFIG_SYNTAX',
        `${source}:${e.line}:${e.column}: ${deep ? `arrays/tables nested deeper than ${MAX_TOML_DEPTH} levels` : `TOML syntax: ${first}`}`,
        [{ path: '(file)', line: e.line, message: first }],
        e,
      );
    }
    throw new ConfigError('SY_ERR_CONFIG_SYNTAX', `${source}: TOML syntax: ${(e as Error).message}`, [], e);
  }
}

/** Parses and validates config bytes; `source` names the file (or `embedded`) in messages. */
export function loadConfigFromBytes(bytes: Uint8Array, source: string): Config {
  const { value, text } = parseConfigToml(bytes, source);
  let lines: LineIndex | null = null;
  const lazyLines = () => (lines ??= indexLines(text));
  const issues = new Issues();
  let raw: unknown = value;
  let mapPath: PathMap = (p) => p;
  let notices: string[] = [];
  if (isPolicyRouterConfig(value)) {
    const compat = fromPolicyRouter(value, issues);
    if (!compat || !issues.empty) throw issuesToError(issues.list, source, lazyLines(), mapPath);
    ({ raw, mapPath, notices } = compat);
  } else if (!('version' in value)) {
    throw new ConfigError('SY_ERR_CONFIG_VERSION', `${source}: missing \`version = 1\` at the top of the config`, [
      { path: 'version', line: 1, message: 'missing' },
    ]);
  } else if (value.version !== 1) {
    const line = lazyLines().lineOf(['version']);
    throw new ConfigError(
      'SY_ERR_CONFIG_VERSION',
      `${source}${line ? `:${line}` : ''}: version: ${JSON.stringify(value.version)} is not a supported config version (this build reads version = 1)`,
      [{ path: 'version', ...(line ? { line } : {}), message: 'unsupported version' }],
    );
  }
  const result = normalizeConfig(raw, source, null, notices);
  if (!result.config) throw issuesToError(result.issues.list, source, lazyLines(), mapPath);
  // Rule origins carry lines; compute them only now that the config is known to be valid.
  const idx = lazyLines();
  for (const r of result.config.rules) {
    const line = idx.lineOf(mapPath(['rule', r.index]));
    if (line !== undefined) r.origin.line = line;
  }
  result.config.exempt.forEach((e, i) => {
    const line = idx.lineOf(mapPath(['exempt', i]));
    if (line !== undefined) e.origin.line = line;
  });
  result.config.lists?.forEach((l, i) => {
    const line = idx.lineOf(mapPath(['list', i]));
    if (line !== undefined) l.line = line;
  });
  for (const [name, e] of Object.entries(result.config.egress)) {
    const line = idx.lineOf(['egress', name]);
    if (line !== undefined) e.line = line;
  }
  return result.config;
}

export function loadConfigFromString(text: string, source: string): Config {
  return loadConfigFromBytes(new TextEncoder().encode(text), source);
}
