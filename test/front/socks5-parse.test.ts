// The synchronous SOCKS5 parser of the mixed inbound's fast path (src/front/socks5-parse.ts):
// - differential fuzz against the awaiting reference parser (socksHandshake): the same answers
//   written, the same request or the same failure reason, the same bytes left over — whether the
//   input arrives in one chunk, at random cuts, or one byte at a time;
// - over real connections: greeting, auth and request in one write, or split byte by byte, give
//   working flows; hostile input in one chunk or split gets the refusal byte or a close.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import * as h from './helpers.ts';
import { ByteReader } from '../../src/egress/reader.ts';
import { socksHandshake, type SocksRequest } from '../../src/front/socks5.ts';
import { SocksParser, refusalReply } from '../../src/front/socks5-parse.ts';
import { HandshakeError } from '../../src/errors.ts';
import type { EgressAuth } from '../../src/policy/types.ts';

const SCALE = Number(process.env.SWITCHYARD_TEST_SCALE ?? 1);
const AUTH: EgressAuth = { username: 'abc', password: 'xy' };

interface Outcome {
  written: string;
  request?: SocksRequest;
  reason?: string;
  rest: string;
}

/** Records writes; end(b) records b too. */
function sink() {
  const out: Buffer[] = [];
  return {
    out,
    write(b: Buffer | string) {
      out.push(Buffer.from(b));
      return true;
    },
    end(b?: Buffer | string) {
      if (b) out.push(Buffer.from(b));
      return this;
    },
  };
}

async function reference(input: Buffer, auth: EgressAuth | null): Promise<Outcome> {
  const r = new ByteReader(16 * 1024 + 1024);
  r.push(input);
  r.end();
  const s = sink();
  try {
    const request = await socksHandshake(r, s as unknown as net.Socket, auth);
    return { written: Buffer.concat(s.out).toString('hex'), request, rest: Buffer.concat(r.drain()).toString('hex') };
  } catch (err) {
    if (!(err instanceof HandshakeError)) throw err;
    return { written: Buffer.concat(s.out).toString('hex'), reason: err.reason, rest: '' };
  }
}

/** Drives SocksParser the way the mixed inbound does, over the given chunks, then EOF. */
function fast(chunks: Buffer[], auth: EgressAuth | null): Outcome {
  const p = new SocksParser(auth);
  const s = sink();
  try {
    for (let i = 0; i < chunks.length; i++) {
      const rest = p.push(chunks[i]!, s);
      if (rest !== null) return { written: Buffer.concat(s.out).toString('hex'), request: p.request!, rest: Buffer.concat([rest, ...chunks.slice(i + 1)]).toString('hex') };
    }
    throw new HandshakeError('eof', 'peer closed during handshake');
  } catch (err) {
    if (!(err instanceof HandshakeError)) throw err;
    const reply = refusalReply(err.reason);
    if (reply) s.end(reply);
    return { written: Buffer.concat(s.out).toString('hex'), reason: err.reason, rest: '' };
  }
}

function splits(input: Buffer, rnd: () => number): Buffer[][] {
  const bytewise = Array.from(input, (b) => Buffer.from([b]));
  const cuts: Buffer[] = [];
  let at = 0;
  while (at < input.length) {
    const n = 1 + Math.floor(rnd() * 12);
    cuts.push(input.subarray(at, at + n));
    at += n;
  }
  return [[input], cuts, bytewise];
}

