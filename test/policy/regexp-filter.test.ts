// The regexp pre-check (src/policy/engine/regexp-filter.ts) may only skip a regexp that cannot
// match: checked against RegExp itself on random patterns and names, plus the cases that are easy
// to misread (top-level `|`, a `{` that is no quantifier, multi-character escapes, classes).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { charMask, mayMatch, regexpNeeds } from '../../src/policy/engine/regexp-filter.ts';
import { Rng } from './random.ts';

const may = (src: string, name: string) => mayMatch(regexpNeeds(src), name, charMask(name));

test('what a few patterns require', () => {
  assert.deepEqual(regexpNeeds('^r[0-9]+---sn-[a-z0-9]+\\.googlevideo\\.com$'), { mask: charMask('r---sn-.googlevideo.com'), first: 'r'.charCodeAt(0), last: 'm'.charCodeAt(0) });
  assert.equal(regexpNeeds('\\.cdn[0-9]+\\.example$').last, 'e'.charCodeAt(0));
  assert.equal(regexpNeeds('^ads?[0-9]+\\.').first, 'a'.charCodeAt(0));
  assert.equal(regexpNeeds('^a?b').first, -1, 'an optional first atom fixes nothing');
  assert.equal(regexpNeeds('ab+$').last, -1, 'a repeated last atom: still b, but not worth the risk');
  for (const src of ['ads|tracker', 'a{b|c}d', '\\x41bc', '\\u0041bc', 'ab\\1', '\\cJab']) {
    assert.deepEqual(regexpNeeds(src), { mask: 0, first: -1, last: -1 }, src);
  }
  assert.equal(may('a{b|c}d', 'c}d'), true);
  assert.equal(may('a{b|c}d', 'xa{b'), true);
  assert.equal(may('\\.cdn[0-9]+\\.example$', 'q1.kalo.com'), false, 'skipped: no x in the name');
  assert.equal(may('^r[0-9]+---sn-', 'q1.r1---sn-ab.googlevideo.com'), false, 'skipped: does not start with r');
  assert.equal(may('(x|y)z[q]w?v', 'zv'), true, 'groups, classes and optional atoms require nothing');
  assert.equal(may('(x|y)z[q]w?v', 'zw'), false, 'v is required');
});

test('never skips a regexp that matches (random patterns and names)', () => {
  const r = new Rng(21);
  const atoms = ['a', 'b', 'c', '.', '\\.', '\\-', '-', '[a-c]', '[^a]', '(a|b)', '(?:bc)', '\\d', '\\w', '[]', '[^]', '\\b', 'x'];
  const quants = ['', '', '', '?', '*', '+', '{2}', '{0,1}', '{1,3}', '+?', '{0}'];
  const alphabet = 'abcx.-1';
  let skipped = 0;
  let matched = 0;
  for (let k = 0; k < 400; k++) {
    let src = r.chance(0.3) ? '^' : '';
    const n = 1 + r.int(5);
    for (let i = 0; i < n; i++) {
      const a = r.pick(atoms);
      src += a + (a === '\\b' ? '' : r.pick(quants));
    }
    if (r.chance(0.3)) src += '$';
    if (r.chance(0.1)) src += '|' + r.pick(atoms);
    const re = new RegExp(src);
    const needs = regexpNeeds(src);
    for (let j = 0; j < 60; j++) {
      const name = Array.from({ length: 1 + r.int(8) }, () => alphabet[r.int(alphabet.length)]).join('');
      const ok = mayMatch(needs, name, charMask(name));
      if (re.test(name)) {
        matched++;
        assert.ok(ok, `pre-check skipped ${src} for '${name}', which matches`);
      } else if (!ok) skipped++;
    }
  }
  assert.ok(matched > 1000 && skipped > 1000, `the check must see both cases (matched ${matched}, skipped ${skipped})`);
});
