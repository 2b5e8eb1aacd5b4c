// The bounded wire reader, the local-answer builder, the hit-path patcher and ECH stripping, fed
// hostile input and checked against dns-packet (an independent decoder).
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import * as packet from 'dns-packet';
import { WireError, formatIp, parseQuery, readName, walkMessage } from '../../src/dns/wire.ts';
import { analyse, matchesQuery, MismatchError } from '../../src/dns/answer.ts';
import { buildLocalAnswer, buildNameQuery, buildUpstreamQuery, ipv6Bytes } from '../../src/dns/build.ts';
import { prepare, serve } from '../../src/dns/cache.ts';
import { stripEch } from '../../src/dns/ech.ts';
import { FrameReader, frame } from '../../src/dns/frame.ts';

const CACHE = { maxEntries: 10, minTtl: 0, maxTtl: 86400, negativeTtl: 300 };

function rejects(buf: Buffer, reason: RegExp): void {
  assert.throws(() => parseQuery(buf), (e: unknown) => e instanceof WireError && reason.test(e.reason));
}

describe('parseQuery on hostile input', () => {
  const good = buildNameQuery('www.example.com', 1).buf;

  test('a valid query: name lower-cased, EDNS size and DO read, key built', () => {
    const q = parseQuery(Buffer.from(packet.encode({ type: 'query', id: 7, questions: [{ type: 'AAAA', name: 'WwW.Example.COM' }], additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 4096, flags: packet.DNSSEC_OK }] as never })));
    assert.equal(q.name, 'www.example.com');
    assert.equal(q.qtype, 28);
    assert.equal(q.udpSize, 4096);
    assert.equal(q.dnssecOk, true);
    assert.equal(q.key, '\x03www\x07example\x03com\x00\x00\x1c\x00\x01\x01');
    // Keys ignore ASCII case only (RFC 4343), and differ by type and DO bit.
    assert.equal(parseQuery(buildNameQuery('WWW.example.COM', 28).buf).key.slice(0, -1), q.key.slice(0, -1));
    assert.notEqual(parseQuery(buildNameQuery('www.example.com', 1).buf).key, q.key);
    const latin = Buffer.from(buildNameQuery('\u00c9.example', 1).buf);
    const lower = Buffer.from(buildNameQuery('\u00e9.example', 1).buf);
    assert.notEqual(parseQuery(latin).key, parseQuery(lower).key);
  });

  test('each failure is named', () => {
    rejects(good.subarray(0, 11), /header/);
    const two = Buffer.from(good);
    two.writeUInt16BE(2, 4);
    rejects(two, /question count 2/);
    rejects(good.subarray(0, 20), /runs past the end/);
    const reserved = Buffer.from(good);
    reserved[12] = 0x80;
    rejects(reserved, /reserved label type/);
    const ptr = Buffer.concat([good.subarray(0, 12), Buffer.from([0xc0, 0x0c, 0, 1, 0, 1])]);
    ptr.writeUInt16BE(0, 10);
    rejects(ptr, /compressed name in the question/);
    const long = Buffer.concat([good.subarray(0, 12), Buffer.from(Array(5).fill([63, ...Array(63).fill(0x61)]).flat()), Buffer.from([0, 0, 1, 0, 1])]);
    long.writeUInt16BE(0, 10);
    rejects(long, /longer than 255/);
    const twoOpt = Buffer.concat([good, good.subarray(good.length - 11)]);
    twoOpt.writeUInt16BE(2, 10);
    rejects(twoOpt, /more than one OPT/);
    const resp = Buffer.from(good);
    resp[2]! |= 0x80;
    rejects(resp, /a response/);
    const many = Buffer.from(good);
    many.writeUInt16BE(0xffff, 10);
    rejects(many, /too many records/);
  });

  test('pointer loops and forward pointers are refused', () => {
    const self = Buffer.from([0, 0, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 0x0c]);
    assert.throws(() => readName(self, 12), /does not point backwards/);
    const fwd = Buffer.from([0, 0, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 0x10, 0, 0, 1, 0]);
    assert.throws(() => readName(fwd, 12), /does not point backwards/);
  });

  test('walkMessage refuses trailing bytes and records running past the end', () => {
    const a = Buffer.from(packet.encode({ type: 'response', id: 1, questions: [{ type: 'A', name: 'a.example' }], answers: [{ type: 'A', name: 'a.example', data: '127.0.0.1', ttl: 5 }] }));
    assert.equal(walkMessage(a).records.length, 1);
    assert.throws(() => walkMessage(Buffer.concat([a, Buffer.from([0])])), /trailing/);
    assert.throws(() => walkMessage(a.subarray(0, a.length - 1)), /runs past/);
  });
});

