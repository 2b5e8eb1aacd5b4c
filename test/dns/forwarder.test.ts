// The forwarder against a real unbound upstream, asked by dig/kdig: record types, CNAME chains,
// negative answers, truncation, EDNS0, HTTPS hints, coalescing, negative caching, local answers
// (blocked names, canary, static hosts) and the binding hook.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startDnsForwarder } from '../../src/dns/index.ts';
import type { DnsForwarder } from '../../src/dns/index.ts';
import type { Binding } from '../../src/flow/types.ts';
import type { DomainProjection } from '../../src/policy/types.ts';
import { buildNameQuery } from '../../src/dns/build.ts';
import { createSocket } from 'node:dgram';
import { builtinEgresses, cleanup, dig, dnsConfig, have, kdig, projector, startUnbound, tempDir, udpQuery } from './helpers.ts';
import type { Unbound } from './helpers.ts';

const txt = (n: number, name: string): string[] =>
  Array.from({ length: n }, (_, i) => `${name} 300 IN TXT "${String(i).padStart(3, '0')}${'x'.repeat(96)}"`);

const LOCAL_DATA = [
  'a.test. 300 IN A 127.1.0.1',
  'a.test. 300 IN A 127.1.0.11',
  'six.test. 300 IN AAAA fd00:5359::1',
  'h.test. 300 IN HTTPS 1 . alpn=h2 ipv4hint=127.1.0.9 ech=AEX+DQBBBAAgACA= ipv6hint=fd00:5359::9',
  'co.test. 300 IN A 127.1.0.3',
  'neg.test. 300 IN A 127.1.0.4',
  'blocked.test. 300 IN A 127.1.0.66',
  'hooked.test. 300 IN A 127.1.0.5',
  'proxied.test. 300 IN A 127.1.0.6',
  'plain.test. 300 IN A 127.1.0.8',
  ...txt(30, 'big.test.'),
  ...txt(6, 'mid.test.'),
];

const CHAIN = ['www 300 IN CNAME cdn', 'cdn 300 IN CNAME edge', 'edge 300 IN A 127.1.0.2'];

const skip = !have('unbound') || !have('dig') ? 'needs unbound and dig' : false;

