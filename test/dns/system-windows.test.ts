// Windows system resolvers (src/dns/system-windows.ts): the pure selection from the adapters' DNS
// servers and the saved servers, run on Linux with adapter lists shaped like GetAdaptersAddresses'
// answers; and the forwarder using it instead of resolv.conf. The OS call itself runs under Wine
// in test/windows/adapter-dns.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { selectWindowsResolvers, windowsSystemResolvers, startDnsForwarder } from '../../src/dns/index.ts';
import type { AdapterDnsInfo } from '../../src/dns/index.ts';
import { unusableReason } from '../../src/dns/system-windows.ts';
import { builtinEgresses, cleanup, dnsConfig, projector, tempDir } from './helpers.ts';

const ad = (name: string, servers: string[], o: Partial<AdapterDnsInfo> = {}): AdapterDnsInfo => ({ name, up: true, loopback: false, servers, addresses: [], ...o });
const own53 = [{ host: '127.0.0.1', port: 53 }];

test('adapters that are up give their servers in order, deduplicated, as udp://IP:53', () => {
  const list = [
    ad('Ethernet', ['192.0.2.53', '2001:db8::53', '192.0.2.54'], { addresses: ['192.0.2.10'] }),
    ad('Wi-Fi', ['192.0.2.53', '198.51.100.53']),
    ad('VPN (down)', ['203.0.113.53'], { up: false }),
    ad('Loopback Pseudo-Interface 1', ['fec0:0:0:ffff::1', '198.51.100.99'], { loopback: true }),
  ];
  assert.deepEqual(selectWindowsResolvers(list, { ownListeners: own53 }), ['udp://192.0.2.53:53', 'udp://[2001:db8::53]:53', 'udp://192.0.2.54:53', 'udp://198.51.100.53:53']);
});

test('loopback stubs, our own listener, placeholders, link-local and unspecified servers are dropped', () => {
  const list = [ad('Ethernet', ['127.0.0.1', '127.0.0.53', '::1', 'fec0:0:0:ffff::1', 'FEC0:0:0:FFFF::2', 'fec0:0:0:ffff::3', 'fe80::1', '0.0.0.0', '::', '192.0.2.53'])];
  assert.deepEqual(selectWindowsResolvers(list, { ownListeners: own53 }), ['udp://192.0.2.53:53']);
  assert.equal(unusableReason('127.0.0.1', own53, new Set()), 'loopback');
  assert.equal(unusableReason('fec0:0:0:ffff::2', own53, new Set()), 'placeholder fec0:0:0:ffff::');
  assert.equal(unusableReason('fe80::1', own53, new Set()), 'link-local');
  assert.equal(unusableReason('fec0::53', own53, new Set()), null, 'only the three placeholders, not all of fec0::/10');
});

test('an adapter pointed at switchyard itself is not used (own listener; a wildcard listener covers this machine\'s addresses)', () => {
  const list = [ad('Ethernet', ['192.0.2.10', '192.0.2.53'], { addresses: ['192.0.2.10', 'fe80::10'] })];
  assert.deepEqual(selectWindowsResolvers(list, { ownListeners: [{ host: '192.0.2.10', port: 53 }] }), ['udp://192.0.2.53:53']);
  assert.deepEqual(selectWindowsResolvers(list, { ownListeners: [{ host: '0.0.0.0', port: 53 }] }), ['udp://192.0.2.53:53']);
  // A listener on another port is not what port-53 resolvers reach.
  assert.deepEqual(selectWindowsResolvers(list, { ownListeners: [{ host: '192.0.2.10', port: 1053 }] }), ['udp://192.0.2.10:53', 'udp://192.0.2.53:53']);
});

test('saved servers come first, then the adapters\'; at most 8; when every adapter points at us, the saved ones remain', () => {
  const list = [ad('Ethernet', ['192.0.2.53', '198.51.100.1', '198.51.100.2', '198.51.100.3', '198.51.100.4', '198.51.100.5', '198.51.100.6', '198.51.100.7', '198.51.100.8'])];
  const r = selectWindowsResolvers(list, { ownListeners: own53, saved: ['203.0.113.53', '192.0.2.53', '127.0.0.1'] });
  assert.deepEqual(r.slice(0, 3), ['udp://203.0.113.53:53', 'udp://192.0.2.53:53', 'udp://198.51.100.1:53']);
  assert.equal(r.length, 8);
  assert.deepEqual(selectWindowsResolvers([ad('Ethernet', ['127.0.0.1'])], { ownListeners: own53, saved: ['203.0.113.53'] }), ['udp://203.0.113.53:53']);
  assert.deepEqual(selectWindowsResolvers([ad('Ethernet', ['127.0.0.1'])], { ownListeners: own53 }), [], 'nothing usable: empty, never ourselves');
});

test('hostile adapter data: junk strings are skipped; a failing adapter query leaves the saved servers', () => {
  const list = [ad('x', ['', 'not an ip', '999.1.1.1', '1.2.3', '::ffff:192.0.2.53', '192.0.2.54'])];
  assert.deepEqual(selectWindowsResolvers(list, { ownListeners: own53 }), ['udp://192.0.2.53:53', 'udp://192.0.2.54:53']);
  const errors: unknown[] = [];
  const r = windowsSystemResolvers({
    readAdapters: () => {
      throw new Error('GetAdaptersAddresses failed');
    },
    ownListeners: own53,
    savedConf: '/saved',
    readFile: () => 'nameserver 203.0.113.53\nnameserver 127.0.0.1\n',
    onError: (e) => errors.push(e),
  });
  assert.deepEqual(r, ['udp://203.0.113.53:53']);
  assert.equal(errors.length, 1);
  assert.deepEqual(windowsSystemResolvers({ readAdapters: () => [ad('e', ['192.0.2.53'])], ownListeners: own53, savedConf: '/missing', readFile: () => { throw new Error('ENOENT'); } }), ['udp://192.0.2.53:53']);
});

test('the forwarder asks the adapters (not resolv.conf) when readAdapters is given and no upstream is configured', async () => {
  const dir = tempDir('winsys');
  try {
    const resolv = join(dir, 'resolv.conf');
    writeFileSync(resolv, 'nameserver 127.0.0.99\n');
    const start = (readAdapters?: () => AdapterDnsInfo[]) =>
      startDnsForwarder({
        config: { dns: dnsConfig(), egress: builtinEgresses() },
        projectDomain: projector({}),
        resolvConf: resolv,
        stateDir: dir,
        ...(readAdapters ? { readAdapters } : {}),
      });
    writeFileSync(join(dir, 'saved-resolv.conf'), 'nameserver 203.0.113.53\n');
    const win = await start(() => [ad('Ethernet', ['127.0.0.1', 'fec0:0:0:ffff::1', '192.0.2.53'])]);
    assert.deepEqual(win.forwarder.upstreamHealth().map((h) => h.upstream), ['udp://203.0.113.53:53', 'udp://192.0.2.53:53']);
    await win.close();
    const linux = await start();
    assert.deepEqual(linux.forwarder.upstreamHealth().map((h) => h.upstream), ['udp://203.0.113.53:53'], 'without readAdapters: the saved file, then resolv.conf, as before');
    await linux.close();
  } finally {
    cleanup(dir);
  }
});