/** Inputs biased toward valid handshakes (so parsing goes deep), with mutations and cuts. */
function fuzzInput(rnd: () => number, auth: boolean): Buffer {
  const pick = <T>(a: T[]): T => a[Math.floor(rnd() * a.length)]!;
  const bytes = (n: number) => Buffer.from(Array.from({ length: n }, () => Math.floor(rnd() * 256)));
  const greeting = rnd() < 0.8 ? Buffer.from([5, 2, 0, 2]) : Buffer.from([pick([5, 4]), Math.floor(rnd() * 4), ...bytes(Math.floor(rnd() * 4))]);
  const authPart = rnd() < 0.6 ? Buffer.from([1, 3, 97, 98, 99, 2, 120, 121]) : Buffer.from([pick([1, 2]), 3, 97, 98, 99, 2, 120, pick([121, 122])]);
  const atyp = pick([1, 3, 4, 0, 7]);
  const addr =
    atyp === 1 ? bytes(4) : atyp === 4 ? bytes(16) : atyp === 3 ? Buffer.concat([Buffer.from([pick([0, 3, 5])]), Buffer.from(pick(['abc', 'a.b.c', 'a b\x00c', 'EXAMPLE']), 'latin1')]) : bytes(Math.floor(rnd() * 6));
  const req = Buffer.concat([Buffer.from([pick([5, 5, 5, 4]), pick([1, 1, 3, 2, 9]), 0, atyp]), addr, bytes(2)]);
  const parts = [greeting, ...(auth || rnd() < 0.1 ? [authPart] : []), req, rnd() < 0.3 ? bytes(Math.floor(rnd() * 20)) : Buffer.alloc(0)];
  const all = Buffer.concat(parts);
  if (rnd() < 0.2) all[Math.floor(rnd() * all.length)] = Math.floor(rnd() * 256);
  return rnd() < 0.3 ? all.subarray(0, Math.floor(rnd() * all.length)) : all;
}

test('differential fuzz: the synchronous parser matches the reference in one chunk, random cuts and byte by byte', async () => {
  let seed = 0x50c5;
  const rnd = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 0x100000000;
  const N = Math.max(1000, Math.round(10_000 * SCALE));
  const seen = { ok: 0, refused: 0, reasons: new Set<string>() };
  for (let i = 0; i < N; i++) {
    const auth = rnd() < 0.4 ? AUTH : null;
    const input = fuzzInput(rnd, auth !== null);
    const want = await reference(input, auth);
    for (const chunks of splits(input, rnd)) {
      const got = fast(chunks, auth);
      assert.deepEqual(got, want, `input ${input.toString('hex')} in ${chunks.length} chunk(s), auth ${auth !== null}`);
    }
    if (want.request) seen.ok++;
    else {
      seen.refused++;
      seen.reasons.add(want.reason!);
    }
  }
  assert.ok(seen.ok > N / 20, `too few complete requests: ${seen.ok}`);
  for (const r of ['bad-version', 'no-method', 'bad-auth-version', 'bad-credentials', 'bad-atyp', 'bad-domain', 'bad-command', 'eof']) assert.ok(seen.reasons.has(r), `fuzz never reached ${r}`);
});

test('a stage never waits on more than its own bytes: a greeting is answered before the request exists', () => {
  const p = new SocksParser(null);
  const s = sink();
  assert.equal(p.push(Buffer.from([5, 1]), s), null);
  assert.equal(s.out.length, 0);
  assert.equal(p.push(Buffer.from([0, 5, 1, 0]), s), null);
  assert.deepEqual(Buffer.concat(s.out), Buffer.from([5, 0]));
  const rest = p.push(Buffer.from([1, 127, 0, 0, 1, 0, 80, 0x47, 0x45]), s);
  assert.deepEqual(rest, Buffer.from('GE'));
  assert.deepEqual(p.request, { command: 1, address: { host: '127.0.0.1', port: 80, family: 4 } });
});

function socksBytes(dport: number, auth?: { user: string; pass: string }): Buffer {
  const p = Buffer.alloc(2);
  p.writeUInt16BE(dport);
  return Buffer.concat([
    Buffer.from(auth ? [5, 1, 2] : [5, 1, 0]),
    auth ? Buffer.concat([Buffer.from([1, auth.user.length]), Buffer.from(auth.user), Buffer.from([auth.pass.length]), Buffer.from(auth.pass)]) : Buffer.alloc(0),
    Buffer.from([5, 1, 0, 1, 127, 0, 0, 1]),
    p,
  ]);
}