describe('forwarder with an unbound upstream', { skip }, () => {
  let dir: string;
  let ub: Unbound;
  let fwd: DnsForwarder;
  let host: string;
  let port: number;
  const project = projector({ 'blocked.test': 'block' });

  before(async () => {
    dir = tempDir('fwd');
    ub = await startUnbound({
      dir,
      localData: LOCAL_DATA,
      chainZone: CHAIN,
      transparent: ['failzone.'],
      extra: 'forward-zone:\n  name: "failzone."\n  forward-addr: 127.0.0.1@9\n',
    });
    fwd = await startDnsForwarder({
      config: {
        dns: dnsConfig({
          listen: [
            { host: '127.0.0.1', port: 0 },
            { host: '::1', port: 0 },
          ],
          upstreams: [`udp://127.0.0.1:${ub.port}`],
          hosts: { 'static.test': ['127.1.0.50', 'fd00:5359::50'] },
        }),
        egress: builtinEgresses(),
      },
      projectDomain: project,
    });
    host = fwd.addresses[0]!.host;
    port = fwd.addresses[0]!.port;
  });

  after(async () => {
    await fwd?.close();
    await ub?.stop();
    cleanup(dir);
  });

  const count = (q: string): number => ub.queries().filter((x) => x === q).length;

  test('A records, and the question keeps the client\'s case', async () => {
    const r = await dig(host, port, ['A.TeSt', 'A']);
    assert.equal(r.status, 'NOERROR');
    assert.deepEqual(r.answers.map((a) => a.split(' ')[4]).sort(), ['127.1.0.1', '127.1.0.11']);
    assert.match(r.raw, /^;A\.TeSt\.\s+IN\s+A$/m);
  });

  test('AAAA over IPv6 and over TCP', async () => {
    const six = fwd.addresses[1]!;
    const r = await dig(six.host, six.port, ['six.test', 'AAAA']);
    assert.equal(r.status, 'NOERROR');
    assert.deepEqual(r.answers.map((a) => a.split(' ')[4]), ['fd00:5359::1']);
    const t = await dig(host, port, ['+tcp', 'six.test', 'AAAA']);
    assert.deepEqual(t.answers.map((a) => a.split(' ')[4]), ['fd00:5359::1']);
  });

  test('a CNAME chain is answered whole and recorded with its chain', async () => {
    const r = await dig(host, port, ['WWW.chain', 'A']);
    assert.equal(r.status, 'NOERROR');
    assert.deepEqual(
      r.answers.map((a) => a.split(' ').slice(3).join(' ')),
      ['CNAME cdn.chain.', 'CNAME edge.chain.', 'A 127.1.0.2'],
    );
    const l = fwd.store.lookup('127.1.0.2');
    assert.equal(l.state, 'fresh');
    assert.equal(l.names[0]!.name, 'www.chain');
    assert.deepEqual(l.names[0]!.chain, ['www.chain', 'cdn.chain', 'edge.chain']);
    assert.equal(l.names[0]!.upstream, `udp://127.0.0.1:${ub.port}`);
  });

  test('NXDOMAIN and NODATA carry the SOA; negative answers are cached (RFC 2308)', async () => {
    const nx = await dig(host, port, ['nx1.test', 'A']);
    assert.equal(nx.status, 'NXDOMAIN');
    assert.match(nx.raw, /AUTHORITY SECTION:\ntest\.\s+\d+\s+IN\s+SOA/);
    const nx2 = await dig(host, port, ['nx1.test', 'A']);
    assert.equal(nx2.status, 'NXDOMAIN');
    assert.equal(count('nx1.test. A'), 1, 'the second NXDOMAIN came from the cache');
    const ttl = Number(/AUTHORITY SECTION:\ntest\.\s+(\d+)/.exec(nx2.raw)![1]);
    assert.ok(ttl <= 30, `negative TTL ${ttl} is at most the SOA minimum`);

    const nd = await dig(host, port, ['neg.test', 'AAAA']);
    assert.equal(nd.status, 'NOERROR');
    assert.equal(nd.answers.length, 0);
    await dig(host, port, ['neg.test', 'AAAA']);
    assert.equal(count('neg.test. AAAA'), 1, 'NODATA cached');
  });

  test('SERVFAIL from the upstream reaches the client and is not cached', async () => {
    const r = await dig(host, port, ['x.failzone', 'A']);
    assert.equal(r.status, 'SERVFAIL');
  });

  test('a truncated UDP answer is fetched again over TCP; dig then retries over TCP to us', async () => {
    const r = await dig(host, port, ['big.test', 'TXT']);
    assert.equal(r.status, 'NOERROR');
    assert.equal(r.answers.length, 30);
    const tc = await dig(host, port, ['+ignore', 'big.test', 'TXT']);
    assert.match(tc.flags, /\btc\b/, 'UDP answer to the client is truncated');
  });

  test('EDNS0: sizes respected, no OPT for clients that sent none', async () => {
    const plain = await dig(host, port, ['+noedns', '+ignore', 'mid.test', 'TXT']);
    assert.match(plain.flags, /\btc\b/, '~700 bytes exceed 512 without EDNS');
    assert.doesNotMatch(plain.raw, /OPT PSEUDOSECTION/);
    const small = await dig(host, port, ['+noedns', 'a.test', 'A']);
    assert.doesNotMatch(small.raw, /OPT PSEUDOSECTION/);
    assert.equal(small.answers.length, 2);
    const edns = await dig(host, port, ['+bufsize=1232', 'mid.test', 'TXT']);
    assert.match(edns.raw, /OPT PSEUDOSECTION/);
    assert.doesNotMatch(edns.flags, /\btc\b/);
    assert.equal(edns.answers.length, 6);
    const k = await kdig(host, port, ['+dnssec', 'a.test', 'A']);
    assert.match(k.raw, /Version: 0; flags: do;/);
  });

  test('HTTPS hints are recorded; ECH kept for a direct name', async () => {
    const r = await dig(host, port, ['h.test', 'HTTPS']);
    assert.equal(r.status, 'NOERROR');
    assert.match(r.answers[0]!, /ech=/);
    assert.equal(fwd.store.lookup('127.1.0.9').names[0]?.name, 'h.test');
    assert.equal(fwd.store.lookup('fd00:5359:0::9').names[0]?.name, 'h.test');
  });

  test('coalescing: 20 simultaneous identical queries make one upstream query', async () => {
    const before = fwd.stats();
    const answers = await Promise.all(
      Array.from({ length: 20 }, () => udpQuery(host, port, buildNameQuery('co.test', 1).buf)),
    );
    assert.ok(answers.every((a) => a !== null && (a[3]! & 0xf) === 0));
    assert.equal(count('co.test. A'), 1);
    const s = fwd.stats();
    assert.equal(s.coalesced - before.coalesced + (s.cacheHits - before.cacheHits), 19);
  });

  test('a cache hit keeps the ID of the new query and ages TTLs', async () => {
    await dig(host, port, ['plain.test']);
    const q = buildNameQuery('plain.test', 1);
    const a = await udpQuery(host, port, q.buf);
    assert.ok(a);
    assert.equal(a.readUInt16BE(0), q.buf.readUInt16BE(0));
    assert.equal(count('plain.test. A'), 1);
  });

  test('a blocked name is answered locally and never reaches the upstream', async () => {
    const r = await dig(host, port, ['blocked.test', 'A']);
    assert.equal(r.status, 'NXDOMAIN');
    const r2 = await dig(host, port, ['sub.blocked.test', 'AAAA']);
    assert.equal(r2.status, 'NXDOMAIN');
    assert.equal(ub.queries().filter((x) => x.includes('blocked.test')).length, 0);
  });

  test('the Firefox canary gets NXDOMAIN without asking upstream', async () => {
    const r = await dig(host, port, ['use-application-dns.net', 'A']);
    assert.equal(r.status, 'NXDOMAIN');
    assert.equal(ub.queries().filter((x) => x.includes('use-application-dns')).length, 0);
  });

  test('static hosts are answered locally, by family', async () => {
    const a = await dig(host, port, ['static.test', 'A']);
    assert.deepEqual(a.answers.map((x) => x.split(' ')[4]), ['127.1.0.50']);
    const aaaa = await dig(host, port, ['static.test', 'AAAA']);
    assert.deepEqual(aaaa.answers.map((x) => x.split(' ')[4]), ['fd00:5359::50']);
    assert.equal(fwd.store.lookup('127.1.0.50').names[0]?.upstream, 'hosts');
    assert.equal(ub.queries().filter((x) => x.includes('static.test')).length, 0);
  });

  test('malformed queries get FORMERR; a reply-flagged packet gets nothing', async () => {
    const bad = Buffer.from(buildNameQuery('a.test', 1).buf.subarray(0, 20));
    const r = await udpQuery(host, port, bad);
    assert.ok(r);
    assert.equal(r[3]! & 0xf, 1);
    assert.equal(r.readUInt16BE(0), bad.readUInt16BE(0));
    const resp = Buffer.from(buildNameQuery('a.test', 1).buf);
    resp[2]! |= 0x80;
    assert.equal(await udpQuery(host, port, resp, 300), null);
  });
});

