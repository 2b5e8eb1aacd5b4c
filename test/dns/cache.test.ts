// The answer cache's hash index: a hit finds its entry by the question's 32-bit hash and compares
// the question bytes, so two questions whose hashes collide must each still get their own entry,
// with letter case and the DO bit respected; eviction and expiry leave no stale index entry.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AnswerCache } from '../../src/dns/cache.ts';
import type { Prepared } from '../../src/dns/cache.ts';
import { buildNameQuery } from '../../src/dns/build.ts';
import { parseQuery } from '../../src/dns/wire.ts';
import type { Query } from '../../src/dns/wire.ts';

const entry = (tag: string, now: number, lifeMs = 60_000): Prepared => ({ name: tag, storedAt: now, expiresAt: now + lifeMs }) as unknown as Prepared;

function q(name: string, type = 1): { q: Query; buf: Buffer } {
  const buf = buildNameQuery(name, type).buf;
  return { q: parseQuery(buf), buf };
}

/** Two names whose cache keys have the same FNV-1a hash (found once by a birthday search). */
function collidingNames(): [string, string] {
  return ['c479599.collide.test', 'c662382.collide.test'];
}

test('colliding hashes: each question gets its own entry', () => {
  const [a, b] = collidingNames();
  const qa = q(a);
  const qb = q(b);
  assert.equal(qa.q.hash, qb.q.hash);
  assert.notEqual(qa.q.key, qb.q.key);
  const now = 1_000_000;
  const c = new AnswerCache(100);
  c.set(qa.q.key, entry('a', now), true);
  c.set(qb.q.key, entry('b', now), true);
  assert.equal(c.getQuery(q(a).q, qa.buf, now)?.name, 'a');
  assert.equal(c.getQuery(q(b).q, qb.buf, now)?.name, 'b');
  // Case-folded: the other spelling finds the same entry.
  const upper = q(a.toUpperCase());
  assert.equal(c.getQuery(upper.q, upper.buf, now)?.name, 'a');
});

test('type, DO bit and a different name of the same length miss', () => {
  const now = 5_000;
  const c = new AnswerCache(100);
  const base = q('abc.example.test');
  c.set(base.q.key, entry('x', now), true);
  assert.equal(c.getQuery(base.q, base.buf, now)?.name, 'x');
  const aaaa = q('abc.example.test', 28);
  assert.equal(c.getQuery(aaaa.q, aaaa.buf, now), undefined);
  const other = q('abd.example.test');
  assert.equal(c.getQuery(other.q, other.buf, now), undefined);
  // The same question with the DO bit set in its OPT record (the OPT's flags high byte): another key.
  const m = Buffer.from(base.buf);
  m[m.length - 4]! |= 0x80;
  const qd = parseQuery(m);
  assert.equal(qd.dnssecOk, true);
  assert.equal(c.getQuery(qd, m, now), undefined);
});

test('eviction and expiry remove the hash index entry; the string path still works', () => {
  const now = 10_000;
  const c = new AnswerCache(2);
  const names = ['one.test', 'two.test', 'three.test'].map((n) => q(n));
  for (const [i, x] of names.entries()) c.set(x.q.key, entry(`e${i}`, now), true);
  assert.equal(c.size, 2);
  assert.equal(c.getQuery(names[0]!.q, names[0]!.buf, now), undefined, 'evicted');
  assert.equal(c.getQuery(names[2]!.q, names[2]!.buf, now)?.name, 'e2');
  assert.equal(c.getQuery(names[1]!.q, names[1]!.buf, now + 60_000), undefined, 'expired');
  assert.equal(c.size, 1);
  // Entries under other keys (resolveFor's path-prefixed keys) are found by string only.
  c.set(`vpn|${names[0]!.q.key}`, entry('p', now));
  assert.equal(c.get(`vpn|${names[0]!.q.key}`, now)?.name, 'p');
  assert.equal(c.getQuery(names[0]!.q, names[0]!.buf, now), undefined);
  c.clear();
  assert.equal(c.getQuery(names[2]!.q, names[2]!.buf, now), undefined);
});
