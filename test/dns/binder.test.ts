// src/dns/binder.ts: Binder.fastUntil — until when the UDP fast path's replica may serve a cached
// answer without the main thread — never lets a hit through that needsRehook would have sent to
// the hook, and is not needlessly short (checked over random entries, hook times and hit times).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Binder } from '../../src/dns/binder.ts';
import type { Prepared } from '../../src/dns/cache.ts';
import { silentLog } from '../../src/dns/forwarder.ts';
import type { ForwarderStats } from '../../src/dns/forwarder.ts';
import type { CorrelationStore } from '../../src/dns/store.ts';

function binder(grace: number, hook: boolean): Binder {
  const stats = { hookFailures: 0, rehooks: 0 } as ForwarderStats;
  return new Binder({
    ...(hook ? { onBindings: async () => {} } : {}),
    graceSeconds: grace,
    egresses: () => ({}),
    store: {} as CorrelationStore,
    log: silentLog,
    stats,
  });
}

function entry(storedAt: number, ttl: number, addresses = 1): Prepared {
  return {
    storedAt,
    expiresAt: storedAt + ttl * 1000,
    ttl,
    addresses: Array.from({ length: addresses }, (_, i) => ({ ip: `127.0.0.${i + 1}`, family: 4 as const })),
    hookedUntil: 0,
    hookGen: -1,
  } as unknown as Prepared;
}

describe('Binder.fastUntil', () => {
  test('no hook, or no addresses: the entry\'s expiry', () => {
    const p = entry(1000, 30);
    assert.equal(binder(600, false).fastUntil(p), p.expiresAt);
    const n = entry(1000, 30, 0);
    assert.equal(binder(600, true).fastUntil(n), n.expiresAt);
  });

  test('a hook generation other than the current one: 0 (the main thread must re-run the hook)', () => {
    const b = binder(600, true);
    const p = entry(1000, 30);
    p.hookedUntil = 1000 + 630_000;
    p.hookGen = 0;
    assert.ok(b.fastUntil(p) > 1000);
    b.gen++;
    assert.equal(b.fastUntil(p), 0);
  });

  test('random entries and hit times: before fastUntil, needsRehook is always false', () => {
    let seed = 99;
    const rnd = (n: number): number => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return (seed >>> 8) % n;
    };
    let served = 0;
    for (let i = 0; i < 3000; i++) {
      const grace = [0, 1, 2, 3, 10, 600][rnd(6)]!;
      const b = binder(grace, true);
      const ttl = rnd(120);
      const s = 1_000_000 + rnd(1000);
      const p = entry(s, ttl);
      // The hook ran at some point of the entry's life (on the miss, or a later rehook), with
      // the TTL then left, as Binder.hookFor records it.
      const hookAt = s + (rnd(3) === 0 ? 0 : rnd(ttl * 1000 + 1));
      const left = Math.max(0, ttl - Math.floor((hookAt - s) / 1000));
      p.hookedUntil = hookAt + (left + grace) * 1000;
      p.hookGen = 0;
      const until = b.fastUntil(p);
      for (let k = 0; k < 40; k++) {
        const t = hookAt + rnd((ttl + grace + 2) * 1000);
        if (t < until) {
          served++;
          assert.equal(b.needsRehook(p, t), false, JSON.stringify({ grace, ttl, s, hookAt, until, t }));
          assert.ok(t < p.expiresAt);
        }
      }
      // With a long grace period, an entry hooked on its miss is served until it expires.
      if (grace >= 2 && hookAt === s) assert.equal(until, p.expiresAt);
    }
    assert.ok(served > 10_000, `enough hits checked (${served})`);
  });
});
