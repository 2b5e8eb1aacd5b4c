// SOCKS5 UDP ASSOCIATE on the mixed inbound: direct, through dante's own UDP ASSOCIATE (the echo
// server sees dante's external address), and refused for an http egress (nothing arrives).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import net from 'node:net';
import { once } from 'node:events';
import * as h from './helpers.ts';
import { encodeAddress, parseAddress } from '../../src/egress/socks5-wire.ts';

const need = ['danted', 'tinyproxy'].filter((c) => !h.has(c));
const skip = need.length ? `needs ${need.join(', ')}` : false;

let echo: dgram.Socket;
let echoPort: number;
const seen: string[] = [];
let dante: h.Peer, tp: h.Peer;

before(async () => {
  echo = dgram.createSocket('udp4');
  echo.on('message', (m, r) => {
    seen.push(r.address);
    echo.send(Buffer.concat([Buffer.from(`${r.address}|`), m]), r.port, r.address);
  });
  await new Promise<void>((r) => echo.bind(0, '127.0.0.1', r));
  echoPort = echo.address().port;
  if (skip) return;
  dante = await h.startDante('127.0.0.3');
  tp = await h.startTinyproxy('127.0.0.4');
});

after(async () => {
  echo.close();
  if (skip) return;
  await dante.stop();
  await tp.stop();
});

/** Opens an association and returns a function that sends one datagram and awaits the answer. */
async function associate(port: number) {
  const ctl = net.connect(port, '127.0.0.1');
  await once(ctl, 'connect');
  ctl.write(Buffer.from([5, 1, 0]));
  await once(ctl, 'data');
  ctl.write(Buffer.from([5, 3, 0, 1, 0, 0, 0, 0, 0, 0]));
  const [rep] = (await once(ctl, 'data')) as [Buffer];
  assert.equal(rep[1], 0, 'UDP ASSOCIATE succeeded');
  const { addr } = parseAddress(rep, 3);
  const u = dgram.createSocket('udp4');
  await new Promise<void>((r) => u.bind(0, '127.0.0.1', r));
  const ask = async (host: string, dport: number, text: string, waitMs = 2000): Promise<string | null> => {
    u.send(Buffer.concat([Buffer.from([0, 0, 0]), encodeAddress(host, dport), Buffer.from(text)]), addr.port, addr.host);
    const got = await Promise.race([once(u, 'message').then(([m]) => m as Buffer), new Promise<null>((r) => setTimeout(() => r(null), waitMs))]);
    if (!got) return null;
    const { addr: src, next } = parseAddress(got, 3);
    return `${src.host}:${src.port} ${got.subarray(next).toString()}`;
  };
  /** Sends one datagram with a given FRAG byte (RFC 1928 §7) and no wait. */
  const sendFrag = (frag: number, host: string, dport: number, text: string) => u.send(Buffer.concat([Buffer.from([0, 0, frag]), encodeAddress(host, dport), Buffer.from(text)]), addr.port, addr.host);
  return { ask, sendFrag, close: () => (u.close(), ctl.destroy()) };
}

test('UDP ASSOCIATE direct: datagrams out and answers back with their source', async () => {
  const f = await h.startFront({});
  try {
    const a = await associate(f.port);
    assert.equal(await a.ask('127.0.0.1', echoPort, 'one'), `127.0.0.1:${echoPort} 127.0.0.1|one`);
    assert.equal(await a.ask('127.0.0.1', echoPort, 'two'), `127.0.0.1:${echoPort} 127.0.0.1|two`);
    a.close();
    const rec = f.flows.find((e) => e.record.network === 'udp');
    assert.equal(rec?.record.egress, 'direct');
  } finally {
    await f.close();
  }
});

test('fragmented SOCKS5 datagrams (FRAG != 0) are dropped and counted; nothing reaches the target', async () => {
  const f = await h.startFront({});
  try {
    const { udpCounters } = await import('../../src/egress/udp.ts');
    const globalBefore = udpCounters.fragmentsDropped;
    const a = await associate(f.port);
    // An unfragmented datagram first, so the association and its session are established.
    assert.equal(await a.ask('127.0.0.1', echoPort, 'whole'), `127.0.0.1:${echoPort} 127.0.0.1|whole`);
    const seenBefore = seen.length;
    a.sendFrag(1, '127.0.0.1', echoPort, 'frag1');
    a.sendFrag(0x81, '127.0.0.1', echoPort, 'frag-last');
    // The next whole datagram is answered: the fragments before it were processed (and dropped).
    assert.equal(await a.ask('127.0.0.1', echoPort, 'after'), `127.0.0.1:${echoPort} 127.0.0.1|after`);
    assert.equal(seen.length, seenBefore + 1, 'only the whole datagram reached the echo server');
    const session = [...f.sessions.list()].find((r) => r.network === 'udp');
    const stats = f.sessions.get(session!.id)!.counters as unknown as { dropped: number; fragmentsDropped: number };
    assert.equal(stats.fragmentsDropped, 2);
    assert.equal(stats.dropped, 2);
    assert.equal(udpCounters.fragmentsDropped - globalBefore, 2, 'the process-wide counter (status) counts them too');
    a.close();
  } finally {
    await f.close();
  }
});

test('UDP ASSOCIATE through a socks5 egress (dante) leaves from dante', { skip }, async () => {
  const f = await h.startFront({ egresses: [h.egressSocks('dante', dante.port, { sendDomain: false })], pick: (q) => (q.domain === 'udp.test' ? 'dante' : 'direct'), resolve: { 'udp.test': ['127.0.0.1'] } });
  try {
    const a = await associate(f.port);
    const r = await a.ask('udp.test', echoPort, 'via-dante');
    assert.equal(r, `127.0.0.1:${echoPort} 127.0.0.3|via-dante`);
    a.close();
    assert.equal(f.flows.find((e) => e.record.network === 'udp')?.record.egress, 'dante');
  } finally {
    await f.close();
  }
});

test('UDP to an http egress is refused: nothing arrives, the refusal is recorded', { skip }, async () => {
  const f = await h.startFront({ egresses: [h.egressHttp('tp', tp.port, { sendDomain: false })], pick: () => 'tp', resolve: { 'udp.test': ['127.0.0.1'] } });
  try {
    const before = seen.length;
    const a = await associate(f.port);
    assert.equal(await a.ask('udp.test', echoPort, 'nope', 500), null);
    a.close();
    assert.equal(seen.length, before, 'the reachable echo server saw nothing');
    const refused = f.flows.find((e) => e.outcome === 'refused');
    assert.match(refused?.error ?? '', /cannot carry UDP/);
  } finally {
    await f.close();
  }
});