describe('null block answers', { skip }, () => {
  test('blockAnswer = null answers 0.0.0.0 and ::', async () => {
    const fwd = await startDnsForwarder({
      config: { dns: dnsConfig({ upstreams: ['udp://127.0.0.1:9'], blockAnswer: 'null' }), egress: builtinEgresses() },
      projectDomain: projector({ 'ads.test': 'block' }),
    });
    try {
      const { host, port } = fwd.addresses[0]!;
      assert.deepEqual((await dig(host, port, ['x.ads.test', 'A'])).answers.map((a) => a.split(' ')[4]), ['0.0.0.0']);
      assert.deepEqual((await dig(host, port, ['x.ads.test', 'AAAA'])).answers.map((a) => a.split(' ')[4]), ['::']);
      const mx = await dig(host, port, ['x.ads.test', 'MX']);
      assert.equal(mx.status, 'NOERROR');
      assert.equal(mx.answers.length, 0);
    } finally {
      await fwd.close();
    }
  });
});

describe('the binding hook', { skip }, () => {
  let dir: string;
  let ub: Unbound;
  before(async () => {
    dir = tempDir('hook');
    ub = await startUnbound({ dir, localData: LOCAL_DATA });
  });
  after(async () => {
    await ub?.stop();
    cleanup(dir);
  });

  // hooked.test: direct; proxied.test: may take a proxy (not uniform), so resolved on the default path.
  const project = (name: string): DomainProjection =>
    name === 'proxied.test'
      ? { egresses: ['direct', 'vpn'], uniform: false, egress: null, rule: null }
      : projector({})(name);

  test('the answer leaves only after a slow hook finished; cache hits re-run it when the sets were lost', async () => {
    let hookDone = 0;
    const batches: Binding[][] = [];
    const fwd = await startDnsForwarder({
      config: { dns: dnsConfig({ upstreams: [`udp://127.0.0.1:${ub.port}`] }), egress: builtinEgresses() },
      projectDomain: project,
      onBindings: async (batch) => {
        batches.push(batch);
        await new Promise((r) => setTimeout(r, 500));
        hookDone++;
      },
    });
    try {
      const { host, port } = fwd.addresses[0]!;
      const r = await dig(host, port, ['hooked.test', 'A']);
      assert.equal(hookDone, 1, 'the hook had finished when dig got its answer');
      assert.equal(r.answers.length, 1);
      assert.deepEqual(batches[0]!.map((b) => [b.ip, b.name, b.family, b.egresses.join()]), [['127.1.0.5', 'hooked.test', 4, 'direct']]);
      assert.equal(batches[0]![0]!.holdSeconds, batches[0]![0]!.ttlSeconds + 600);
      await dig(host, port, ['hooked.test', 'A']);
      assert.equal(batches.length, 1, 'a hit with a live set entry does not call the hook');
      fwd.forwarder.invalidateHooks();
      await dig(host, port, ['hooked.test', 'A']);
      assert.equal(batches.length, 2, 'after the sets were lost, the hit re-runs the hook');
      assert.equal(hookDone, 2);
    } finally {
      await fwd.close();
    }
  });

  test('a failing hook gives SERVFAIL for a name that may be proxied, the address for a direct one', async () => {
    const fwd = await startDnsForwarder({
      config: { dns: dnsConfig({ upstreams: [`udp://127.0.0.1:${ub.port}`] }), egress: builtinEgresses() },
      projectDomain: project,
      onBindings: async () => {
        throw new Error('nft set update failed');
      },
    });
    try {
      const { host, port } = fwd.addresses[0]!;
      const p = await dig(host, port, ['proxied.test', 'A']);
      assert.equal(p.status, 'SERVFAIL');
      assert.equal(p.answers.length, 0);
      const d = await dig(host, port, ['hooked.test', 'A']);
      assert.equal(d.status, 'NOERROR');
      assert.equal(d.answers.length, 1);
      assert.ok(fwd.stats().hookFailures >= 2);
    } finally {
      await fwd.close();
    }
  });
});

