// HMAC key: created owner-only, reloaded unchanged, refused when others can read or write it,
// when it has the wrong size or is a symlink; canonical JSON is stable and refuses what it
// cannot represent exactly.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync, mkdirSync, chownSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadOrCreateKey, HmacKey, KEY_FILE } from '../../src/store/key.ts';
import { canonicalJson, contentHash } from '../../src/store/canonical.ts';
import { isSwitchyardError } from '../../src/errors.ts';

const root = mkdtempSync(join(tmpdir(), 'sy-key-'));
after(() => rmSync(root, { recursive: true, force: true }));
const code = (c: string) => (e: unknown) => isSwitchyardError(e) && e.code === c;

test('the key is generated once, 0600 in a 0700 directory, and reloaded unchanged', () => {
  const dir = join(root, 'a', 'state');
  const first = loadOrCreateKey(dir);
  assert.equal(first.created, true);
  const st = statSync(join(dir, KEY_FILE));
  assert.equal(st.mode & 0o777, 0o600);
  assert.equal(st.size, 32);
  assert.equal(statSync(dir).mode & 0o777, 0o700);
  const bytes = readFileSync(join(dir, KEY_FILE));
  const second = loadOrCreateKey(dir);
  assert.equal(second.created, false);
  assert.deepEqual(readFileSync(join(dir, KEY_FILE)), bytes);
  assert.equal(first.key.mac('d', 'x'), second.key.mac('d', 'x'));
  assert.notEqual(first.key.mac('d', 'x'), first.key.mac('e', 'x'), 'the domain separates MACs');
});

test('a key file others can read or write is refused', () => {
  const dir = join(root, 'b');
  loadOrCreateKey(dir);
  for (const mode of [0o640, 0o604, 0o620, 0o666]) {
    chmodSync(join(dir, KEY_FILE), mode);
    assert.throws(() => loadOrCreateKey(dir), code('SY_ERR_STORE_KEY_PERMS'), mode.toString(8));
  }
  chmodSync(join(dir, KEY_FILE), 0o400);
  assert.doesNotThrow(() => loadOrCreateKey(dir));
});

test('a key owned by another user is refused', (t) => {
  if (process.getuid?.() !== 0) return t.skip('needs root to chown');
  const dir = join(root, 'owner');
  loadOrCreateKey(dir);
  chownSync(join(dir, KEY_FILE), 65534, 65534);
  assert.throws(() => loadOrCreateKey(dir), code('SY_ERR_STORE_KEY_PERMS'));
});

test('wrong size and symlinks are refused', () => {
  const dir = join(root, 'c');
  mkdirSync(dir, { mode: 0o700 });
  writeFileSync(join(dir, KEY_FILE), Buffer.alloc(16), { mode: 0o600 });
  assert.throws(() => loadOrCreateKey(dir), code('SY_ERR_STORE_KEY_INVALID'));
  const dir2 = join(root, 'd');
  mkdirSync(dir2, { mode: 0o700 });
  writeFileSync(join(root, 'elsewhere'), Buffer.alloc(32), { mode: 0o600 });
  symlinkSync(join(root, 'elsewhere'), join(dir2, KEY_FILE));
  assert.throws(() => loadOrCreateKey(dir2), (e) => isSwitchyardError(e));
  assert.throws(() => new HmacKey(Buffer.alloc(31)), code('SY_ERR_STORE_KEY_INVALID'));
});

test('HMAC verification rejects malformed and wrong MACs', () => {
  const k = new HmacKey(Buffer.alloc(32, 7));
  const m = k.mac('d', 'data');
  assert.equal(k.verify('d', 'data', m), true);
  assert.equal(k.verify('d', 'datA', m), false);
  assert.equal(k.verify('d', 'data', m.toUpperCase()), false);
  assert.equal(k.verify('d', 'data', m.slice(2)), false);
  assert.equal(k.verify('d', 'data', 42), false);
});

test('canonical JSON: key order and whitespace do not matter; -0 is 0', () => {
  assert.equal(canonicalJson({ b: 1, a: [true, null, 'x'], c: { z: 1, y: -0 } }), '{"a":[true,null,"x"],"b":1,"c":{"y":0,"z":1}}');
  assert.equal(contentHash(JSON.parse('{"a":1,"b":2}')), contentHash(JSON.parse('{ "b": 2, "a": 1 }')));
  assert.equal(canonicalJson({ a: undefined, b: 1 }), '{"b":1}');
  assert.equal(canonicalJson(Object.assign(Object.create(null), { x: 1 })), '{"x":1}'); // smol-toml objects
  assert.equal(canonicalJson('é\u2028'), JSON.stringify('é\u2028'));
});

test('canonical JSON refuses what JSON cannot carry exactly', () => {
  const cyc: Record<string, unknown> = {};
  cyc['self'] = cyc;
  for (const bad of [NaN, Infinity, [undefined], new Date(0), new Map(), 1n, () => 1, Symbol('x'), cyc]) {
    assert.throws(() => canonicalJson(bad), code('SY_ERR_STORE_CANONICAL'), String(typeof bad));
  }
});
