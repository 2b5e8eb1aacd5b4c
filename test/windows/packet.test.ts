// Golden packets for src/redirect/windows/packet.ts: scapy (an independent implementation) builds
// IPv4 and IPv6 packets, with IPv4 options and IPv6 extension headers; our parser reads them, our
// rewrites reflect them to the listener and back, and scapy checks every rewritten packet's
// checksums and fields. Then hostile input: truncations and mutations must end in a named refusal.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { parseTcp, reflectToApp, reflectToListener, fixChecksums, type TcpPacket, type ParseFailure } from '../../src/redirect/windows/packet.ts';
import { Scapy, scapyMissing, type BuildSpec } from './helpers/scapy.ts';

const missing = scapyMissing();
let scapy: Scapy;
before(() => {
  if (!missing) scapy = new Scapy();
});
after(() => scapy?.close());

const LISTEN = 47001;

const CASES: { name: string; spec: BuildSpec }[] = [
  { name: 'IPv4 SYN', spec: { family: 4, src: '198.18.0.10', dst: '198.19.7.7', sport: 50123, dport: 443, flags: 'S' } },
  { name: 'IPv4 with IP options, data', spec: { family: 4, src: '198.18.0.10', dst: '198.19.7.7', sport: 50124, dport: 80, flags: 'PA', seq: 5, ack: 9, payload: Buffer.from('GET / HTTP/1.1\r\n\r\n').toString('hex'), ipopts: true } },
  { name: 'IPv4 odd-length payload', spec: { family: 4, src: '198.18.0.10', dst: '198.19.7.7', sport: 50125, dport: 80, flags: 'PA', payload: 'abcdef01ff' } },
  { name: 'IPv6 SYN', spec: { family: 6, src: '2001:db8::10', dst: '2001:db8:1::7', sport: 50200, dport: 443, flags: 'S' } },
  {
    name: 'IPv6 with hop-by-hop, destination options, routing (segleft 0), atomic fragment',
    spec: { family: 6, src: '2001:db8::10', dst: '2001:db8:1::7', sport: 50201, dport: 443, flags: 'PA', payload: '16030100', ext: ['hbh', 'dst', 'routing', 'frag'] },
  },
  { name: 'IPv6 FIN with destination options', spec: { family: 6, src: '2001:db8::10', dst: '2001:db8:1::7', sport: 50202, dport: 8443, flags: 'FA', ext: ['dst'] } },
];

function parsed(b: Buffer): TcpPacket {
  const r = parseTcp(b);
  assert.ok(r.ok, `parse failed: ${r.ok ? '' : r.reason}`);
  return r.pkt;
}

test('parse agrees with scapy on golden packets', async (t) => {
  if (missing) return t.skip(missing);
  for (const c of CASES) {
    const b = await scapy.build(c.spec);
    const p = parsed(b);
    const s = await scapy.check(b);
    assert.ok(s.tcp_chksum_ok && s.ip_chksum_ok, `${c.name}: scapy built a valid packet`);
    assert.deepEqual([p.family, p.src, p.dst, p.srcPort, p.dstPort], [s.family, s.src, s.dst, s.sport, s.dport], c.name);
    assert.equal(p.totalLength, b.length, c.name);
    // Our checksum routine reproduces scapy's value on the untouched packet.
    const copy = Buffer.from(b);
    fixChecksums(copy, p);
    assert.deepEqual(copy, b, `${c.name}: checksums recomputed identically`);
  }
});

test('reflection to the listener and back: scapy validates every rewritten packet', async (t) => {
  if (missing) return t.skip(missing);
  for (const c of CASES) {
    const b = await scapy.build(c.spec);
    const before = Buffer.from(b);
    const p = parsed(b);
    // App → server becomes "server : app port" → "app : listener".
    const toL = reflectToListener(b, p, LISTEN);
    assert.deepEqual(b, before, 'input untouched');
    const s1 = await scapy.check(toL);
    assert.ok(s1.tcp_chksum_ok, `${c.name}: TCP checksum after reflection`);
    assert.ok(s1.ip_chksum_ok, `${c.name}: IPv4 header checksum after reflection`);
    assert.deepEqual([s1.src, s1.dst, s1.sport, s1.dport], [c.spec.dst, c.spec.src, c.spec.sport, LISTEN], c.name);
    assert.equal(s1.flags, (await scapy.check(b)).flags, 'flags kept');
    assert.equal(s1.payload, c.spec.payload ?? '', 'payload kept');
    if (c.spec.ext) assert.equal(s1.ext?.length, c.spec.ext.length, 'extension headers kept');

    // The listener's reply to "server : app port" becomes the server's packet to the app. Build a
    // real reply with scapy (listener → peer), then rewrite it back.
    const reply = await scapy.build({ family: c.spec.family, src: c.spec.src, dst: c.spec.dst, sport: LISTEN, dport: c.spec.sport, flags: 'SA', seq: 77, ack: 1001, ...(c.spec.ext ? { ext: c.spec.ext } : {}) });
    const rp = parsed(reply);
    const toApp = reflectToApp(reply, rp, c.spec.dport);
    const s2 = await scapy.check(toApp);
    assert.ok(s2.tcp_chksum_ok && s2.ip_chksum_ok, `${c.name}: checksums of the inverse`);
    assert.deepEqual([s2.src, s2.dst, s2.sport, s2.dport, s2.flags], [c.spec.dst, c.spec.src, c.spec.dport, c.spec.sport, 'SA'], c.name);
    assert.deepEqual([s2.seq, s2.ack], [77, 1001], 'sequence numbers untouched');
  }
});

