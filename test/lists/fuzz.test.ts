// Hostile input for every parser: the fixtures mutated at random (seeded, so a failure reproduces)
// — inserted control and quote characters, deleted and repeated spans, truncation, invalid UTF-8.
// Each parse must either succeed or throw a ListError with a code and, for line errors, a line
// number inside the input. Anything else (TypeError, RangeError, a hang) is a parser bug.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ListError } from '../../src/errors.ts';
import { parseList, type ListFormat } from '../../src/lists/index.ts';
import { fixture, v2flyReader } from './helpers.ts';

const CASES: [ListFormat, string][] = [
  ['plain', 'plain.txt'],
  ['v2fly', 'v2fly/main'],
  ['singbox', 'singbox.json'],
  ['clash-domain', 'clash-domain.yaml'],
  ['clash-domain', 'clash-domain.txt'],
  ['clash-ipcidr', 'clash-ipcidr.yaml'],
  ['clash-classical', 'clash-classical.yaml'],
  ['clash-classical', 'clash-classical.txt'],
  ['netrulerouter', 'netrulerouter.txt'],
];
const ITERATIONS = 1000; // per fixture: 9,000 inputs in all, a few seconds

/** mulberry32: small, seeded, good enough to pick mutations. */
function rng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const NASTY = ['\0', '\r', '\n', '\t', ' ', '#', ':', ',', "'", '"', '\\', '[', ']', '{', '}', '*', '+', '.', '-', '@', '&', '/', '%', 'ü', '\u202e', '\ufeff', '9'.repeat(30), 'a'.repeat(70), '(', ')', '|', '?', '$', '^'];

function mutate(text: string, r: () => number): string | Uint8Array {
  let s = text;
  const n = 1 + Math.floor(r() * 4);
  for (let k = 0; k < n; k++) {
    const at = Math.floor(r() * (s.length + 1));
    const op = Math.floor(r() * 6);
    if (op === 0) s = s.slice(0, at) + NASTY[Math.floor(r() * NASTY.length)] + s.slice(at);
    else if (op === 1) s = s.slice(0, at) + s.slice(at + 1 + Math.floor(r() * 8));
    else if (op === 2) s = s.slice(0, at) + s.slice(at, at + 40).repeat(1 + Math.floor(r() * 3)) + s.slice(at);
    else if (op === 3) s = s.slice(0, at);
    else if (op === 4) s = s.slice(0, at) + String.fromCharCode(Math.floor(r() * 0x3000)) + s.slice(at);
    else {
      const b = Buffer.from(s);
      const i = Math.floor(r() * (b.length + 1));
      return Buffer.concat([b.subarray(0, i), Buffer.from([0x80 | Math.floor(r() * 0x7f)]), b.subarray(i)]);
    }
  }
  return s;
}

for (const [format, file] of CASES) {
  test(`mutated ${file} as ${format}: a result or a ListError, never a crash`, async () => {
    const base = fixture(file);
    const r = rng(0x5eed ^ file.length ^ format.length * 131);
    let ok = 0;
    let refused = 0;
    for (let i = 0; i < ITERATIONS; i++) {
      const input = mutate(base, r);
      const lines = (typeof input === 'string' ? input : Buffer.from(input).toString('latin1')).split('\n').length;
      try {
        await parseList(input, format, { list: 'fuzz', readInclude: v2flyReader, limits: { maxEntries: 10_000 } });
        ok++;
      } catch (e) {
        if (!(e instanceof ListError)) {
          assert.fail(`iteration ${i}: ${String((e as Error)?.stack ?? e)}\ninput: ${JSON.stringify(typeof input === 'string' ? input : Buffer.from(input).toString('latin1'))}`);
        }
        assert.match(e.code, /^SY_ERR_LIST_/);
        if (e.line !== undefined && e.file === undefined) assert.ok(e.line >= 0 && e.line <= lines, `line ${e.line} of ${lines}: ${e.message}`);
        refused++;
      }
    }
    assert.equal(ok + refused, ITERATIONS);
    assert.ok(refused > 0, 'some mutations must be refused, or the parser is not strict');
  });
}
