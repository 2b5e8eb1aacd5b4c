// The shared domain table (src/policy/engine/domain-index.ts): names whose 32-bit suffix hashes
// collide must never match each other's patterns; exact and suffix keys share entries; two lanes
// (block rules, other rules) stay apart while sharing one probe pass; the keyword character-mask
// skip never hides a keyword that occurs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DomainIndex, suffixHash } from '../../src/policy/engine/domain-index.ts';
import type { DomainPattern } from '../../src/policy/types.ts';
import { Rng } from './random.ts';

/** Two different two-label names with the same suffix hash (birthday search, deterministic). */
function collidingPair(prefix = 'c'): [string, string] {
  const seen = new Map<number, string>();
  for (let i = 0; ; i++) {
    const name = `${prefix}${i.toString(36)}.com`;
    const h = suffixHash(name);
    const other = seen.get(h);
    if (other !== undefined) return [other, name];
    seen.set(h, name);
  }
}

type Hit = [number, string, string];
function all(idx: DomainIndex<number>, name: string, lane = 0): Hit[] {
  const out: Hit[] = [];
  idx.find(name, (v, kind, key) => { out.push([v, kind, key]); return false; }, lane);
  return out;
}

test('colliding hashes: each name finds only its own patterns', () => {
  const [a, b] = collidingPair();
  assert.notEqual(a, b);
  assert.equal(suffixHash(a), suffixHash(b));
  assert.equal(suffixHash(`x.${a}`, 2), suffixHash(a), 'the pass hashes a suffix in place like the whole key');

  const only = new DomainIndex<number>();
  only.add({ kind: 'suffix', value: a }, 1);
  only.finish((x, y) => x - y);
  assert.deepEqual(all(only, a), [[1, 'suffix', a]]);
  assert.deepEqual(all(only, `www.${a}`), [[1, 'suffix', a]]);
  assert.deepEqual(all(only, b), [], 'same hash, different text: no match');
  assert.deepEqual(all(only, `www.${b}`), []);

  const both = new DomainIndex<number>(2);
  both.add({ kind: 'suffix', value: a }, 1, 0);
  both.add({ kind: 'full', value: b }, 2, 1);
  both.add({ kind: 'suffix', value: b }, 3, 1);
  both.finish((x, y) => x - y);
  assert.deepEqual(all(both, a, 0), [[1, 'suffix', a]]);
  assert.deepEqual(all(both, a, 1), []);
  assert.deepEqual(all(both, b, 0), []);
  assert.deepEqual(all(both, b, 1), [[2, 'full', b], [3, 'suffix', b]]);
  assert.deepEqual(all(both, `m.${b}`, 1), [[3, 'suffix', b]], 'full: applies to the whole name only');
});

test('two lanes and both kinds against brute force on random sets', () => {
  const r = new Rng(11);
  const labels = ['a', 'b', 'ex', 'com', 'ru', 'xn--p1ai', 'tracker'];
  const name = (max: number) => Array.from({ length: 1 + r.int(max) }, () => r.pick(labels)).join('.');
  const idx = new DomainIndex<number>(2);
  const pats: { p: DomainPattern; v: number; lane: number }[] = [];
  for (let v = 0; v < 3000; v++) {
    const k = r.int(20);
    const p: DomainPattern = k < 12 ? { kind: 'suffix', value: name(4) } : k < 18 ? { kind: 'full', value: name(4) } : k < 19 ? { kind: 'keyword', value: r.pick(['rack', 'x.', 'zz', 'b.e', '-p1']) } : { kind: 'regexp', value: r.pick(['^a\\.', 'ru$']) };
    const lane = r.int(2);
    pats.push({ p, v, lane });
    idx.add(p, v, lane);
  }
  idx.finish((x, y) => x - y);
  const spec = (p: DomainPattern, d: string): number => {
    if (p.kind === 'full') return d === p.value ? 1000 : -1;
    if (p.kind === 'suffix') return d === p.value || d.endsWith('.' + p.value) ? 2 + p.value.split('.').length : -1;
    if (p.kind === 'keyword') return d.includes(p.value) ? 0 : -1;
    return new RegExp(p.value).test(d) ? 0 : -1;
  };
  for (let k = 0; k < 1500; k++) {
    const q = name(6);
    for (const lane of [0, 1]) {
      const want = pats
        .filter((x) => x.lane === lane && spec(x.p, q) >= 0)
        .sort((x, y) => spec(y.p, q) - spec(x.p, q) || x.v - y.v)
        .map((x) => x.v);
      const got = all(idx, q, lane).map((h) => h[0]);
      // The same value may be reported once per pattern; compare as sets of (value) in order of first sight.
      assert.deepEqual([...new Set(got)], [...new Set(want)], `${q} lane ${lane}`);
    }
  }
});

