// The mixed inbound with real clients (curl) and real egress peers. Which path a flow took is
// proven by the address it arrived from: direct 127.0.0.1, microsocks 127.0.0.2 (-b), dante
// 127.0.0.3 (external:), tinyproxy 127.0.0.4 (Bind).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';
import { once } from 'node:events';
import * as h from './helpers.ts';
import { allowed } from '../../src/front/mixed.ts';

const run = promisify(execFile);
const need = ['curl', 'microsocks', 'danted', 'tinyproxy'].filter((c) => !h.has(c));
const skip = need.length ? `needs ${need.join(', ')}` : false;

let web: h.RecordingServer;
let ms: h.Peer, dante: h.Peer, tp: h.Peer;

before(async () => {
  if (skip) return;
  web = await h.recordingServer('127.0.0.1', (s) => {
    let head = '';
    s.on('data', (d) => {
      head += d;
      if (head.includes('\r\n\r\n')) {
        const host = /\r\nhost: ([^\r]*)/i.exec(head)?.[1] ?? '';
        const body = `host=${host} line=${head.split('\r\n')[0]}`;
        s.end(`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`);
      }
    });
  });
  ms = await h.startMicrosocks('127.0.0.2');
  dante = await h.startDante('127.0.0.3');
  tp = await h.startTinyproxy('127.0.0.4');
});

after(async () => {
  if (skip) return;
  await Promise.all([ms.stop(), dante.stop(), tp.stop(), web.close()]);
});

const names = { 'ms.test': ['127.0.0.1'], 'dante.test': ['127.0.0.1'], 'tp.test': ['127.0.0.1'], 'direct.test': ['127.0.0.1'] };
const byName = (q: { domain?: string }) => (q.domain?.endsWith('.test') ? q.domain.slice(0, -5) : 'direct');

async function curl(args: string[]): Promise<string> {
  const { stdout } = await run('curl', ['-sS', '--max-time', '10', ...args]);
  return stdout;
}

test('curl --socks5-hostname, -x (absolute-form) and -p -x (CONNECT) reach the chosen egress', { skip }, async () => {
  const f = await h.startFront({
    egresses: [h.egressSocks('ms', ms.port, { sendDomain: false }), h.egressSocks('dante', dante.port, { sendDomain: false }), h.egressHttp('tp', tp.port, { sendDomain: false })],
    pick: byName,
    resolve: names,
  });
  try {
    const expect: Record<string, string> = { ms: '127.0.0.2', dante: '127.0.0.3', tp: '127.0.0.4', direct: '127.0.0.1' };
    for (const [eg, from] of Object.entries(expect)) {
      const url = `http://${eg}.test:${web.port}/p?q=1`;
      const modes = [['--socks5-hostname', `127.0.0.1:${f.port}`], ['-x', `http://127.0.0.1:${f.port}`], ['-p', '-x', `http://127.0.0.1:${f.port}`]];
      for (const m of modes) {
        const before = web.arrivals.length;
        const body = await curl([...m, url]);
        assert.match(body, new RegExp(`host=${eg}.test:${web.port}`), `${eg} via ${m[0]}`);
        assert.deepEqual(web.arrivals.slice(before), [from], `${eg} via ${m.join(' ')} arrives from ${from}`);
        if (m[0] === '-x') assert.match(body, /line=GET \/p\?q=1 HTTP\/1\.1/, 'absolute-form rewritten to origin-form');
      }
    }
    const rec = f.flows.filter((e) => e.outcome === 'connected').map((e) => e.record);
    assert.ok(rec.some((r) => r.inbound === 'socks5' && r.domainSource === 'socks' && r.domain === 'ms.test' && r.egress === 'ms'));
    assert.ok(rec.some((r) => r.inbound === 'http' && r.domainSource === 'http-proxy' && r.domain === 'tp.test' && r.egress === 'tp'));
  } finally {
    await f.close();
  }
});