/** Sends `bytes` in the given pieces (each its own write, spaced), returns everything read until close or `until` bytes. */
async function exchange(port: number, pieces: Buffer[], until: number): Promise<Buffer> {
  const s = net.connect(port, '127.0.0.1');
  s.setNoDelay(true);
  s.on('error', () => {});
  await once(s, 'connect');
  let got = Buffer.alloc(0);
  const done = new Promise<void>((resolve) => {
    s.on('data', (d) => {
      got = Buffer.concat([got, d]);
      if (got.length >= until) resolve();
    });
    s.on('close', () => resolve());
  });
  for (const p of pieces) {
    s.write(p);
    await new Promise((r) => setTimeout(r, 2));
  }
  await done;
  s.destroy();
  return got;
}

test('over real connections: one-chunk and byte-by-byte handshakes (with and without auth) reach the target', async () => {
  const target = await h.recordingServer('127.0.0.1', (s) => s.end('hello'));
  const open = await h.startFront({});
  const withAuth = await h.startFront({ inbound: { auth: { username: 'u1', password: 'p1' } } });
  try {
    const cases: [number, Buffer, number][] = [
      [open.port, socksBytes(target.port), 2 + 10 + 5],
      [withAuth.port, socksBytes(target.port, { user: 'u1', pass: 'p1' }), 2 + 2 + 10 + 5],
    ];
    for (const [port, bytes, total] of cases) {
      for (const pieces of [[bytes], Array.from(bytes, (b) => Buffer.from([b]))]) {
        const got = await exchange(port, pieces, total);
        assert.equal(got.length, total, `got ${got.toString('hex')}`);
        assert.equal(got.subarray(total - 5).toString(), 'hello');
        assert.equal(got[total - 5 - 10 + 1], 0x00, 'CONNECT succeeded');
      }
    }
    assert.equal(target.arrivals.length, 4);
    // Data sent in the same chunk as the request reaches the target first thing.
    const echo = await h.recordingServer();
    const got = await exchange(open.port, [Buffer.concat([socksBytes(echo.port), Buffer.from('ping')])], 2 + 10 + 4);
    assert.equal(got.subarray(12).toString(), 'ping');
    await echo.close();
  } finally {
    await target.close();
    await open.close();
    await withAuth.close();
  }
});

test('over real connections: hostile handshakes, whole or split, get the refusal byte or a close; the target sees nothing', async () => {
  const target = await h.recordingServer();
  const f = await h.startFront({ inbound: { auth: { username: 'u1', password: 'p1' } } });
  try {
    const p = Buffer.alloc(2);
    p.writeUInt16BE(target.port);
    const cases: [string, Buffer, string][] = [
      ['bad version', Buffer.from([4, 1, 0, 1, 127, 0, 0, 1, ...p]), ''],
      ['no acceptable method', Buffer.from([5, 1, 0]), '05ff'],
      ['wrong password', Buffer.concat([Buffer.from([5, 1, 2, 1, 2]), Buffer.from('u1'), Buffer.from([2]), Buffer.from('px')]), '05020101'],
      ['bad atyp', Buffer.concat([Buffer.from([5, 1, 2, 1, 2]), Buffer.from('u1'), Buffer.from([2]), Buffer.from('p1'), Buffer.from([5, 1, 0, 9, 1, 2, 3])]), '05020100' + '05080001000000000000'],
      ['BIND', Buffer.concat([Buffer.from([5, 1, 2, 1, 2]), Buffer.from('u1'), Buffer.from([2]), Buffer.from('p1'), Buffer.from([5, 2, 0, 1, 127, 0, 0, 1, ...p])]), '05020100' + '05070001000000000000'],
      ['oversized garbage after a greeting', Buffer.concat([Buffer.from([5, 255]), Buffer.alloc(4000, 1)]), '05ff'],
    ];
    for (const [name, bytes, want] of cases) {
      const split: Buffer[] = Array.from(bytes.subarray(0, 64), (b) => Buffer.from([b]));
      if (bytes.length > 64) split.push(bytes.subarray(64));
      for (const pieces of [[bytes], split]) {
        const got = await exchange(f.port, pieces, 1 << 20);
        assert.equal(got.toString('hex'), want, `${name} in ${pieces.length} piece(s)`);
      }
    }
    assert.equal(target.arrivals.length, 0);
    assert.equal((await h.socksConnect(f.port, '127.0.0.1', target.port, { user: 'u1', pass: 'p1' })).rep, 0);
  } finally {
    await target.close();
    await f.close();
  }
});