test('formatIp prints IPv6 the way Node and WHATWG URL do', () => {
  for (const ip of ['::', '::1', 'fd00::1', '2001:db8::1:0:0:1', '2001:db8:0:0:1::1', '1:0:0:2:0:0:0:3', '1:2:3:4:5:6:7:8', 'fe80::1:0:0']) {
    const expected = new URL(`http://[${ip}]/`).hostname.slice(1, -1);
    assert.equal(formatIp(ipv6Bytes(ip), 0, 16), expected, ip);
  }
});

describe('answers', () => {
  const q = buildNameQuery('Www.Example.com', 1);

  function answerFor(sent: Buffer, mutate: (p: packet.Packet) => void = () => {}): Buffer {
    const d = packet.decode(sent);
    const p: packet.Packet = {
      type: 'response',
      id: d.id!,
      flags: packet.RECURSION_DESIRED | packet.RECURSION_AVAILABLE,
      questions: d.questions!,
      answers: [
        { type: 'CNAME', name: d.questions![0]!.name, ttl: 100, data: 'edge.example.net' },
        { type: 'A', name: 'edge.example.net', ttl: 50, data: '127.4.0.1' },
        { type: 'A', name: 'unrelated.example', ttl: 50, data: '127.4.0.99' },
      ],
    };
    mutate(p);
    return Buffer.from(packet.encode(p));
  }

  test('matchesQuery: wrong ID, other case, other type are refused', () => {
    const ok = answerFor(q.buf);
    matchesQuery(ok, q.buf, q.qEnd);
    assert.throws(() => matchesQuery(answerFor(q.buf, (p) => (p.id = (p.id! + 1) & 0xffff)), q.buf, q.qEnd), MismatchError);
    assert.throws(
      () => matchesQuery(answerFor(q.buf, (p) => (p.questions = [{ ...p.questions![0]!, name: 'www.example.com' }])), q.buf, q.qEnd),
      /question differs/,
    );
    assert.throws(() => matchesQuery(answerFor(q.buf, (p) => (p.questions = [{ ...p.questions![0]!, type: 'AAAA' }])), q.buf, q.qEnd), /question differs/);
  });

  test('analyse follows the chain and ignores records outside it', () => {
    const a = analyse(answerFor(q.buf), 'www.example.com', 1);
    assert.deepEqual(a.chain, ['www.example.com', 'edge.example.net']);
    assert.deepEqual(a.addresses.map((x) => x.ip), ['127.4.0.1']);
    assert.equal(a.cacheTtl, 50);
  });

  test('serve: copy with the client ID and case, TTLs aged, OPT cut for non-EDNS clients', () => {
    const client = buildNameQuery('wWw.eXample.COM', 1);
    // The client query has EDNS; make a non-EDNS copy.
    const plain = Buffer.from(client.buf.subarray(0, client.qEnd));
    plain.writeUInt16BE(0, 10);
    const cq = parseQuery(plain);
    const out = buildUpstreamQuery(plain, cq);
    const bytes = answerFor(out.buf, (p) => (p.additionals = [{ type: 'OPT', name: '.', udpPayloadSize: 1232 } as never]));
    const a = analyse(bytes, cq.name, 1);
    assert.ok(a.optStart > 0);
    const p = prepare(bytes, a, CACHE, 1_000_000, { name: cq.name, upstream: 'x', path: '', egresses: ['direct'] });
    const served = serve(p, plain, cq, 1_000_000 + 20_500, true);
    const d = packet.decode(served);
    assert.equal(d.id, cq.id);
    assert.equal(d.questions![0]!.name, 'wWw.eXample.COM');
    assert.deepEqual(d.answers!.map((r) => (r as { ttl: number }).ttl), [80, 30, 30]);
    assert.equal(d.additionals!.length, 0);
  });

  test('local answers decode cleanly', () => {
    const c = buildNameQuery('blocked.example', 28);
    const cq = parseQuery(c.buf);
    const buf = buildLocalAnswer(c.buf, cq, 0, [{ type: 28, ttl: 60, rdata: Buffer.alloc(16) }]);
    const d = packet.decode(buf);
    assert.equal((d.answers![0] as { data: string }).data, '::');
    assert.equal(d.answers![0]!.name, 'blocked.example');
    assert.equal(d.additionals![0]!.type, 'OPT');
  });
});