/** Pushes `size` bytes each way at once and returns both sides' sha256. */
async function bothWays(port: number, connect: (port: number) => Promise<{ socket: net.Socket; rest: Buffer }>, size: number) {
  const up = randomBytes(1 << 20);
  const down = randomBytes(1 << 20);
  const hashes = { sentUp: createHash('sha256'), gotUp: createHash('sha256'), sentDown: createHash('sha256'), gotDown: createHash('sha256') };
  let uploadDone!: () => void;
  const uploaded = new Promise<void>((r) => (uploadDone = r));
  const srv = net.createServer({ allowHalfOpen: true }, (s) => {
    s.on('data', (d) => hashes.gotUp.update(d));
    s.on('end', () => uploadDone());
    pump(s, down, size, hashes.sentDown);
  });
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const target = (srv.address() as net.AddressInfo).port;
  void port;
  const { socket: c, rest } = await connect(target);
  hashes.gotDown.update(rest);
  const done = new Promise<void>((r) => c.on('end', r));
  c.on('data', (d) => hashes.gotDown.update(d));
  pump(c, up, size, hashes.sentUp);
  // Both directions must finish: the download's end says nothing about the upload.
  await Promise.all([done, uploaded]);
  c.destroy();
  srv.close();
  return Object.fromEntries(Object.entries(hashes).map(([k, v]) => [k, v.digest('hex')]));
}

function pump(s: net.Socket, block: Buffer, size: number, hash: ReturnType<typeof createHash>) {
  let left = size;
  const go = () => {
    while (left > 0) {
      const b = left >= block.length ? block : block.subarray(0, left);
      left -= b.length;
      hash.update(b);
      if (!s.write(b)) return void s.once('drain', go);
    }
    s.end();
  };
  go();
}

const SIZE = Math.max(1, Math.round(100 * Number(process.env.SWITCHYARD_TEST_SCALE ?? 1))) * 1024 * 1024;

test(`${SIZE >> 20} MB both ways with matching sha256, direct and through dante`, { skip }, async () => {
  const f = await h.startFront({ egresses: [h.egressSocks('dante', dante.port, { sendDomain: false })], pick: (q) => (q.domain === 'dante.test' ? 'dante' : 'direct'), resolve: names });
  try {
    for (const host of ['127.0.0.1', 'dante.test']) {
      const r = await bothWays(f.port, async (port) => {
        const { rep, socket, rest } = await h.socksConnect(f.port, host, port);
        assert.equal(rep, 0);
        return { socket, rest };
      }, SIZE);
      assert.equal(r.gotUp, r.sentUp, 'upload intact');
      assert.equal(r.gotDown, r.sentDown, 'download intact');
    }
    assert.deepEqual(f.flows.map((e) => e.record.egress), ['direct', 'dante']);
  } finally {
    await f.close();
  }
});

// microsocks closes both directions on the first EOF, so half-close goes through dante.
test('half-close is carried both ways (client FIN first, server answers after it)', { skip }, async () => {
  const f = await h.startFront({ egresses: [h.egressSocks('dante', dante.port, { sendDomain: false })], resolve: names });
  const srv = net.createServer({ allowHalfOpen: true }, (s) => {
    const got: Buffer[] = [];
    s.on('data', (d) => got.push(d));
    s.on('end', () => setTimeout(() => s.end(`got ${Buffer.concat(got).toString()} then FIN`), 50));
  });
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  try {
    for (const via of ['direct', 'dante']) {
      f.deps.policy = h.fnPolicy(f.deps.policy.config, () => via);
      const { rep, socket } = await h.socksConnect(f.port, 'dante.test', (srv.address() as net.AddressInfo).port);
      assert.equal(rep, 0);
      assert.equal(f.flows.at(-1)?.record.egress, via);
      const chunks: Buffer[] = [];
      socket.on('data', (d) => chunks.push(d));
      socket.end('ping');
      await once(socket, 'end');
      assert.equal(Buffer.concat(chunks).toString(), 'got ping then FIN', via);
      socket.destroy();
    }
  } finally {
    srv.close();
    await f.close();
  }
});

