// Keeps src/errors.ts and docs/errors.md in step: every code has a heading, every heading a code.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { ERROR_CODES, SwitchyardError, ConfigError } from '../src/errors.ts';

const doc = readFileSync(new URL('../docs/errors.md', import.meta.url), 'utf8');
const documented = new Set([...doc.matchAll(/^### (SY_ERR_[A-Z0-9_]+)\s*$/gm)].map((m) => m[1]));

test('every error code is documented', () => {
  for (const code of Object.keys(ERROR_CODES)) assert.ok(documented.has(code), `${code} missing from docs/errors.md`);
});

test('every documented code exists', () => {
  for (const code of documented) assert.ok(code! in ERROR_CODES, `${code} documented but not in src/errors.ts`);
});

test('codes are well-formed (object keys are unique by construction)', () => {
  for (const code of Object.keys(ERROR_CODES)) assert.match(code, /^SY_ERR_[A-Z0-9_]+$/);
});

test('errors carry their code and exit code', () => {
  const e = new ConfigError('SY_ERR_CONFIG', 'bad', [{ path: 'dns.listen', line: 3, message: 'x' }]);
  assert.ok(e instanceof SwitchyardError);
  assert.equal(e.code, 'SY_ERR_CONFIG');
  assert.equal(e.exitCode, 2);
  assert.equal(e.name, 'ConfigError');
});
