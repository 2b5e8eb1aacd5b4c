// DoT and DoH upstreams: unbound serving TLS (RFC 7858) and HTTPS (RFC 8484) with a certificate
// from a CA made here. A certificate from another CA must give SERVFAIL; upstream host names are
// resolved by bootstrap addresses or static hosts; failover moves on from a dead upstream.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startDnsForwarder } from '../../src/dns/index.ts';
import { builtinEgresses, cleanup, dig, dnsConfig, freePort, have, makeCerts, projector, startUnbound, tempDir } from './helpers.ts';
import type { Certs, Unbound } from './helpers.ts';
import type { DnsConfig } from '../../src/policy/types.ts';
import { loadConfigFromString } from '../../src/policy/config/load.ts';

const skip = !have('unbound') || !have('dig') || !have('openssl') ? 'needs unbound, dig and openssl' : false;

describe('encrypted upstreams', { skip }, () => {
  let dir: string;
  let certs: Certs;
  let ub: Unbound;

  before(async () => {
    dir = tempDir('tls');
    certs = await makeCerts(dir);
    ub = await startUnbound({
      dir,
      certs,
      localData: ['t.test. 300 IN A 127.2.0.1', 'cafile.t.test. 300 IN A 127.2.0.3', 'cafile2.t.test. 300 IN A 127.2.0.3', 'dns.test. 300 IN A 127.0.0.1', 'g.test. 300 IN A 127.2.0.2'],
    });
  });
  after(async () => {
    await ub?.stop();
    cleanup(dir);
  });

  async function ask(over: Partial<DnsConfig>, name: string): Promise<{ status: string; answers: string[]; upstream?: string }> {
    const fwd = await startDnsForwarder({ config: { dns: dnsConfig(over), egress: builtinEgresses() }, projectDomain: projector({}) });
    try {
      const { host, port } = fwd.addresses[0]!;
      const r = await dig(host, port, [name, 'A']);
      const l = r.answers.length ? fwd.store.lookup(r.answers[0]!.split(' ')[4]!) : null;
      return { status: r.status, answers: r.answers.map((a) => a.split(' ')[4]!), ...(l?.names[0] ? { upstream: l.names[0].upstream } : {}) };
    } finally {
      await fwd.close();
    }
  }

  test('DoT with the test CA, by IP (certificate IP SAN)', async () => {
    const r = await ask({ upstreams: [`tls://127.0.0.1:${ub.tlsPort}?ca=${certs.ca}`] }, 't.test');
    assert.equal(r.status, 'NOERROR');
    assert.deepEqual(r.answers, ['127.2.0.1']);
    assert.equal(r.upstream, `tls://127.0.0.1:${ub.tlsPort}`);
    assert.ok(ub.queries().includes('t.test. A'));
  });

  test('DoT trusting [dns] ca_file on top of the system roots', async () => {
    const r = await ask({ upstreams: [`tls://127.0.0.1:${ub.tlsPort}`], caFile: certs.ca }, 't.test');
    assert.deepEqual(r.answers, ['127.2.0.1']);
  });

  test('[dns] ca_file from a TOML config: DoT through startDnsForwarder trusts the test CA', async () => {
    const toml = [
      'version = 1',
      '[dns]',
      `listen = ["127.0.0.1:${await freePort()}"]`,
      `upstreams = ["tls://127.0.0.1:${ub.tlsPort}"]`,
      `ca_file = ${JSON.stringify(certs.ca)}`,
      'rate_limit = 0',
    ].join('\n');
    const config = loadConfigFromString(toml, 'ca-file.toml');
    assert.equal(config.dns.caFile, certs.ca);
    const before = ub.queries().length;
    const fwd = await startDnsForwarder({ config, projectDomain: projector({}) });
    try {
      const { host, port } = fwd.addresses[0]!;
      const r = await dig(host, port, ['cafile.t.test', 'A']);
      assert.equal(r.status, 'NOERROR');
      assert.deepEqual(r.answers.map((a) => a.split(' ')[4]), ['127.2.0.3']);
      assert.ok(ub.queries().slice(before).includes('cafile.t.test. A'), 'the DoT upstream was asked');
    } finally {
      await fwd.close();
    }
    // The same config without the key does not trust the test CA (the key is what made it work).
    const without = loadConfigFromString(toml.replace(/^ca_file.*$/m, ''), 'no-ca-file.toml');
    const fwd2 = await startDnsForwarder({ config: without, projectDomain: projector({}) });
    try {
      const { host, port } = fwd2.addresses[0]!;
      assert.equal((await dig(host, port, ['cafile2.t.test', 'A'])).status, 'SERVFAIL');
    } finally {
      await fwd2.close();
    }
    assert.throws(() => loadConfigFromString(toml.replace(/^ca_file.*$/m, 'ca_file = "certs/ca.pem"'), 'rel.toml'), /ca_file.*absolute/);
  });

  test('DoT by name, the name from static hosts (never the OS resolver)', async () => {
    const r = await ask({ upstreams: [`tls://dns.test:${ub.tlsPort}?ca=${certs.ca}`], hosts: { 'dns.test': ['127.0.0.1'] } }, 't.test');
    assert.deepEqual(r.answers, ['127.2.0.1']);
  });

  test('DoH POST by name, the name resolved by the bootstrap address', async () => {
    const r = await ask(
      { upstreams: [`https://dns.test:${ub.httpsPort}/dns-query?ca=${certs.ca}`], bootstrap: [`127.0.0.1:${ub.port}`] },
      't.test',
    );
    assert.equal(r.status, 'NOERROR');
    assert.deepEqual(r.answers, ['127.2.0.1']);
    assert.ok(ub.queries().includes('dns.test. A'), 'bootstrap asked the bootstrap server for the DoH host');
  });

  test('DoH GET', async () => {
    const r = await ask({ upstreams: [`https://127.0.0.1:${ub.httpsPort}/dns-query?ca=${certs.ca}&sni=dns.test&method=get`] }, 'g.test');
    assert.deepEqual(r.answers, ['127.2.0.2']);
  });

  test('a certificate signed by another CA gives SERVFAIL (DoT and DoH)', async () => {
    const before = ub.queries().length;
    const dot = await ask({ upstreams: [`tls://127.0.0.1:${ub.tlsPort}?ca=${certs.wrongCa}`] }, 'wrong1.test');
    assert.equal(dot.status, 'SERVFAIL');
    const doh = await ask({ upstreams: [`https://127.0.0.1:${ub.httpsPort}/dns-query?ca=${certs.wrongCa}`] }, 'wrong2.test');
    assert.equal(doh.status, 'SERVFAIL');
    // Without ?ca= the system store does not know the test CA either.
    const sys = await ask({ upstreams: [`tls://127.0.0.1:${ub.tlsPort}`] }, 'wrong3.test');
    assert.equal(sys.status, 'SERVFAIL');
    assert.equal(ub.queries().slice(before).filter((q) => q.startsWith('wrong')).length, 0, 'no query crossed an untrusted TLS session');
  });

  test('a certificate for another name gives SERVFAIL', async () => {
    const r = await ask({ upstreams: [`tls://127.0.0.1:${ub.tlsPort}?ca=${certs.ca}&sni=other.test`] }, 't.test');
    assert.equal(r.status, 'SERVFAIL');
  });

  test('failover: a dead upstream and an untrusted one are skipped', async () => {
    const r = await ask(
      {
        upstreams: [`tls://127.0.0.1:${ub.tlsPort}?ca=${certs.wrongCa}`, 'tcp://127.0.0.1:9', `udp://127.0.0.1:${ub.port}`],
      },
      't.test',
    );
    assert.deepEqual(r.answers, ['127.2.0.1']);
    assert.equal(r.upstream, `udp://127.0.0.1:${ub.port}`);
  });
});