test('keys the byte array cannot hold in place (non-Latin-1, 255+ characters) and keys given as ropes or slices', () => {
  // Normalised patterns are ASCII and at most 253 characters, but the table must stay exact for
  // any key it is given: such keys keep their text beside the byte array.
  const long = `${'a'.repeat(60)}.${'b'.repeat(60)}.${'c'.repeat(60)}.${'d'.repeat(60)}.${'e'.repeat(20)}`; // 284 characters
  assert.ok(long.length >= 255);
  const big = 'zz.example.com|ünïcødé.example|' + 'x'.repeat(10);
  const slice = big.slice(0, 14); // a slice of a bigger string
  const rope = ['ab', 'c.ex'].join('') + 'ample.org'; // built by concatenation
  const idx = new DomainIndex<number>();
  idx.add({ kind: 'suffix', value: 'ünïcødé.example' }, 1);
  idx.add({ kind: 'full', value: 'ä.example' }, 2);
  idx.add({ kind: 'suffix', value: long }, 3);
  idx.add({ kind: 'suffix', value: slice }, 4);
  idx.add({ kind: 'suffix', value: rope }, 5);
  idx.add({ kind: 'suffix', value: 'example' }, 6);
  idx.add({ kind: 'suffix', value: '中文.example' }, 7); // characters above U+00FF
  idx.finish((x, y) => x - y);
  assert.deepEqual(all(idx, 'www.ünïcødé.example'), [[1, 'suffix', 'ünïcødé.example'], [6, 'suffix', 'example']]);
  assert.deepEqual(all(idx, 'ünïcødé.example'), [[1, 'suffix', 'ünïcødé.example'], [6, 'suffix', 'example']]);
  assert.deepEqual(all(idx, 'ünïcødè.example'), [[6, 'suffix', 'example']], 'one character differs');
  assert.deepEqual(all(idx, 'ä.example'), [[2, 'full', 'ä.example'], [6, 'suffix', 'example']]);
  assert.deepEqual(all(idx, 'a.example'), [[6, 'suffix', 'example']]);
  assert.deepEqual(all(idx, `q.${long}`), [[3, 'suffix', long]]);
  assert.deepEqual(all(idx, long.slice(0, -1) + 'f'), [], 'a 284-character name differing in its last character');
  assert.deepEqual(all(idx, 'm.zz.example.com'), [[4, 'suffix', 'zz.example.com']]);
  assert.deepEqual(all(idx, 'abc.example.org'), [[5, 'suffix', 'abc.example.org']]);
  assert.deepEqual(all(idx, 'x.中文.example'), [[7, 'suffix', '中文.example'], [6, 'suffix', 'example']]);
  assert.deepEqual(all(idx, 'x.中斗.example'), [[6, 'suffix', 'example']], 'one wide character differs');
  // Same hash, different text, for keys kept beside the byte array: no match.
  for (const prefix of ['中', 'l'.repeat(250) + '.']) {
    const [a, b] = collidingPair(prefix);
    const t = new DomainIndex<number>();
    t.add({ kind: 'suffix', value: a }, 1);
    t.finish((x, y) => x - y);
    assert.deepEqual(all(t, `w.${a}`), [[1, 'suffix', a]]);
    assert.deepEqual(all(t, b), [], `${b.slice(0, 8)}…: same hash as the key, different text`);
  }
});
