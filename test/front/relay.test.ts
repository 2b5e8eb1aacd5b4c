// Relay behaviour that needs no proxy peers: back-pressure under a large push to a slow reader
// (RSS stays bounded), the idle timeout, and session release.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import * as h from './helpers.ts';

const SCALE = Number(process.env.SWITCHYARD_TEST_SCALE ?? 1);

test('a slow reader under a large push keeps RSS bounded (back-pressure end to end)', async () => {
  // The server pushes TOTAL bytes honouring its own back-pressure; the client reads slowly at
  // first. If the relay read ahead without bound, its memory would grow by the bytes the server
  // managed to hand over; with back-pressure the server is held back instead.
  const TOTAL = Math.round(1024 * SCALE) * 1024 * 1024;
  const block = Buffer.alloc(1 << 20, 7);
  let pushed = 0;
  const srv = net.createServer((s) => {
    const go = () => {
      while (pushed < TOTAL) {
        pushed += block.length;
        if (!s.write(block)) return void s.once('drain', go);
      }
      s.end();
    };
    s.on('error', () => {});
    go();
  });
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const f = await h.startFront({});
  try {
    global.gc?.();
    const rss0 = process.memoryUsage().rss;
    let peak = rss0;
    const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
    const { rep, socket, rest } = await h.socksConnect(f.port, '127.0.0.1', (srv.address() as net.AddressInfo).port);
    assert.equal(rep, 0);
    let got = rest.length;
    socket.on('data', (d) => (got += d.length));
    // Slow phase: 1.5 s reading about 64 KiB every 50 ms.
    socket.pause();
    for (let i = 0; i < 30; i++) {
      await new Promise((r) => setTimeout(r, 50));
      socket.resume();
      await new Promise((r) => setImmediate(r));
      socket.pause();
    }
    const pushedWhileSlow = pushed;
    const gotWhileSlow = got;
    // Whatever the server handed over but the client has not read sits in kernel buffers and the
    // two sockets' write queues: a few MiB, not the push.
    assert.ok(pushedWhileSlow - gotWhileSlow < 64 * 1024 * 1024, `in flight while slow: ${pushedWhileSlow - gotWhileSlow} bytes`);
    // Fast phase: read the rest.
    socket.resume();
    await once(socket, 'end');
    clearInterval(sampler);
    assert.equal(got, TOTAL);
    const grew = peak - rss0;
    assert.ok(grew < 150 * 1024 * 1024, `RSS grew ${(grew / 1048576).toFixed(1)} MiB during a ${TOTAL >> 20} MiB push`);
    socket.destroy();
  } finally {
    srv.close();
    await f.close();
  }
});

test('idle flows are closed after the idle timeout and their session released', async () => {
  const echo = await h.recordingServer();
  const f = await h.startFront({ inbound: { idleTimeoutMs: 300 } });
  try {
    const { rep, socket } = await h.socksConnect(f.port, '127.0.0.1', echo.port);
    assert.equal(rep, 0);
    socket.write('x');
    await once(socket, 'data');
    assert.equal(f.sessions.size, 1);
    await once(socket, 'close');
    for (let i = 0; i < 50 && f.sessions.size > 0; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(f.sessions.size, 0);
  } finally {
    await echo.close();
    await f.close();
  }
});
