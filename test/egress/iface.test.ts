// Interface egress: the default physical interface from routing-table fixtures, and a real
// SO_BINDTODEVICE path over veth pairs inside a namespace the test creates.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findDefaultPhysical, parseRoute4, parseRoute6, InterfaceResolver } from '../../src/egress/iface.ts';
import * as h from '../front/helpers.ts';

const dir = mkdtempSync(join(tmpdir(), 'sy-iface-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const ROUTE_HEAD = 'Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n';

function roots(route4: string, route6: string, physical: string[]) {
  const d = mkdtempSync(join(dir, 'r-'));
  writeFileSync(join(d, 'route'), ROUTE_HEAD + route4);
  writeFileSync(join(d, 'ipv6_route'), route6);
  for (const p of physical) mkdirSync(join(d, 'net', p, 'device'), { recursive: true });
  mkdirSync(join(d, 'net', 'wg0'), { recursive: true }); // virtual: no device link
  return { procRoute: join(d, 'route'), procRoute6: join(d, 'ipv6_route'), sysClassNet: join(d, 'net') };
}

test('parses default routes and skips non-default and down routes', () => {
  const r = parseRoute4(ROUTE_HEAD + 'eth0\t00000000\t0101A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\neth0\t0001A8C0\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0\nwlan0\t00000000\t0101A8C0\t0002\t0\t0\t50\t00000000\t0\t0\t0\n');
  assert.deepEqual(r, [{ iface: 'eth0', metric: 100 }]);
  const r6 = parseRoute6('00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe800000000000000000000000000001 00000400 00000001 00000000 00000003 eth1\n00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200 lo\n');
  assert.deepEqual(r6, [{ iface: 'eth1', metric: 1024 }]);
  assert.deepEqual(parseRoute4('garbage\n\x00\x01 1 2\n'), []);
});

test('auto picks the physical interface of the lowest-metric default route, not a VPN', () => {
  // wg0 (a VPN) holds the best default route but has no /device: skipped.
  const r = roots('wg0\t00000000\t00000000\t0001\t0\t0\t0\t00000000\t0\t0\t0\nwlan0\t00000000\t0101A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0\neth0\t00000000\t0101A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n', '', ['eth0', 'wlan0']);
  assert.equal(findDefaultPhysical(r), 'eth0');
  assert.equal(findDefaultPhysical(roots('', '', [])), undefined);
});

test('auto is refreshed when the routing table changes', () => {
  const r = roots('eth0\t00000000\t0101A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n', '', ['eth0', 'wlan0']);
  const ifr = new InterfaceResolver('auto', r, 1000);
  assert.equal(ifr.current(0), 'eth0');
  writeFileSync(r.procRoute, ROUTE_HEAD + 'wlan0\t00000000\t0101A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0\n');
  assert.equal(ifr.current(500), 'eth0', 'cached within the refresh interval');
  assert.equal(ifr.current(1500), 'wlan0', 're-read after it');
  assert.equal(new InterfaceResolver('eth9', r).current(), 'eth9');
});

test('interface egress over a veth pair leaves through its interface (SO_BINDTODEVICE)', { skip: h.canNetns ? false : 'needs root, unshare and ip' }, async () => {
  const r = await h.runInNetns(new URL('../fixtures/front/iface-ns.ts', import.meta.url).pathname);
  assert.equal(r.error, undefined, String(r.error));
  assert.equal(r.direct, '198.18.1.1', 'direct takes the main route (va0)');
  assert.equal(r.wan2, '198.18.2.1', 'interface egress wan2 leaves via va2');
  assert.equal(r.gone, 'SY_ERR_EGRESS_INTERFACE', 'a missing interface refuses (no fallback to another way)');
  assert.equal(r.udpAnswers, 20, 'every datagram through wan2 was answered');
  assert.equal(r.udpFrom, '198.18.2.1', 'UDP left with va2 as source');
  assert.ok((r.udpVa2Tx as number) >= 20, `UDP left through va2 itself (SO_BINDTODEVICE): va2 sent ${r.udpVa2Tx} packets`);
  assert.ok((r.udpVa0Tx as number) < 20, `UDP did not take the main route via va0: va0 sent ${r.udpVa0Tx} packets`);
});
