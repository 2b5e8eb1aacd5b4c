// Collects config problems with their key paths, then turns them into one ConfigError whose message
// names each path and line. Limit violations carry their own code; the first one found decides the
// error's code (there is usually just one).
import { ConfigError, type ErrorCode } from '../../errors.ts';
import { formatPath, type KeyPath, type LineIndex } from './locate.ts';
import { MAX_REPORTED_ISSUES } from './limits.ts';

export type ConfigCode = Extract<ErrorCode, `SY_ERR_CONFIG${string}`>;

export interface Issue {
  path: KeyPath;
  message: string;
  code: ConfigCode;
}

export class Issues {
  readonly list: Issue[] = [];
  add(path: KeyPath, message: string, code: ConfigCode = 'SY_ERR_CONFIG'): void {
    this.list.push({ path: [...path], message, code });
  }
  get empty(): boolean {
    return this.list.length === 0;
  }
}

/** Rewrites a v1 key path to where the user wrote it (for configs read in another format). */
export type PathMap = (path: KeyPath) => KeyPath;

export function issuesToError(issues: Issue[], source: string, lines: LineIndex | null, mapPath: PathMap): ConfigError {
  const limit = issues.find((i) => i.code !== 'SY_ERR_CONFIG');
  const code = limit?.code ?? 'SY_ERR_CONFIG';
  // Put limit violations first: they usually explain the rest.
  const ordered = limit ? [limit, ...issues.filter((i) => i !== limit)] : issues;
  const located = ordered.map((i) => {
    const path = mapPath(i.path);
    const line = lines?.lineOf(path);
    return { path: formatPath(path), ...(line === undefined ? {} : { line }), message: i.message };
  });
  const shown = located.slice(0, MAX_REPORTED_ISSUES).map((i) => `${source}${i.line === undefined ? '' : `:${i.line}`}: ${i.path}: ${i.message}`);
  if (located.length > shown.length) shown.push(`... and ${located.length - shown.length} more problems`);
  const head = located.length === 1 ? 'invalid config' : `invalid config (${located.length} problems)`;
  return new ConfigError(code, `${head}:\n  ${shown.join('\n  ')}`, located);
}