describe('stripEch', () => {
  // HTTPS rdata: priority 1, target ".", mandatory=[alpn(1), ech(5)], alpn=h2, ipv4hint, ech, ipv6hint.
  function httpsRdata(): Buffer {
    const params: [number, Buffer][] = [
      [0, Buffer.from([0, 1, 0, 5])],
      [1, Buffer.from([2, 0x68, 0x32])],
      [4, Buffer.from([127, 4, 0, 7])],
      [5, Buffer.from('0045fe0d0041', 'hex')],
      [6, ipv6Bytes('fd00::7')],
    ];
    return Buffer.concat([Buffer.from([0, 1, 0]), ...params.map(([k, v]) => Buffer.concat([Buffer.from([k >> 8, k & 0xff, v.length >> 8, v.length & 0xff]), v]))]);
  }

  test('removes ech and its mandatory entry, and rewrites pointers that follow', () => {
    const q = buildNameQuery('h.example', 65);
    const header = Buffer.from(q.buf.subarray(0, q.qEnd));
    header.writeUInt16BE(0x8180, 2);
    header.writeUInt16BE(4, 6); // ANCOUNT
    header.writeUInt16BE(0, 10);
    const rd = httpsRdata();
    const rr1 = Buffer.concat([Buffer.from([0xc0, 0x0c, 0, 65, 0, 1, 0, 0, 1, 0, rd.length >> 8, rd.length & 0xff]), rd]);
    const rr2Off = header.length + rr1.length;
    // www.h.example: label "www" + pointer to the question name; lies after the HTTPS record.
    const rr2 = Buffer.from([3, 0x77, 0x77, 0x77, 0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 127, 4, 0, 8]);
    // Owner is a pointer to rr2's owner (after the cut); rdata a CNAME pointing there too.
    const rr3 = Buffer.from([0xc0 | (rr2Off >> 8), rr2Off & 0xff, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 127, 4, 0, 9]);
    const rr4 = Buffer.from([1, 0x63, 0xc0, 0x0c, 0, 5, 0, 1, 0, 0, 0, 60, 0, 2, 0xc0 | (rr2Off >> 8), rr2Off & 0xff]);
    const msg = Buffer.concat([header, rr1, rr2, rr3, rr4]);
    assert.equal(packet.decode(msg).answers!.length, 4);
    const out = stripEch(msg, walkMessage(msg).records);
    assert.equal(out.length, msg.length - 10 - 2);
    const d = packet.decode(out);
    assert.deepEqual(d.answers!.map((r) => r.name), ['h.example', 'www.h.example', 'www.h.example', 'c.h.example']);
    assert.equal((d.answers![3] as { data: string }).data, 'www.h.example');
    const w = walkMessage(out);
    const keys: number[] = [];
    const mandatory: number[] = [];
    const a = analyse(out, 'h.example', 65);
    assert.deepEqual(a.addresses.map((x) => x.ip), ['127.4.0.7', 'fd00::7']);
    const r = w.records[0]!;
    let p = r.rdOff + 3;
    while (p < r.end) {
      const k = out.readUInt16BE(p);
      const len = out.readUInt16BE(p + 2);
      keys.push(k);
      if (k === 0) for (let i = 0; i < len; i += 2) mandatory.push(out.readUInt16BE(p + 4 + i));
      p += 4 + len;
    }
    assert.deepEqual(keys, [0, 1, 4, 6]);
    assert.deepEqual(mandatory, [1]);
    assert.equal(stripEch(out, w.records), out, 'nothing left to strip: same buffer');
  });
});

test('FrameReader: frames split anywhere, several per chunk, byte by byte', () => {
  const msgs = [Buffer.from('hello'), Buffer.alloc(0), Buffer.alloc(300, 7), Buffer.from('x')];
  const stream = Buffer.concat(msgs.map(frame));
  for (const size of [1, 2, 3, 7, 64, stream.length]) {
    const r = new FrameReader();
    const got: Buffer[] = [];
    for (let i = 0; i < stream.length; i += size) got.push(...r.push(stream.subarray(i, i + size)));
    assert.deepEqual(got, msgs, `chunk size ${size}`);
  }
});
