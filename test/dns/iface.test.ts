// Names routed to an `interface` egress are resolved THROUGH that interface (src/dns/iface-path.ts).
// The namespace test (fixtures/iface-ns.ts) proves the path three ways: nft counters in the
// resolver's namespace count arrivals per interface, unbound logs the client address, and strict
// reverse-path filtering there drops anything merely sourced from the interface's address — the
// control case shows such a query is dropped. Fail closed: a missing or down interface gives
// SERVFAIL and the resolver (reachable by the default route, as the direct name shows) sees nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { InterfaceResolver } from '../../src/egress/iface.ts';
import { InterfaceUdp, currentInterface, isLoopbackHost, makeInterfacePool } from '../../src/dns/iface-path.ts';
import { buildNameQuery, buildUpstreamQuery } from '../../src/dns/build.ts';
import { parseQuery } from '../../src/dns/wire.ts';
import { bindDgramToDevice, openExemptSocket } from '../../src/sys/linux/socket.ts';
import { createSocket } from 'node:dgram';
import type { Socket as UdpSocket } from 'node:dgram';
import { UpstreamPool } from '../../src/dns/pool.ts';
import { parseUpstream } from '../../src/dns/upstream.ts';
import { DnsError } from '../../src/errors.ts';
import type { EgressConfig } from '../../src/policy/types.ts';
import { loadConfigFromString } from '../../src/policy/index.ts';
import { have, ifaceEgress } from './helpers.ts';

type Iface = Extract<EgressConfig, { type: 'interface' }>;
const eg = (dns: string[], obfuscatesOnly = false, iface = 'lo'): Iface => ({ ...(ifaceEgress('wan', iface) as Iface), dns, obfuscatesOnly });
const base = { parse: (u: string) => parseUpstream(u), resolveHost: async () => [], timeoutMs: 500 };

test('loopback resolver hosts are recognised in every spelling', () => {
  for (const h of ['127.0.0.1', '127.8.0.53', '::1', '[::1]', 'localhost', 'LOCALHOST', '::ffff:127.0.0.1']) assert.ok(isLoopbackHost(h), h);
  for (const h of ['198.18.9.9', '::', 'dns.example', '1.1.1.1', 'fd00::1', '128.0.0.1']) assert.ok(!isLoopbackHost(h), h);
});

test('the egress dns list wins; else the default upstreams; loopback ones are dropped', () => {
  const own = makeInterfacePool(eg(['udp://198.18.9.9', 'tcp://127.0.0.1']), { ...base, defaultUrls: ['udp://198.18.7.7'] });
  assert.ok(own instanceof UpstreamPool);
  assert.deepEqual(own.health().map((h) => h.upstream), ['udp://198.18.9.9:53']);
  own.close();
  const dflt = makeInterfacePool(eg([]), { ...base, defaultUrls: ['udp://127.0.0.53', 'udp://198.18.7.7'] });
  assert.ok(dflt instanceof UpstreamPool);
  assert.deepEqual(dflt.health().map((h) => h.upstream), ['udp://198.18.7.7:53']);
  dflt.close();
});

test('nothing reachable through the interface is a clear error, never a pool', () => {
  const onlyLoop = makeInterfacePool(eg([]), { ...base, defaultUrls: ['udp://127.0.0.53'] });
  assert.ok(onlyLoop instanceof DnsError);
  assert.equal(onlyLoop.code, 'SY_ERR_DNS_NO_UPSTREAM');
  assert.match(onlyLoop.message, /default upstreams/);
  const plain = makeInterfacePool(eg(['udp://198.18.9.9'], true), { ...base, defaultUrls: [] });
  assert.ok(plain instanceof DnsError, 'obfuscates_only refuses plaintext resolvers');
  const bad = makeInterfacePool(eg(['gopher://x']), { ...base, defaultUrls: [] });
  assert.ok(bad instanceof DnsError);
  assert.equal(bad.code, 'SY_ERR_DNS_UPSTREAM_URL');
});

test('a missing interface is SY_ERR_DNS_INTERFACE', () => {
  const e = eg([], false, 'nosuch0');
  assert.throws(() => currentInterface(e, new InterfaceResolver('nosuch0')), (err: DnsError) => err.code === 'SY_ERR_DNS_INTERFACE' && /nosuch0/.test(err.message));
  assert.equal(currentInterface(eg([]), new InterfaceResolver('lo')).device, 'lo');
});

