// SNI / Host sniffing: a real ClientHello from Node's TLS stack (> 1500 bytes thanks to a long
// ALPN list), split across TCP writes and re-cut into several TLS records; ECH outer names;
// HTTP Host; hostile input; and the bounded wait for server-first protocols.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { classify, parseTls, parseHttp, sniff, EXT_ENCRYPTED_CLIENT_HELLO } from '../../src/front/sniff.ts';
import { domainOfFlow } from '../../src/front/domain.ts';
import * as h from './helpers.ts';
import { realClientHello } from './tls-hello.ts';

/** Re-cuts one TLS handshake record into records of at most `size` payload bytes. */
function recut(hello: Buffer, size: number): Buffer {
  const payload = hello.subarray(5, 5 + hello.readUInt16BE(3));
  const out: Buffer[] = [];
  for (let at = 0; at < payload.length; at += size) {
    const part = payload.subarray(at, at + size);
    const head = Buffer.from([0x16, 0x03, 0x01, 0, 0]);
    head.writeUInt16BE(part.length, 3);
    out.push(head, part);
  }
  return Buffer.concat(out);
}

/** Appends an extension to a ClientHello record, fixing the three enclosing lengths. */
function withExtension(hello: Buffer, type: number, data: Buffer): Buffer {
  const body = Buffer.from(hello.subarray(9)); // after record header (5) and handshake header (4)
  let p = 2 + 32;
  p += 1 + body[p]!;
  p += 2 + body.readUInt16BE(p);
  p += 1 + body[p]!;
  const extLenAt = p;
  const ext = Buffer.alloc(4 + data.length);
  ext.writeUInt16BE(type, 0);
  ext.writeUInt16BE(data.length, 2);
  data.copy(ext, 4);
  const newBody = Buffer.concat([body, ext]);
  newBody.writeUInt16BE(body.readUInt16BE(extLenAt) + ext.length, extLenAt);
  const hs = Buffer.concat([Buffer.from([1, newBody.length >> 16, (newBody.length >> 8) & 0xff, newBody.length & 0xff]), newBody]);
  const rec = Buffer.from([0x16, 3, 1, 0, 0]);
  rec.writeUInt16BE(hs.length, 3);
  return Buffer.concat([rec, hs]);
}

test('SNI from a real ClientHello larger than 1500 bytes, whole, in pieces and in several records', async () => {
  const hello = await realClientHello('big.example.com');
  assert.ok(hello.length > 1500, `ClientHello is ${hello.length} bytes`);
  assert.deepEqual(parseTls(hello), { kind: 'tls', sni: 'big.example.com', ech: false });
  for (let cut = 1; cut < hello.length; cut += 97) assert.deepEqual(classify(hello.subarray(0, cut)), { kind: 'need-more' }, `prefix ${cut}`);
  for (const size of [1, 100, 512, 1000]) assert.deepEqual(parseTls(recut(hello, size)), { kind: 'tls', sni: 'big.example.com', ech: false }, `records of ${size}`);
});

test('sniff() over a socket: a ClientHello split across many writes; bytes kept for the relay', async () => {
  const hello = recut(await realClientHello('split.example.org'), 700);
  const srv = net.createServer();
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const accepted = once(srv, 'connection');
  const c = net.connect((srv.address() as net.AddressInfo).port, '127.0.0.1');
  c.setNoDelay(true);
  const [s] = (await accepted) as [net.Socket];
  const sniffed = sniff(s, 5000);
  for (let at = 0; at < hello.length; at += 300) {
    c.write(hello.subarray(at, at + 300));
    await new Promise((r) => setTimeout(r, 5));
  }
  const r = await sniffed;
  assert.deepEqual(r.result, { kind: 'tls', sni: 'split.example.org', ech: false });
  assert.equal(r.timedOut, false);
  assert.ok(Buffer.concat(r.chunks).equals(hello), 'every byte read is handed on');
  c.destroy();
  s.destroy();
  srv.close();
});

test('an ECH ClientHello: the outer name is reported but not taken as the domain', async () => {
  const hello = withExtension(await realClientHello('public.ech.example'), EXT_ENCRYPTED_CLIENT_HELLO, Buffer.from([0, 0, 1, 0, 1, 7, 0, 0, 0, 0]));
  const r = parseTls(hello);
  assert.deepEqual(r, { kind: 'tls', sni: 'public.ech.example', ech: true });
  const cfg = h.testConfig([]);
  const policy = h.fnPolicy(cfg, (q) => (q.domain === 'a.test' ? 'x' : 'y'));
  const store = { lookup: () => ({ state: 'fresh' as const, names: [{ name: 'real.test', chain: ['real.test'], expiresAt: 0, upstream: 'u', firstSeen: 0, lastSeen: 0, stale: false }] }) };
  const d = domainOfFlow('198.18.0.9', r, store, policy, { network: 'tcp' });
  assert.deepEqual(d, { domain: 'real.test', source: 'dns', trusted: false, echOuter: 'public.ech.example' });
});

