// Sealed records (src/store/sealed.ts): a round trip gives the body back; hostile or damaged
// files are refused with the named problem, never a crash — including a valid MAC under another
// purpose or field, and bodies that canonical JSON cannot represent (1e400 reads as Infinity).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { HmacKey } from '../../src/store/key.ts';
import { seal, unseal } from '../../src/store/sealed.ts';

const key = new HmacKey(randomBytes(32));
const other = new HmacKey(randomBytes(32));
const P = 'switchyard/test/v1';

test('seal → unseal gives the body back; the file is canonical JSON', () => {
  const body = { b: [1, 'x', { z: null }], a: true };
  const text = seal(key, P, 'body', body);
  assert.equal(text, seal(key, P, 'body', { a: true, b: [1, 'x', { z: null }] }), 'key order does not matter');
  assert.ok(!/\s/.test(text));
  assert.deepEqual(unseal(text, key, P, 'body'), { value: body });
});

test('hostile and damaged files are refused with their problem', () => {
  const good = seal(key, P, 'body', { n: 1 });
  const mac = (JSON.parse(good) as { mac: string }).mac;
  const cases: [string, string, string][] = [
    ['empty', '', 'not JSON'],
    ['truncated', good.slice(0, -1), 'not JSON'],
    ['JSON null', 'null', 'no body record'],
    ['a number', '7', 'no body record'],
    ['an array', '[1,2]', 'no body record'],
    ['field missing', JSON.stringify({ mac }), 'no body record'],
    ['field null', JSON.stringify({ mac, body: null }), 'no body record'],
    ['field a string', JSON.stringify({ mac, body: 'x' }), 'no body record'],
    ['a number JSON reads as Infinity', `{"mac":"${mac}","body":{"n":1e400}}`, 'not canonical data'],
    ['body changed', JSON.stringify({ mac, body: { n: 2 } }), 'HMAC mismatch'],
    ['mac missing', JSON.stringify({ body: { n: 1 } }), 'HMAC mismatch'],
    ['mac not hex', JSON.stringify({ mac: 'zz'.repeat(32), body: { n: 1 } }), 'HMAC mismatch'],
    ['mac a number', JSON.stringify({ mac: 5, body: { n: 1 } }), 'HMAC mismatch'],
    ['another key', seal(other, P, 'body', { n: 1 }), 'HMAC mismatch'],
    ['another purpose', seal(key, 'switchyard/other/v1', 'body', { n: 1 }), 'HMAC mismatch'],
  ];
  for (const [name, text, problem] of cases) assert.deepEqual(unseal(text, key, P, 'body'), { problem }, name);
  // The same MAC under another field name is still this purpose's body: the field only locates it.
  assert.deepEqual(unseal(seal(key, P, 'state', { n: 1 }), key, P, 'body'), { problem: 'no body record' });
});
