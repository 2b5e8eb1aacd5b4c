// Shared by the list tests: fixture loading, error assertions, and the one round-trip helper every
// format uses (export, parse again, compare the conditions).
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ListError } from '../../src/errors.ts';
import { exportList, parseList, type ExportOptions, type ListEntry, type ListFormat, type ParseListOptions, type ParsedList } from '../../src/lists/index.ts';

export const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), 'fixtures');

export function fixture(name: string): string {
  return readFileSync(join(FIXTURES, name), 'utf8');
}

export async function parse(text: string, format: ListFormat, opts: Partial<ParseListOptions> = {}): Promise<ParsedList> {
  return parseList(text, format, { list: 'test', ...opts });
}

/** v2fly includes resolved from fixtures/v2fly. */
export const v2flyReader = (name: string): Promise<Buffer> => readFile(join(FIXTURES, 'v2fly', name));

/** Conditions only: line and source stripped, for comparing across formats. */
export function conditions(entries: readonly ListEntry[]): unknown[] {
  return entries.map(({ line: _l, source: _s, platform: _p, ...rest }) => rest);
}

export async function expectError(p: Promise<unknown> | (() => unknown), code: string, line: number | undefined, re?: RegExp): Promise<ListError> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    assert.ok(e instanceof ListError, `expected a ListError, got ${(e as Error)?.stack ?? String(e)}`);
    assert.equal(e.code, code, e.message);
    assert.equal(e.line, line, `line of: ${e.message}`);
    if (re) assert.match(e.message, re);
    if (line !== undefined) assert.match(e.message, new RegExp(`line ${line}\\b`), 'the message names the line');
    return e;
  }
  assert.fail(`expected ${code}${line === undefined ? '' : ` at line ${line}`}`);
}

/** export → parse → the same conditions (and, with `same`, the same text again). */
export async function roundTrip(entries: readonly ListEntry[], format: ListFormat, opts: ExportOptions = {}): Promise<string> {
  const text = exportList(entries, format, opts);
  const again = await parse(text, format);
  assert.deepEqual(conditions(again.entries), conditions(entries), `round trip through ${format}:\n${text}`);
  assert.equal(exportList(again.entries, format, opts), text, `second export through ${format} is identical`);
  return text;
}
