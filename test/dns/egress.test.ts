// Names routed to a SOCKS5 egress are resolved THROUGH it. The resolver (unbound on 127.8.0.53)
// refuses every client except 127.9.9.9, the address microsocks binds its outgoing side to
// (`-b`): an answer proves the query went through the egress, and unbound's log shows the source.
// Also: an egress that only obfuscates uses DoT, never plaintext; ECH is stripped from HTTPS
// records of names that leave by a proxy; the EgressResolver resolves through the egress.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { startDnsForwarder } from '../../src/dns/index.ts';
import type { DnsForwarder } from '../../src/dns/index.ts';
import { cleanup, dig, freePort, have, makeCerts, startUnbound, tempDir } from './helpers.ts';
import { compilePolicy, loadConfigFromString } from '../../src/policy/index.ts';
import type { Certs, Unbound } from './helpers.ts';
import { connect } from 'node:net';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

const skip = !have('unbound') || !have('dig') || !have('microsocks') || !have('tinyproxy') ? 'needs unbound, dig, microsocks and tinyproxy' : false;
const RESOLVER = '127.8.0.53';
const EGRESS_SOURCE = '127.9.9.9';

async function waitPort(port: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1', () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`nothing listens on ${port}`);
}

describe('resolution through a SOCKS5 egress', { skip }, () => {
  let dir: string;
  let certs: Certs;
  let ub: Unbound;
  let socks: ChildProcess;
  let tiny: ChildProcess;
  let fwd: DnsForwarder;
  let host: string;
  let port: number;

  before(async () => {
    dir = tempDir('egress');
    certs = await makeCerts(dir, [RESOLVER]);
    ub = await startUnbound({
      dir,
      host: RESOLVER,
      certs,
      access: ['0.0.0.0/0 refuse', '127.0.0.0/8 refuse', `${EGRESS_SOURCE}/32 allow`],
      localData: [
        'p.test. 300 IN A 127.5.0.1',
        'o.test. 300 IN A 127.5.0.2',
        'n.test. 300 IN A 127.5.0.3',
        'h.test. 300 IN HTTPS 1 . alpn=h2 ipv4hint=127.5.0.9 ech=AEX+DQBBBAAgACA= ipv6hint=fd00:5359::9',
        'd.test. 300 IN A 127.5.0.4',
        'w.test. 300 IN A 127.5.0.5',
      ],
    });
    const httpPort = await freePort();
    writeFileSync(
      join(dir, 'tinyproxy.conf'),
      [`Port ${httpPort}`, 'Listen 127.0.0.1', `Bind ${EGRESS_SOURCE}`, 'Allow 127.0.0.1', `ConnectPort ${ub.port}`, 'MaxClients 20', 'LogLevel Critical', `PidFile "${join(dir, 'tinyproxy.pid')}"`].join('\n') + '\n',
    );
    tiny = spawn('tinyproxy', ['-d', '-c', join(dir, 'tinyproxy.conf')], { stdio: 'ignore' });
    await waitPort(httpPort);
    const socksPort = await freePort();
    socks = spawn('microsocks', ['-i', '127.0.0.1', '-p', String(socksPort), '-b', EGRESS_SOURCE], { stdio: 'ignore' });
    await waitPort(socksPort);
    // The real config loader and policy engine decide which names take which egress.
    const config = loadConfigFromString(
      `version = 1
default = "direct"

[dns]
listen = ["127.0.0.1:1053"]
upstreams = ["udp://${RESOLVER}:${ub.port}"]
timeout_ms = 2000
rate_limit = 0

[egress.proxy]
type = "socks5"
endpoint = "socks5://127.0.0.1:${socksPort}"
dns = ["tcp://${RESOLVER}:${ub.port}"]

[egress.dpi]
type = "socks5"
endpoint = "socks5://127.0.0.1:${socksPort}"
obfuscates_only = true
dns = ["udp://${RESOLVER}:${ub.port}", "tls://${RESOLVER}:${ub.tlsPort}"]

[egress.dpiplain]
type = "socks5"
endpoint = "socks5://127.0.0.1:${socksPort}"
obfuscates_only = true
dns = ["udp://${RESOLVER}:${ub.port}"]

[egress.web]
type = "http"
endpoint = "http://127.0.0.1:${httpPort}"
dns = ["tcp://${RESOLVER}:${ub.port}"]

[[rule]]
egress = "proxy"
domains = ["p.test", "h.test"]

[[rule]]
egress = "web"
domains = ["w.test"]

[[rule]]
egress = "dpi"
domains = ["o.test"]

[[rule]]
egress = "dpiplain"
domains = ["n.test"]
`,
      'egress-test.toml',
    );
    config.dns.listen = [{ host: '127.0.0.1', port: 0 }]; // the loader wants a fixed port; tests take any
    config.dns.caFile = certs.ca;
    const policy = compilePolicy(config);
    fwd = await startDnsForwarder({ config, projectDomain: (n) => policy.projectDomain(n) });
    host = fwd.addresses[0]!.host;
    port = fwd.addresses[0]!.port;
  });

  after(async () => {
    await fwd?.close();
    socks?.kill();
    tiny?.kill();
    await ub?.stop();
    cleanup(dir);
  });

  test('the resolver refuses direct clients (so an answer proves the egress path)', async () => {
    const r = await dig(RESOLVER, ub.port, ['p.test', 'A']);
    assert.equal(r.status, 'REFUSED');
    const d = await dig(host, port, ['d.test', 'A']);
    assert.equal(d.status, 'SERVFAIL', 'a direct name goes to the default upstream, which refuses us');
    assert.equal(fwd.store.lookup('127.5.0.4').state, 'unknown');
  });

  test('a proxied name is resolved through the egress', async () => {
    const r = await dig(host, port, ['p.test', 'A']);
    assert.equal(r.status, 'NOERROR');
    assert.deepEqual(r.answers.map((a) => a.split(' ')[4]), ['127.5.0.1']);
    assert.ok(ub.queriesFrom().includes(`${EGRESS_SOURCE} p.test. A`), 'the resolver saw the egress address');
    assert.equal(fwd.store.lookup('127.5.0.1').names[0]?.upstream, `tcp://${RESOLVER}:${ub.port}`);
  });

  test('a name routed to an HTTP CONNECT egress is resolved through it', async () => {
    const r = await dig(host, port, ['w.test', 'A']);
    assert.deepEqual(r.answers.map((a) => a.split(' ')[4]), ['127.5.0.5']);
    assert.ok(ub.queriesFrom().includes(`${EGRESS_SOURCE} w.test. A`), 'the resolver saw tinyproxy\'s bound address');
  });

  test('an egress that only obfuscates uses DoT through itself, never plaintext', async () => {
    const r = await dig(host, port, ['o.test', 'A']);
    assert.deepEqual(r.answers.map((a) => a.split(' ')[4]), ['127.5.0.2']);
    assert.equal(fwd.store.lookup('127.5.0.2').names[0]?.upstream, `tls://${RESOLVER}:${ub.tlsPort}`);
    const plain = await dig(host, port, ['n.test', 'A']);
    assert.equal(plain.status, 'SERVFAIL', 'no DoT/DoH resolver: fail closed');
    assert.equal(ub.queries().filter((q) => q.startsWith('n.test')).length, 0);
  });

  test('ECH is stripped from HTTPS records of a proxied name; the rest is intact', async () => {
    const r = await dig(host, port, ['h.test', 'HTTPS']);
    assert.equal(r.status, 'NOERROR');
    assert.equal(r.answers.length, 1);
    assert.doesNotMatch(r.answers[0]!, /ech=/);
    assert.match(r.answers[0]!, /1 \. alpn="h2" ipv4hint=127\.5\.0\.9 ipv6hint=fd00:5359::9$/);
    assert.equal(fwd.store.lookup('127.5.0.9').names[0]?.name, 'h.test');
  });

  test('the EgressResolver resolves through the egress, and refuses block', async () => {
    assert.deepEqual(await fwd.resolver.resolve('p.test', 'proxy', 4), ['127.5.0.1']);
    await assert.rejects(fwd.resolver.resolve('d.test', 'direct', 4), /rcode 5 without a question/);
    await assert.rejects(fwd.resolver.resolve('p.test', 'block'), { code: 'SY_ERR_DNS_BLOCKED' });
    await assert.rejects(fwd.resolver.resolve('p.test', 'nosuch'), { code: 'SY_ERR_DNS_NO_UPSTREAM' });
    assert.deepEqual(await fwd.resolver.resolve('w.test', 'web', 4), ['127.5.0.5']);
    assert.deepEqual(await fwd.resolver.resolve('127.0.0.9', 'proxy'), ['127.0.0.9']);
  });
});
