// Choosing the transparent listeners' address on Windows and re-choosing it on interface changes
// (src/redirect/windows/listen-address.ts). The system calls behind it (GetAdaptersAddresses,
// GetBestInterfaceEx) run for real under Wine in wine.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chooseListenAddresses, watchListenAddresses } from '../../src/redirect/windows/listen-address.ts';
import type { AdapterAddress } from '../../src/sys/windows/iphlpapi.ts';

const A = (ifIndex: number, family: 4 | 6, address: string, up = true): AdapterAddress => ({ ifIndex, name: `if${ifIndex}`, family, address, up });

const ADAPTERS = [
  A(1, 4, '127.0.0.1'),
  A(1, 6, '::1'),
  A(7, 4, '169.254.3.4'),
  A(7, 4, '198.18.0.10'),
  A(7, 6, 'fe80::1'),
  A(7, 6, '2001:db8::10'),
  A(9, 4, '198.18.5.5', false),
];

test('the best interface’s first usable address per family; loopback, link-local and down adapters skipped', () => {
  assert.deepEqual(chooseListenAddresses(ADAPTERS, { 4: 7, 6: 7 }), { 4: { address: '198.18.0.10', ifIndex: 7 }, 6: { address: '2001:db8::10', ifIndex: 7 } });
  assert.deepEqual(chooseListenAddresses(ADAPTERS, { 4: 1, 6: 1 }), {}, 'loopback only: nothing to bind');
  assert.deepEqual(chooseListenAddresses(ADAPTERS, { 4: 9 }), {}, 'interface down');
  assert.deepEqual(chooseListenAddresses(ADAPTERS, {}), {});
});

test('the watcher reports only real changes, with the previous choice', () => {
  let adapters = ADAPTERS;
  let best = 7;
  let fire: () => void = () => {};
  let stopped = false;
  const seen: string[] = [];
  const w = watchListenAddresses(
    {
      adapters: () => adapters,
      bestInterface: (f) => (f === 4 ? best : undefined),
      watch: (cb) => {
        fire = cb;
        return () => (stopped = true);
      },
    },
    (next, prev) => seen.push(`${prev[4]?.address ?? '-'} -> ${next[4]?.address ?? '-'}`),
  );
  assert.equal(w.current()[4]?.address, '198.18.0.10');
  fire(); // a change that does not change the choice (e.g. another adapter's metric)
  assert.deepEqual(seen, []);
  adapters = [...ADAPTERS.filter((a) => a.address !== '198.18.0.10'), A(7, 4, '198.18.0.20')];
  fire();
  best = 1;
  fire();
  assert.deepEqual(seen, ['198.18.0.10 -> 198.18.0.20', '198.18.0.20 -> -']);
  w.stop();
  assert.ok(stopped);
});