describe('robustness', { skip }, () => {
  test('an upstream that never answers gives SERVFAIL after timeout_ms, not a hang', async () => {
    const silent = createSocket('udp4');
    await new Promise<void>((r) => silent.bind(0, '127.0.0.1', () => r()));
    let seen = 0;
    silent.on('message', () => seen++);
    const fwd = await startDnsForwarder({
      config: { dns: dnsConfig({ upstreams: [`udp://127.0.0.1:${silent.address().port}`], timeoutMs: 300 }), egress: builtinEgresses() },
      projectDomain: projector({}),
    });
    try {
      const { host, port } = fwd.addresses[0]!;
      const r = await dig(host, port, ['quiet.test', 'A']);
      assert.equal(r.status, 'SERVFAIL');
      assert.equal(seen, 1, 'the upstream was asked once');
    } finally {
      await fwd.close();
      silent.close();
    }
  });

  test('per-client rate limit: excess queries are dropped, not answered', async () => {
    const fwd = await startDnsForwarder({
      config: { dns: dnsConfig({ upstreams: ['udp://127.0.0.1:9'], rateLimit: 5, hosts: { 'rl.test': ['127.1.0.77'] } }), egress: builtinEgresses() },
      projectDomain: projector({}),
    });
    const sock = createSocket('udp4');
    try {
      const { host, port } = fwd.addresses[0]!;
      let answered = 0;
      sock.on('message', () => answered++);
      await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
      for (let i = 0; i < 40; i++) sock.send(buildNameQuery('rl.test', 1).buf, port, host);
      await new Promise((r) => setTimeout(r, 500));
      assert.ok(answered >= 5 && answered <= 20, `answered ${answered} of 40 (burst 10, 5/s)`);
      assert.ok(fwd.stats().rateLimited >= 20);
    } finally {
      sock.close();
      await fwd.close();
    }
  });
});