test('a stopped egress: exact SOCKS reply byte and HTTP status, a reachable target counts 0, health down', { skip }, async () => {
  const victim = await h.startMicrosocks('127.0.0.6');
  const target = await h.recordingServer('127.0.0.1', (s) => s.end('x'));
  const f = await h.startFront({ egresses: [h.egressSocks('vpn', victim.port, { sendDomain: false, health: { target: { host: '127.0.0.1', port: target.port }, intervalMs: 60_000, timeoutMs: 4000 } })], pick: () => 'vpn', resolve: { 'vpn.test': ['127.0.0.1'] } });
  try {
    assert.equal((await f.egress.probe('vpn')).state, 'up');
    for (let i = 0; i < 100 && target.arrivals.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(target.arrivals, ['127.0.0.6'], 'the probe went through the egress');
    const seen = target.arrivals.length;
    await victim.stop();
    // First flow finds the proxy gone: 0x03 (network unreachable), egress marked down.
    assert.equal((await h.socksConnect(f.port, 'vpn.test', target.port)).rep, 0x03);
    assert.equal(f.egress.health('vpn')?.state, 'down');
    // Later flows are refused by the health state itself: the same byte, no connect attempt.
    assert.equal((await h.socksConnect(f.port, 'vpn.test', target.port)).rep, 0x03);
    const r = await h.httpProxyRequest(f.port, `CONNECT vpn.test:${target.port} HTTP/1.1\r\nHost: vpn.test:${target.port}\r\n\r\n`);
    assert.equal(r.status, 503);
    assert.match(r.text, /SY_ERR_EGRESS_DOWN/);
    const g = await h.httpProxyRequest(f.port, `GET http://vpn.test:${target.port}/ HTTP/1.1\r\nHost: x\r\n\r\n`);
    assert.equal(g.status, 503);
    assert.equal(target.arrivals.length, seen, 'the target, reachable directly, saw nothing');
    assert.equal((await f.egress.probe('vpn')).state, 'down', 'probe through the egress agrees');
  } finally {
    await f.close();
    await victim.stop();
    await target.close();
  }
});

test('reply codes: block 0x02/403, refused 0x05/502, BIND 0x07, bad ATYP 0x08, garbage closed', { skip }, async () => {
  const f = await h.startFront({ pick: (q) => (q.port === 9 ? 'block' : 'direct') });
  const closedPort = await h.freePort();
  try {
    assert.equal((await h.socksConnect(f.port, '127.0.0.1', 9)).rep, 0x02);
    assert.equal((await h.httpProxyRequest(f.port, 'CONNECT 127.0.0.1:9 HTTP/1.1\r\n\r\n')).status, 403);
    assert.equal((await h.socksConnect(f.port, '127.0.0.1', closedPort)).rep, 0x05);
    assert.equal((await h.httpProxyRequest(f.port, `CONNECT 127.0.0.1:${closedPort} HTTP/1.1\r\n\r\n`)).status, 502);
    const raw = async (bytes: number[]) => {
      const s = net.connect(f.port, '127.0.0.1');
      s.write(Buffer.from(bytes));
      const chunks: Buffer[] = [];
      s.on('data', (d) => chunks.push(d));
      await once(s, 'close');
      return Buffer.concat(chunks);
    };
    assert.deepEqual([...(await raw([5, 1, 0, 5, 2, 0, 1, 127, 0, 0, 1, 0, 80]))].slice(0, 4), [5, 0, 5, 0x07]);
    assert.deepEqual([...(await raw([5, 1, 0, 5, 1, 0, 9, 1, 2]))].slice(0, 4), [5, 0, 5, 0x08]);
    assert.deepEqual([...(await raw([5, 1, 2]))], [5, 0xff], 'no acceptable method');
    assert.equal((await raw([0x16, 3, 1, 0, 5])).length, 0, 'not SOCKS, not HTTP: closed');
    assert.equal((await h.httpProxyRequest(f.port, 'GET /relative HTTP/1.1\r\n\r\n')).status, 400);
    assert.equal((await h.httpProxyRequest(f.port, `GET http://x/${'a'.repeat(20000)} HTTP/1.1\r\n\r\n`)).status, 431);
  } finally {
    await f.close();
  }
});

test('proxy authentication on the inbound (SOCKS5 RFC 1929 and HTTP 407)', { skip }, async () => {
  const f = await h.startFront({ inbound: { auth: { username: 'me', password: 's3cret' } } });
  try {
    const ok = await h.socksConnect(f.port, '127.0.0.1', web.port, { user: 'me', pass: 's3cret' });
    assert.equal(ok.rep, 0);
    ok.socket.destroy();
    assert.equal((await h.socksConnect(f.port, '127.0.0.1', web.port, { user: 'me', pass: 'nope' })).rep, 0x101);
    assert.equal((await h.socksConnect(f.port, '127.0.0.1', web.port)).rep, 0xff);
    assert.equal((await h.httpProxyRequest(f.port, `CONNECT 127.0.0.1:${web.port} HTTP/1.1\r\n\r\n`)).status, 407);
    const body = await curl(['-x', `http://me:s3cret@127.0.0.1:${f.port}`, `http://127.0.0.1:${web.port}/`]);
    assert.match(body, /host=127\.0\.0\.1/);
  } finally {
    await f.close();
  }
});

test('localhost and loopback never go to a remote proxy', { skip }, async () => {
  const f = await h.startFront({ egresses: [h.egressSocks('ms', ms.port)], pick: () => 'ms' });
  try {
    const before = web.arrivals.length;
    const body = await curl(['--socks5-hostname', `127.0.0.1:${f.port}`, `http://localhost:${web.port}/`]);
    assert.match(body, /host=localhost/);
    assert.deepEqual(web.arrivals.slice(before), ['127.0.0.1'], 'arrived directly, not from microsocks (127.0.0.2)');
    assert.equal(f.flows.at(-1)?.record.egress, 'direct');
  } finally {
    await f.close();
  }
});

test('allow-from: loopback always, others only inside a listed prefix', () => {
  const inbound = h.inboundConfig({ allowFrom: [{ family: 4, address: '192.168.1.0', prefix: 24 }, { family: 6, address: 'fd00::', prefix: 8 }] });
  assert.equal(allowed({ inbound }, '127.0.0.9'), true);
  assert.equal(allowed({ inbound }, '::1'), true);
  assert.equal(allowed({ inbound }, '192.168.1.77'), true);
  assert.equal(allowed({ inbound }, '::ffff:192.168.1.77'), true);
  assert.equal(allowed({ inbound }, '192.168.2.1'), false);
  assert.equal(allowed({ inbound }, 'fd12::1'), true);
  assert.equal(allowed({ inbound }, 'fe80::1'), false);
  assert.equal(allowed({ inbound: h.inboundConfig() }, '10.0.0.1'), false);
  assert.equal(allowed({ inbound }, undefined), false);
});

test('session table: listing with live bytes, close one, close all of an egress, cap', { skip }, async () => {
  const f = await h.startFront({ egresses: [h.egressSocks('ms', ms.port, { sendDomain: false })], pick: byName, resolve: names, maxSessions: 3 });
  const echo = await h.recordingServer();
  try {
    const a = await h.socksConnect(f.port, '127.0.0.1', echo.port);
    const b = await h.socksConnect(f.port, '127.0.0.1', echo.port);
    const c = await h.socksConnect(f.port, 'ms.test', web.port);
    a.socket.write('hello');
    await once(a.socket, 'data');
    const list = f.sessions.list();
    assert.equal(list.length, 3);
    const ra = list.find((r) => r.bytesUp === 5);
    assert.ok(ra && ra.bytesDown === 5 && ra.egress === 'direct' && ra.inbound === 'socks5');
    // Cap: a fourth connection is closed at once.
    const d = net.connect(f.port, '127.0.0.1');
    d.on('error', () => {});
    await once(d, 'close');
    assert.equal(f.sessions.refusedByCap, 1);
    // Close all of egress ms: only c goes.
    assert.equal(f.sessions.closeEgress('ms'), 1);
    await once(c.socket, 'close');
    assert.ok(f.sessions.close(ra.id));
    await once(a.socket, 'close');
    b.socket.destroy();
    for (let i = 0; i < 50 && f.sessions.size > 0; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(f.sessions.size, 0);
  } finally {
    await echo.close();
    await f.close();
  }
});