test('config: an interface egress takes a dns list; loopback resolvers in it are refused', () => {
  const cfg = (dns: string): string => `version = 1\n[egress.wan]\ntype = "interface"\ninterface = "eth1"\ndns = ${dns}\n`;
  const ok = loadConfigFromString(cfg('["udp://198.18.9.9", "tls://198.18.9.9:853", "https://dns.example/dns-query"]'), 't');
  assert.deepEqual(ok.egress.wan!.dns, ['udp://198.18.9.9', 'tls://198.18.9.9:853', 'https://dns.example/dns-query']);
  assert.deepEqual(loadConfigFromString(cfg('[]'), 't').egress.wan!.dns, []);
  for (const bad of ['udp://127.0.0.53', 'tcp://[::1]:53', 'tls://localhost']) {
    assert.throws(() => loadConfigFromString(cfg(`["udp://198.18.9.9", "${bad}"]`), 't'), (err: Error) => /egress\.wan\.dns\.1|dns\[1\]|dns.*1/.test(err.message) && /loopback/.test(err.message), bad);
  }
  assert.throws(() => loadConfigFromString(cfg('["ftp://198.18.9.9"]'), 't'), /udp:\/\/, tcp:\/\/, tls:\/\/ or https:\/\//);
  assert.throws(() => loadConfigFromString(cfg('"udp://198.18.9.9"'), 't'));
});

/** A 0x20-cased upstream query for `name` A, as the forwarder sends it. */
function outQuery(name: string) {
  const nq = buildNameQuery(name, 1);
  return buildUpstreamQuery(nq.buf, parseQuery(nq.buf));
}

/** A UDP server on 127.0.0.1 that runs `onQuery` for each datagram; counts what it received. */
async function udpServer(onQuery: (s: UdpSocket, msg: Buffer, port: number) => void): Promise<{ port: number; received: () => number; close: () => void }> {
  const s = createSocket('udp4');
  let n = 0;
  s.on('message', (m, r) => {
    n++;
    onQuery(s, m, r.port);
  });
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  return { port: s.address().port, received: () => n, close: () => s.close() };
}

/** The reply to `q` with its ID and question, an A record 127.6.0.1 (answer by pointer to the question). */
function reply(q: Buffer, over: { id?: number; upper?: boolean } = {}): Buffer {
  const qEnd = parseQuery(q).qEnd;
  const r = Buffer.concat([q.subarray(0, qEnd), Buffer.from([0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 127, 6, 0, 1])]);
  r.writeUInt16BE(0x8180, 2);
  r.writeUInt16BE(1, 6);
  r.writeUInt16BE(0, 10);
  if (over.id !== undefined) r.writeUInt16BE(over.id, 0);
  if (over.upper) for (let i = 13; i < qEnd - 4; i++) if (r[i]! >= 0x61 && r[i]! <= 0x7a) r[i] = r[i]! - 32;
  return r;
}

test('interface UDP accepts only the answer from the server asked, with our ID and our question case', async () => {
  const srv = await udpServer((s, m, port) => {
    const other = createSocket('udp4');
    other.bind(0, '127.0.0.1', () => {
      other.send(reply(m), port, '127.0.0.1', () => other.close()); // right bytes, wrong source port
      s.send(reply(m, { id: m.readUInt16BE(0) ^ 1 }), port, '127.0.0.1'); // wrong ID
      s.send(reply(m, { upper: true }), port, '127.0.0.1'); // different case
      setTimeout(() => s.send(reply(m), port, '127.0.0.1'), 50); // the real one
    });
  });
  const u = new InterfaceUdp(eg([]), new InterfaceResolver('lo'), { ...base, defaultUrls: [] });
  try {
    const q = outQuery('spoof.test');
    const a = await u.exchange('127.0.0.1', srv.port, 4, q, 2000, 'udp://127.0.0.1');
    assert.deepEqual([...a.subarray(a.length - 4)], [127, 6, 0, 1]);
    assert.equal(a.readUInt16BE(0), q.buf.readUInt16BE(0));
    assert.ok(u.ignored >= 2, `ignored ${u.ignored} forged replies`);
  } finally {
    u.close();
    srv.close();
  }
});

test('interface UDP: a failing device binder fails the query before anything is sent; a working one on lo answers', { skip: process.getuid?.() === 0 ? false : 'needs root (SO_BINDTODEVICE)' }, async () => {
  const srv = await udpServer((s, m, port) => s.send(reply(m), port, '127.0.0.1'));
  try {
    const refusing = new InterfaceUdp(eg([]), new InterfaceResolver('lo'), {
      ...base,
      defaultUrls: [],
      sockets: {
        tcp: () => {
          throw new Error('no');
        },
        bindUdp: () => {
          throw Object.assign(new Error('setsockopt(SO_BINDTODEVICE): EPERM'), { errno: 1 });
        },
      },
    });
    await assert.rejects(refusing.exchange('127.0.0.1', srv.port, 4, outQuery('a.test'), 1000, 'x'), (e: DnsError) => e.code === 'SY_ERR_DNS_INTERFACE' && /EPERM/.test(e.message));
    assert.equal(srv.received(), 0, 'nothing was sent: no quieter fallback to an unbound socket');
    const bound = new InterfaceUdp(eg([]), new InterfaceResolver('lo'), {
      ...base,
      defaultUrls: [],
      sockets: { tcp: (req) => openExemptSocket({ family: req.family, device: req.device }, req.socketOptions).socket, bindUdp: bindDgramToDevice },
    });
    const a = await bound.exchange('127.0.0.1', srv.port, 4, outQuery('b.test'), 1000, 'x');
    assert.deepEqual([...a.subarray(a.length - 4)], [127, 6, 0, 1]);
    assert.equal(srv.received(), 1);
    const gone = new InterfaceUdp(eg([], false, 'nosuch0'), new InterfaceResolver('nosuch0'), { ...base, defaultUrls: [] });
    await assert.rejects(gone.exchange('127.0.0.1', srv.port, 4, outQuery('c.test'), 1000, 'x'), (e: DnsError) => e.code === 'SY_ERR_DNS_INTERFACE');
    assert.equal(srv.received(), 1, 'a missing interface sends nothing');
  } finally {
    srv.close();
  }
});

test('interface UDP: silence is a timeout, not a hang', async () => {
  const srv = await udpServer(() => {});
  const u = new InterfaceUdp(eg([]), new InterfaceResolver('lo'), { ...base, defaultUrls: [] });
  try {
    await assert.rejects(u.exchange('127.0.0.1', srv.port, 4, outQuery('slow.test'), 200, 'x'), (e: DnsError) => e.code === 'SY_ERR_DNS_TIMEOUT');
  } finally {
    srv.close();
  }
});

const canNs = process.getuid?.() === 0 && have('unshare') && have('ip') && have('nsenter') && have('nft') && have('unbound') && have('dig') && have('openssl');

test('interface egress names are resolved through the interface, and fail closed', { skip: canNs ? false : 'needs root, unshare, ip, nsenter, nft, unbound, dig and openssl' }, async () => {
  const fixture = new URL('./fixtures/iface-ns.ts', import.meta.url).pathname;
  const tsx = new URL('../../node_modules/tsx/dist/loader.mjs', import.meta.url).pathname;
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'NODE_TEST_CONTEXT'));
  const p = spawn('unshare', ['--mount', '--net', '--', process.execPath, '--import', tsx, fixture], { stdio: ['ignore', 'pipe', 'pipe'], env });
  let stdout = '';
  let stderr = '';
  p.stdout.on('data', (d) => (stdout += d));
  p.stderr.on('data', (d) => (stderr += d));
  const timer = setTimeout(() => p.kill('SIGKILL'), 60_000);
  await once(p, 'exit');
  clearTimeout(timer);
  const last = stdout.trim().split('\n').at(-1) ?? '';
  let r: Record<string, any>;
  try {
    r = JSON.parse(last) as Record<string, any>;
  } catch {
    throw new Error(`fixture printed no result: ${stderr.slice(-2000)} ${stdout.slice(-2000)}`);
  }
  assert.equal(r.error, undefined, String(r.error));

  // The default route reaches the resolver: a direct name arrives on vb0 from va0's address.
  assert.equal(r.direct.status, 'NOERROR');
  assert.deepEqual(r.direct.from, ['198.18.1.1']);
  assert.ok(r.direct.via.vb0 >= 1 && r.direct.via.vb2 === 0, JSON.stringify(r.direct.via));

  const through = (k: string, what: string, packets = 1): void => {
    const x = r[k];
    assert.equal(x.status, 'NOERROR', `${what}: ${x.status}`);
    assert.ok(x.answers >= 1, `${what}: answered`);
    assert.ok(x.from.length >= 1 && x.from.every((a: string) => a === '198.18.2.1'), `${what}: resolver saw ${JSON.stringify(x.from)}`);
    assert.ok(x.via.vb2 >= packets, `${what}: arrived on vb2 (${JSON.stringify(x.via)})`);
    assert.equal(x.via.vb0, 0, `${what}: nothing on the default route (${JSON.stringify(x.via)})`);
  };
  through('wan', 'UDP to the [dns] upstream through va2');
  through('big', 'truncated UDP answer retried over TCP through va2', 2);
  assert.equal(r.big.answers, 40, 'the whole TXT set came back over TCP');
  assert.equal(r.big.from.length, 2, 'asked twice: UDP, then TCP');
  through('tcp', 'tcp:// resolver through va2');
  through('tls', 'DoT through va2');
  through('doh', 'DoH through va2');
  through('ownList', 'a loopback entry in the egress dns list is skipped, the next one is used');

  // Fail closed: missing interface, interface down — SERVFAIL, and the resolver saw nothing.
  for (const k of ['gone', 'down']) {
    assert.equal(r[k].status, 'SERVFAIL', k);
    assert.deepEqual(r[k].from, [], `${k}: the resolver saw no query`);
    assert.deepEqual(r[k].via, { vb0: 0, vb2: 0, vb3: 0 }, `${k}: no packet reached the resolver's namespace`);
  }

  // The EgressResolver (what the interface connector uses for names) takes the same path.
  assert.deepEqual(r.resolver, ['198.18.50.6']);
  assert.deepEqual(r.resolverFrom, ['198.18.2.1']);
  assert.deepEqual(r.resolverVia, { vb0: 0, vb2: 1 });

  // Control: source address only (no SO_BINDTODEVICE) leaves by va0 and is dropped by rp_filter.
  assert.equal(r.sourceOnly, 'SERVFAIL');
  assert.deepEqual(r.sourceOnlyFrom, []);
});
