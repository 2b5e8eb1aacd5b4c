// With no upstreams configured, the system's resolvers are used — never switchyard itself. The
// real case runs on port 53 (resolv.conf has no port): our listener on 127.0.0.77:53, unbound on
// 127.0.0.78:53, resolv.conf naming both. Needs root for port 53.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseResolvConf, startDnsForwarder, systemUpstreams } from '../../src/dns/index.ts';
import { builtinEgresses, cleanup, dig, dnsConfig, have, projector, startUnbound, tempDir } from './helpers.ts';
import type { Unbound } from './helpers.ts';

describe('resolv.conf parsing', () => {
  test('nameservers, comments, zone ids, junk', () => {
    const text = '# comment\nsearch example\nnameserver 127.0.0.1\nnameserver fe80::1%eth0\nnameserver not-an-ip\n  nameserver   ::1  \noptions edns0\nnameserver 127.0.0.1\n';
    assert.deepEqual(parseResolvConf(text), ['127.0.0.1', 'fe80::1', '::1']);
  });

  test('our own listener is skipped; the systemd-resolved stub is replaced by its upstreams', () => {
    const files: Record<string, string> = {
      '/r1': 'nameserver 127.0.0.1\nnameserver 127.0.0.2\n',
      '/stub': 'nameserver 127.0.0.53\noptions edns0 trust-ad\n',
      '/resolved': 'nameserver 127.0.0.3\nnameserver ::1\n',
    };
    const readFile = (p: string): string => {
      const t = files[p];
      if (t === undefined) throw new Error('ENOENT');
      return t;
    };
    assert.deepEqual(systemUpstreams({ resolvConf: '/r1', ownListeners: [{ host: '127.0.0.1', port: 53 }], readFile }), ['udp://127.0.0.2:53']);
    assert.deepEqual(systemUpstreams({ resolvConf: '/r1', ownListeners: [{ host: '127.0.0.1', port: 1053 }], readFile }), [
      'udp://127.0.0.1:53',
      'udp://127.0.0.2:53',
    ]);
    assert.deepEqual(systemUpstreams({ resolvConf: '/r1', ownListeners: [{ host: '0.0.0.0', port: 53 }], readFile }), []);
    assert.deepEqual(systemUpstreams({ resolvConf: '/stub', resolvedConf: '/resolved', ownListeners: [], readFile }), [
      'udp://127.0.0.3:53',
      'udp://[::1]:53',
    ]);
    assert.deepEqual(systemUpstreams({ resolvConf: '/missing', ownListeners: [], readFile }), []);
    // Servers saved before switchyard took over DNS win over the (now switchyard's) resolv.conf.
    files['/saved'] = 'nameserver 127.0.0.9\n';
    assert.deepEqual(systemUpstreams({ savedConf: '/saved', resolvConf: '/r1', ownListeners: [], readFile }), ['udp://127.0.0.9:53']);
    files['/saved-own'] = 'nameserver 127.0.0.1\n';
    assert.deepEqual(systemUpstreams({ savedConf: '/saved-own', resolvConf: '/r1', ownListeners: [{ host: '127.0.0.1', port: 53 }], readFile }), [
      'udp://127.0.0.2:53',
    ]);
  });
});

const root = typeof process.getuid === 'function' && process.getuid() === 0;
const skip = !root ? 'needs root (port 53)' : !have('unbound') || !have('dig') ? 'needs unbound and dig' : false;

describe('system resolvers, for real on port 53', { skip }, () => {
  let dir: string;
  let ub: Unbound;
  before(async () => {
    dir = tempDir('system');
    ub = await startUnbound({ dir, host: '127.0.0.78', port: 53, localData: ['sys.test. 300 IN A 127.6.0.1'] });
  });
  after(async () => {
    await ub?.stop();
    cleanup(dir);
  });

  test('a resolv.conf naming our own listener: that entry is skipped, the other used', async () => {
    const conf = join(dir, 'resolv.conf');
    writeFileSync(conf, 'nameserver 127.0.0.77\nnameserver 127.0.0.78\n');
    const fwd = await startDnsForwarder({
      config: { dns: dnsConfig({ listen: [{ host: '127.0.0.77', port: 53 }], upstreams: [], timeoutMs: 1000 }), egress: builtinEgresses() },
      projectDomain: projector({}),
      resolvConf: conf,
    });
    try {
      assert.deepEqual(fwd.forwarder.upstreamHealth().map((h) => h.upstream), ['udp://127.0.0.78:53']);
      const r = await dig('127.0.0.77', 53, ['sys.test', 'A']);
      assert.deepEqual(r.answers.map((a) => a.split(' ')[4]), ['127.6.0.1']);
      assert.equal(fwd.stats().queries, 1, 'the forwarder never asked itself');
    } finally {
      await fwd.close();
    }
  });

  test('a resolv.conf naming only our listener gives SERVFAIL, not a loop', async () => {
    const conf = join(dir, 'resolv-own.conf');
    writeFileSync(conf, 'nameserver 127.0.0.77\n');
    const fwd = await startDnsForwarder({
      config: { dns: dnsConfig({ listen: [{ host: '127.0.0.77', port: 53 }], upstreams: [] }), egress: builtinEgresses() },
      projectDomain: projector({}),
      resolvConf: conf,
    });
    try {
      const r = await dig('127.0.0.77', 53, ['sys.test', 'A']);
      assert.equal(r.status, 'SERVFAIL');
      assert.equal(fwd.stats().queries, 1);
    } finally {
      await fwd.close();
    }
  });
});
