// src/dns/fast-parse.ts, the fast path's in-place question reader, against parseQuery (wire.ts):
// whatever it accepts, parseQuery accepts with the same fields and cache-key hash; it reads
// nothing outside the datagram (same result when the bytes sit inside a larger block of noise);
// and the queries real clients send (dig's, with EDNS and cookies; plain ones) are accepted.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { newQuickQuery, quickParse, sameKey } from '../../src/dns/fast-parse.ts';
import { buildNameQuery } from '../../src/dns/build.ts';
import { parseQuery } from '../../src/dns/wire.ts';

const SCALE = Number(process.env['SWITCHYARD_TEST_SCALE'] ?? '1');

/** A query without EDNS (buildNameQuery adds an OPT record: cut it). */
function plain(name: string, qtype: number): Buffer {
  const { buf, qEnd } = buildNameQuery(name, qtype);
  const b = Buffer.from(buf.subarray(0, qEnd));
  b.writeUInt16BE(0, 10);
  return b;
}

/** A query with an OPT record: UDP size, DO bit, and `opt` bytes of options (like dig's cookie). */
function withOpt(name: string, qtype: number, size: number, dnssecOk: boolean, opt = Buffer.alloc(0)): Buffer {
  const q = plain(name, qtype);
  const rr = Buffer.alloc(11 + opt.length);
  rr[0] = 0;
  rr.writeUInt16BE(41, 1);
  rr.writeUInt16BE(size, 3);
  rr.writeUInt16BE(dnssecOk ? 0x8000 : 0, 7);
  rr.writeUInt16BE(opt.length, 9);
  opt.copy(rr, 11);
  const out = Buffer.concat([q, rr]);
  out.writeUInt16BE(1, 10);
  return out;
}

function compare(b: Buffer): boolean {
  const q = newQuickQuery();
  const ok = quickParse(b, 0, b.length, q);
  // The same bytes inside a larger block of noise: same verdict, same fields.
  const noise = Buffer.alloc(b.length + 64, 0x41);
  b.copy(noise, 17);
  const q2 = newQuickQuery();
  assert.equal(quickParse(noise, 17, b.length, q2), ok);
  if (!ok) return false;
  assert.deepEqual(q2, q);
  const p = parseQuery(b); // must not throw
  assert.deepEqual(
    { id: q.id, flags: q.flags, qEnd: q.qEnd, edns: q.edns, udpSize: q.udpSize, dnssecOk: q.dnssecOk, hash: q.hash },
    { id: p.id, flags: p.flags, qEnd: p.qEnd, edns: p.edns, udpSize: p.udpSize, dnssecOk: p.dnssecOk, hash: p.hash },
  );
  assert.equal((p.flags >> 11) & 0xf, 0, 'only opcode QUERY');
  assert.ok(sameKey(Buffer.from(p.key, 'latin1'), noise, 17, q2), 'sameKey agrees with the parsed key');
  return true;
}

describe('fast path question reader', () => {
  test('accepts what clients send, with parseQuery\'s fields', () => {
    const cookie = Buffer.from('000a00080123456789abcdef', 'hex');
    for (const b of [
      plain('a.test', 1),
      plain('Mixed.CASE.example', 28),
      withOpt('a.test', 1, 1232, false, cookie),
      withOpt('h.test', 65, 4096, true),
      withOpt('small.test', 1, 100, false),
      plain('', 2),
    ]) {
      assert.equal(compare(b), true, b.toString('hex'));
    }
  });

  test('HTTPS (type 65 = 0x41) is keyed as parseQuery keys it', () => {
    const a = withOpt('x.test', 65, 1232, false);
    const q = newQuickQuery();
    assert.ok(quickParse(a, 0, a.length, q));
    assert.equal(q.hash, parseQuery(a).hash);
  });

  test('declines what the main thread must judge', () => {
    const base = plain('a.test', 1);
    const cases: [string, (b: Buffer) => Buffer][] = [
      ['a response', (b) => ((b[2]! |= 0x80), b)],
      ['opcode STATUS', (b) => ((b[2] = (b[2]! & 0x87) | (2 << 3)), b)],
      ['two questions', (b) => (b.writeUInt16BE(2, 4), b)],
      ['an answer record', (b) => (b.writeUInt16BE(1, 6), b)],
      ['an OPT that is not there', (b) => (b.writeUInt16BE(1, 10), b)],
      ['trailing bytes', (b) => Buffer.concat([b, Buffer.from([0])])],
      ['cut question', (b) => b.subarray(0, b.length - 1)],
      ['compressed name', (b) => ((b[12] = 0xc0), b)],
      ['label past the end', (b) => ((b[12] = 60), b)],
      ['header only', (b) => b.subarray(0, 12)],
    ];
    for (const [what, f] of cases) {
      const b = f(Buffer.from(base));
      const q = newQuickQuery();
      assert.equal(quickParse(b, 0, b.length, q), false, what);
    }
    const twoOpt = withOpt('a.test', 1, 1232, false);
    twoOpt.writeUInt16BE(2, 10);
    assert.equal(quickParse(twoOpt, 0, twoOpt.length, newQuickQuery()), false, 'two additional records');
    const longName = plain(Array.from({ length: 4 }, () => 'x'.repeat(62)).join('.'), 1);
    assert.equal(compare(longName), true, 'a 255-byte name is fine');
  });

  test('random and mutated datagrams: anything accepted parses identically', () => {
    let seed = 7;
    const rnd = (n: number): number => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return (seed >>> 8) % n;
    };
    const seeds = [plain('a.test', 1), withOpt('b.example', 28, 1232, true, Buffer.from('000a0008aabbccddeeff0011', 'hex'))];
    let accepted = 0;
    const n = 50_000 * SCALE;
    for (let i = 0; i < n; i++) {
      let b: Buffer;
      if (i % 5 === 0) {
        b = Buffer.alloc(rnd(64));
        for (let j = 0; j < b.length; j++) b[j] = rnd(256);
        if (b.length >= 6) b.writeUInt16BE(1, 4);
      } else {
        b = Buffer.from(seeds[i & 1]!);
        for (let k = 0; k < 1 + rnd(3); k++) b[rnd(b.length)] = rnd(4) === 0 ? rnd(256) : b[rnd(b.length)]! ^ (1 << rnd(8));
        if (rnd(6) === 0) b = b.subarray(0, rnd(b.length + 1));
      }
      if (compare(b)) accepted++;
    }
    assert.ok(accepted > n / 10, `some mutations stay valid (${accepted})`);
  });
});
