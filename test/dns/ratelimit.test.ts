// The per-client token bucket, including its last-client shortcut: buckets stay per client when
// clients alternate or repeat, refill with time, and the table is bounded.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RateLimiter } from '../../src/dns/ratelimit.ts';

const allowed = (rl: RateLimiter, client: string, n: number, now: number): number => {
  let ok = 0;
  for (let i = 0; i < n; i++) if (rl.allow(client, now)) ok++;
  return ok;
};

test('each client has its own bucket (burst = 2 × rate), repeated or alternating', () => {
  const rl = new RateLimiter(5);
  assert.equal(allowed(rl, '127.0.0.1', 15, 0), 10);
  assert.equal(allowed(rl, '127.0.0.2', 15, 0), 10, 'another client is not charged for the first');
  let a = 0;
  let b = 0;
  for (let i = 0; i < 10; i++) {
    if (rl.allow('127.0.0.3', 0)) a++;
    if (rl.allow('127.0.0.4', 0)) b++;
  }
  assert.deepEqual([a, b], [10, 10]);
  assert.equal(rl.allow('127.0.0.3', 0), false);
  assert.equal(rl.allow('127.0.0.1', 0), false, 'the first client is still empty after others were seen');
  assert.equal(allowed(rl, '127.0.0.1', 10, 1000), 5, 'one second refills rate tokens');
  assert.equal(rl.dropped, 5 + 5 + 1 + 1 + 5);
});

test('the client table is bounded; 0 disables the limit', () => {
  const rl = new RateLimiter(1, 100);
  for (let i = 0; i < 1000; i++) rl.allow(`10.0.${i >> 8}.${i & 255}`, 0);
  assert.equal(allowed(rl, '127.0.0.9', 5, 0), 2);
  const off = new RateLimiter(0);
  assert.equal(allowed(off, '127.0.0.1', 10_000, 0), 10_000);
});