test('trailing bytes beyond the IP total length are dropped from the rewrite', async (t) => {
  if (missing) return t.skip(missing);
  const b = await scapy.build(CASES[0]!.spec);
  const padded = Buffer.concat([b, Buffer.alloc(6, 0xee)]);
  const p = parsed(padded);
  const out = reflectToListener(padded, p, LISTEN);
  assert.equal(out.length, b.length);
  assert.ok((await scapy.check(out)).tcp_chksum_ok);
  // The oracle does notice a wrong checksum (so the checks above can fail).
  out[p.tcpOffset + 4]! ^= 0x01; // sequence number
  assert.equal((await scapy.check(out)).tcp_chksum_ok, false);
  out[p.tcpOffset + 4]! ^= 0x01;
  out[out.length - 1]! ^= 0x01; // option padding, which a rebuild from parsed fields would hide
  assert.equal((await scapy.check(out)).tcp_chksum_ok, false);
  out[out.length - 1]! ^= 0x01;
  out[8]! ^= 0x01; // IPv4 TTL: the header checksum must notice
  assert.equal((await scapy.check(out)).ip_chksum_ok, false);
});

function expectFail(b: Uint8Array, reason: ParseFailure): void {
  const r = parseTcp(b);
  assert.equal(r.ok, false, `expected ${reason}`);
  if (!r.ok) assert.equal(r.reason, reason);
}

test('hostile input: each refusal is named', async (t) => {
  if (missing) return t.skip(missing);
  const v4 = await scapy.build(CASES[0]!.spec);
  const v6 = await scapy.build(CASES[3]!.spec);
  const v6ext = await scapy.build(CASES[4]!.spec);
  expectFail(Buffer.alloc(0), 'truncated-ip');
  expectFail(v4.subarray(0, 19), 'truncated-ip');
  expectFail(v6.subarray(0, 39), 'truncated-ip');
  const m = (src: Buffer, f: (b: Buffer) => void) => {
    const c = Buffer.from(src);
    f(c);
    return c;
  };
  expectFail(m(v4, (b) => (b[0] = 0x55)), 'bad-version');
  expectFail(m(v4, (b) => (b[0] = 0x44)), 'bad-ihl');
  expectFail(m(v4, (b) => b.writeUInt16BE(b.length + 1, 2)), 'bad-length');
  expectFail(m(v4, (b) => b.writeUInt16BE(0x2000, 6)), 'fragment'); // MF
  expectFail(m(v4, (b) => b.writeUInt16BE(0x0010, 6)), 'fragment'); // offset
  expectFail(m(v4, (b) => (b[9] = 17)), 'not-tcp');
  expectFail(m(v4, (b) => b.writeUInt16BE(20 + 19, 2)), 'truncated-tcp');
  expectFail(m(v4, (b) => (b[20 + 12] = 0x40)), 'bad-tcp-offset');
  expectFail(m(v4, (b) => (b[20 + 12] = 0xf0)), 'bad-tcp-offset');
  expectFail(m(v6, (b) => b.writeUInt16BE(b.length, 4)), 'bad-length');
  expectFail(m(v6, (b) => (b[6] = 50)), 'esp');
  expectFail(m(v6, (b) => (b[6] = 59)), 'not-tcp');
  expectFail(m(v6, (b) => (b[6] = 58)), 'not-tcp'); // ICMPv6
  // Extension chain: hbh(40) dst(48) routing(56) frag(64) tcp(72)
  expectFail(m(v6ext, (b) => (b[56 + 3] = 1)), 'routing-header-active');
  expectFail(m(v6ext, (b) => b.writeUInt16BE(0x0008, 64 + 2)), 'fragment');
  expectFail(m(v6ext, (b) => b.writeUInt16BE(0x0001, 64 + 2)), 'fragment');
  expectFail(m(v6ext, (b) => (b[40 + 1] = 200)), 'ext-header-truncated');
  expectFail(v6ext.subarray(0, 44), 'bad-length');
  // A chain of nine hop-by-hop headers (each pointing to the next) is longer than any real packet.
  const chain = Buffer.alloc(40 + 9 * 8 + 20);
  chain[0] = 0x60;
  chain.writeUInt16BE(chain.length - 40, 4);
  chain[6] = 0;
  for (let i = 0; i < 9; i++) chain[40 + i * 8] = i < 8 ? 0 : 6;
  expectFail(chain, 'ext-header-chain-too-long');
});

test('fuzz: truncations and random byte flips never throw and never read past the end', async (t) => {
  if (missing) return t.skip(missing);
  const seeds = await Promise.all(CASES.map((c) => scapy.build(c.spec)));
  const scale = Number(process.env['SWITCHYARD_TEST_SCALE'] ?? '1') || 1;
  let state = 0x12345678;
  const rnd = () => ((state = (Math.imul(state, 1103515245) + 12345) >>> 0) / 2 ** 32);
  let accepted = 0;
  for (let i = 0; i < 20000 * scale; i++) {
    const seed = seeds[i % seeds.length]!;
    const len = rnd() < 0.3 ? Math.floor(rnd() * seed.length) : seed.length;
    const b = Buffer.from(seed.subarray(0, len));
    for (let k = Math.floor(rnd() * 4); k > 0 && b.length; k--) b[Math.floor(rnd() * b.length)] = Math.floor(rnd() * 256);
    const r = parseTcp(b);
    if (r.ok) {
      accepted++;
      assert.ok(r.pkt.tcpOffset + 20 <= b.length && r.pkt.totalLength <= b.length);
      const out = reflectToListener(b, r.pkt, LISTEN);
      assert.equal(out.length, r.pkt.totalLength);
    }
  }
  assert.ok(accepted > 0);
});
