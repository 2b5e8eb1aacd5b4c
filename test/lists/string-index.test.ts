// StringIndex against a Map oracle: growth through many rehashes, repeated keys, overwrite,
// addIfAbsent/setLast, retain.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { StringIndex } from '../../src/lists/string-index.ts';

test('behaves like a Map of string → int32', () => {
  const x = new StringIndex();
  const m = new Map<string, number>();
  let seed = 7;
  const next = (): number => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0);
  for (let i = 0; i < 50_000; i++) {
    const k = `k${next() % 20_000}.${i % 3 === 0 ? 'ü' : 'x'}`;
    const v = (next() | 0);
    if (i % 2) {
      const had = m.get(k);
      assert.equal(x.addIfAbsent(k, 0), had);
      if (had === undefined) { x.setLast(v); m.set(k, v); }
    } else {
      x.set(k, v);
      m.set(k, v);
    }
  }
  assert.equal(x.size, m.size);
  for (const [k, v] of m) assert.equal(x.get(k), v);
  assert.equal(x.get('absent'), undefined);
  assert.equal(x.get(''), undefined);
  x.retain((v) => v >= 0);
  for (const [k, v] of m) assert.equal(x.get(k), v >= 0 ? v : undefined);
  assert.equal(x.size, [...m.values()].filter((v) => v >= 0).length);
});
