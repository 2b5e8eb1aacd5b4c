// Hostile clients: half-open handshakes are closed by the handshake timeout and every fd comes
// back; fuzzed SOCKS5/HTTP requests get an error reply or a close, never a crash or a hang.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { readdirSync } from 'node:fs';
import { once } from 'node:events';
import * as h from './helpers.ts';
import { ByteReader } from '../../src/egress/reader.ts';
import { socksHandshake } from '../../src/front/socks5.ts';
import { readHttpProxyRequest } from '../../src/front/http-proxy.ts';
import { HandshakeError } from '../../src/errors.ts';

const SCALE = Number(process.env.SWITCHYARD_TEST_SCALE ?? 1);
const fdCount = () => readdirSync('/proc/self/fd').length;

test('1k half-open handshakes are closed by the timeout; the fd count returns to its baseline', async () => {
  const f = await h.startFront({ inbound: { handshakeTimeoutMs: 400 } });
  try {
    const base = fdCount();
    const N = Math.max(10, Math.round(1000 * SCALE));
    const socks: net.Socket[] = [];
    const closed: Promise<unknown>[] = [];
    for (let i = 0; i < N; i++) {
      const s = net.connect(f.port, '127.0.0.1');
      s.on('error', () => {});
      // A third send nothing, a third a partial SOCKS greeting, a third a partial HTTP head.
      s.on('connect', () => void (i % 3 === 1 ? s.write(Buffer.from([5, 2, 0])) : i % 3 === 2 ? s.write('CONNECT a:1 HTTP/1.1\r\n') : undefined));
      closed.push(once(s, 'close'));
      socks.push(s);
    }
    await Promise.all(closed);
    for (let i = 0; i < 100 && (f.sessions.size > 0 || fdCount() > base); i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(f.sessions.size, 0, 'every session slot released');
    assert.ok(fdCount() <= base, `fds: ${fdCount()} now, ${base} before`);
  } finally {
    await f.close();
  }
});

/** A stand-in for the client socket: records writes, never throws. */
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

/** Random bytes biased toward valid prefixes so the parsers get deep, not just rejected early. */
function fuzzInput(rnd: () => number, kind: 'socks' | 'http'): Buffer {
  const pick = <T,>(a: T[]) => a[Math.floor(rnd() * a.length)]!;
  const bytes = (n: number) => Buffer.from(Array.from({ length: n }, () => Math.floor(rnd() * 256)));
  if (kind === 'socks') {
    const parts = [Buffer.from([5, Math.floor(rnd() * 4), ...bytes(Math.floor(rnd() * 4))]), Buffer.from([5, pick([1, 2, 3, 9]), pick([0, 1]), pick([1, 3, 4, 0, 7])]), bytes(Math.floor(rnd() * 40))];
    if (rnd() < 0.3) parts.splice(1, 0, Buffer.from([1, 3, 97, 98, 99, 2, 120, 121]));
    return Buffer.concat(parts).subarray(0, Math.floor(rnd() * 80));
  }
  const method = pick(['GET', 'CONNECT', 'POST', 'G\x00T', '']);
  const target = pick(['http://a.b/', 'a.b:443', '[::1]:80', 'http://[zz]/', 'http://x:99999/', '/', 'https://x/', 'http://u@h/', 'a'.repeat(300)]);
  const head = `${method} ${target} ${pick(['HTTP/1.1', 'HTTP/2', 'XX'])}\r\n${pick(['Host: x\r\n', 'Bad Header\r\n', 'X:\x00\r\n', ''])}${pick(['\r\n', '', '\n\n'])}`;
  const b = Buffer.from(head, 'latin1');
  if (rnd() < 0.3) b[Math.floor(rnd() * b.length)] = Math.floor(rnd() * 256);
  return b;
}

test('≥100k fuzzed SOCKS5 and HTTP requests: a HandshakeError or a result, nothing else', async () => {
  let seed = 0x5359;
  const rnd = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 0x100000000;
  const N = Math.max(1000, Math.round(100_000 * SCALE));
  const outcomes = { ok: 0, handshake: 0 };
  for (let i = 0; i < N; i++) {
    const kind = i % 2 === 0 ? 'socks' : 'http';
    const input = fuzzInput(rnd, kind);
    const r = new ByteReader(16 * 1024 + 1024);
    // Split the input at a random point, then EOF: every await must end.
    const cut = Math.floor(rnd() * (input.length + 1));
    r.push(input.subarray(0, cut));
    r.push(input.subarray(cut));
    r.end();
    const s = sink();
    try {
      if (kind === 'socks') await socksHandshake(r, s as unknown as net.Socket, rnd() < 0.5 ? null : { username: 'abc', password: 'xy' });
      else await readHttpProxyRequest(r, null);
      outcomes.ok++;
    } catch (err) {
      if (!(err instanceof HandshakeError)) throw new Error(`input ${input.toString('hex')} raised ${String(err)}`);
      outcomes.handshake++;
    }
  }
  assert.equal(outcomes.ok + outcomes.handshake, N);
  assert.ok(outcomes.ok > 0 && outcomes.handshake > 0, JSON.stringify(outcomes));
});

test('fuzzed requests over real connections: each gets a reply or a close, and the port still works', async () => {
  const f = await h.startFront({ inbound: { handshakeTimeoutMs: 500 }, pick: () => 'block' });
  let seed = 42;
  const rnd = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 0x100000000;
  try {
    const N = Math.max(100, Math.round(1000 * SCALE));
    for (let batch = 0; batch < N; batch += 100) {
      await Promise.all(
        Array.from({ length: 100 }, async (_, i) => {
          const s = net.connect(f.port, '127.0.0.1');
          s.on('error', () => {});
          s.on('data', () => {});
          s.write(fuzzInput(rnd, (batch + i) % 2 ? 'socks' : 'http'));
          s.end();
          await once(s, 'close');
        }),
      );
    }
    // Still serving: a valid request gets the policy's answer (block → 0x02).
    assert.equal((await h.socksConnect(f.port, '127.0.0.1', 80)).rep, 0x02);
  } finally {
    await f.close();
  }
});
