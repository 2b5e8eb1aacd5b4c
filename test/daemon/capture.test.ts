// src/daemon/capture.ts: which stored (address, name) pairs go into the OS's captured sets, with a
// real compiled policy. An app rule and a CIDR rule exist: with `capture: true` they do not make a
// name capturable (groups and static sets redirect those); a domain rule does.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { captureEgresses, storedBindings } from '../../src/daemon/capture.ts';
import { compilePolicy, loadConfigFromString } from '../../src/policy/index.ts';
import type { StoreName } from '../../src/flow/types.ts';

const policy = compilePolicy(
  loadConfigFromString(`version = 1
default = "direct"
[egress.vpn]
type = "socks5"
endpoint = "socks5://127.0.0.1:1081"
[[rule]]
egress = "vpn"
apps = ["firefox"]
[[rule]]
egress = "vpn"
cidrs = ["198.18.0.0/24"]
[[rule]]
egress = "vpn"
domains = ["routed.test"]
[[rule]]
egress = "block"
domains = ["blocked.test"]
`, 'capture.toml'),
);

const NOW = 1_800_000_000_000;
const name = (n: string, ttlS: number): StoreName => ({ name: n, chain: [n], expiresAt: NOW + ttlS * 1000, upstream: 'u', firstSeen: NOW, lastSeen: NOW, stale: ttlS <= 0 });
const forwarderView = (n: string) => policy.projectDomain(n).egresses;
const egressesOf = (n: string) => captureEgresses(n, forwarderView(n), policy);

test('captureEgresses: app and CIDR rules leave a name out; a domain rule takes it in', () => {
  assert.ok(forwarderView('plain.test').includes('vpn'), 'without capture, the app rule counts for every name');
  assert.deepEqual(egressesOf('plain.test'), ['direct']);
  assert.deepEqual(egressesOf('routed.test'), ['vpn']);
  assert.deepEqual(egressesOf('blocked.test'), ['block']);
  assert.deepEqual(captureEgresses('x.test', ['direct'], policy), ['direct'], 'a direct name is not projected again');
});

test('storedBindings: routed names only, held for what is left of TTL + grace, families and shared names', () => {
  const grace = 60;
  const b = storedBindings(
    [
      ['198.18.1.1', [name('routed.test', 100), name('plain.test', 100)]],
      ['2001:db8::1', [name('routed.test', 30)]],
      ['198.18.1.2', [name('routed.test', -30)]], // stale: 30 s of grace left
      ['198.18.1.3', [name('routed.test', -61)]], // past TTL + grace
      ['198.18.1.4', [name('blocked.test', 10)]],
      ['198.18.1.5', [name('plain.test', 100)]],
    ],
    NOW,
    grace,
    egressesOf,
  );
  assert.deepEqual(
    b.map((x) => [x.ip, x.family, x.name, x.egresses.join(','), x.ttlSeconds, x.holdSeconds]),
    [
      ['198.18.1.1', 4, 'routed.test', 'vpn', 100, 160],
      ['2001:db8::1', 6, 'routed.test', 'vpn', 30, 90],
      ['198.18.1.2', 4, 'routed.test', 'vpn', 0, 30],
      ['198.18.1.4', 4, 'blocked.test', 'block', 10, 70],
    ],
  );
});