test('domain of flow: sniffed wins and is trusted only when the store agrees; store names agree or are ambiguous', () => {
  const cfg = h.testConfig([]);
  const policy = h.fnPolicy(cfg, (q) => (q.domain?.endsWith('.vpn') ? 'vpn' : 'direct'));
  const mk = (...names: string[]) => ({ lookup: () => ({ state: 'fresh' as const, names: names.map((name) => ({ name, chain: [name], expiresAt: 0, upstream: 'u', firstSeen: 0, lastSeen: 0, stale: false })) }) });
  const tlsSni = { kind: 'tls' as const, sni: 'a.vpn', ech: false };
  assert.deepEqual(domainOfFlow('1.2.3.4', tlsSni, mk('a.vpn'), policy, { network: 'tcp' }), { domain: 'a.vpn', source: 'sni', trusted: true, echOuter: null });
  assert.deepEqual(domainOfFlow('1.2.3.4', tlsSni, mk('other.vpn'), policy, { network: 'tcp' }), { domain: 'a.vpn', source: 'sni', trusted: false, echOuter: null });
  assert.deepEqual(domainOfFlow('1.2.3.4', { kind: 'http', host: 'h.test' }, undefined, policy, { network: 'tcp' }), { domain: 'h.test', source: 'http-host', trusted: false, echOuter: null });
  const none = { kind: 'none' as const, why: 'x' };
  assert.deepEqual(domainOfFlow('1.2.3.4', none, mk('new.vpn', 'old.vpn'), policy, { network: 'tcp' }), { domain: 'new.vpn', source: 'dns', trusted: false, echOuter: null });
  assert.deepEqual(domainOfFlow('1.2.3.4', none, mk('new.vpn', 'old.direct'), policy, { network: 'tcp' }), { domain: 'new.vpn', source: 'dns-ambiguous', trusted: false, echOuter: null });
  assert.deepEqual(domainOfFlow('1.2.3.4', none, mk(), policy, { network: 'tcp' }), { domain: null, source: 'none', trusted: false, echOuter: null });
});

test('HTTP Host: names, ports stripped, IP literals and junk ignored, head bounded', () => {
  assert.deepEqual(parseHttp(Buffer.from('GET / HTTP/1.1\r\nHost: WWW.Example.com:8080\r\n\r\n')), { kind: 'http', host: 'www.example.com' });
  assert.deepEqual(parseHttp(Buffer.from('GET / HTTP/1.1\r\nHost: 10.1.2.3\r\n\r\n')), { kind: 'http', host: null });
  assert.deepEqual(parseHttp(Buffer.from('GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n')), { kind: 'http', host: null });
  assert.deepEqual(parseHttp(Buffer.from('GET / HTTP/1.1\r\nHost: bad host!\r\n\r\n')), { kind: 'http', host: null });
  assert.deepEqual(parseHttp(Buffer.from('GET / HTTP/1.1\r\nHost: a')), { kind: 'need-more' });
  assert.deepEqual(parseHttp(Buffer.from('GE')), { kind: 'need-more' });
  assert.equal(parseHttp(Buffer.from('SSH-2.0-OpenSSH_9.2\r\n')).kind, 'none');
  assert.equal(parseHttp(Buffer.from(`GET / HTTP/1.1\r\nX: ${'a'.repeat(9000)}`)).kind, 'none');
});

test('hostile bytes never throw: truncations and mutations of a real ClientHello, and noise', async () => {
  const hello = await realClientHello('fuzz.example');
  let seed = 7;
  const rnd = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 0x100000000;
  for (let i = 0; i < 20000; i++) {
    const b = Buffer.from(hello);
    const n = 1 + Math.floor(rnd() * 4);
    for (let j = 0; j < n; j++) b[Math.floor(rnd() * b.length)] = Math.floor(rnd() * 256);
    const cut = b.subarray(0, Math.floor(rnd() * b.length) + 1);
    const r = classify(cut);
    assert.ok(['need-more', 'none', 'tls', 'http'].includes(r.kind));
    const noise = Buffer.from(Array.from({ length: Math.floor(rnd() * 64) }, () => Math.floor(rnd() * 256)));
    classify(noise);
  }
});

test('a server-first protocol: sniff gives up at the bound with nothing read', async () => {
  const srv = net.createServer();
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const accepted = once(srv, 'connection');
  const c = net.connect((srv.address() as net.AddressInfo).port, '127.0.0.1');
  const [s] = (await accepted) as [net.Socket];
  const r = await sniff(s, 150);
  assert.equal(r.timedOut, true);
  assert.equal(r.chunks.length, 0);
  c.destroy();
  s.destroy();
  srv.close();
});
