// Upstream's read path: a bulk flow reads into slabs of its own and hands them on without a copy,
// small reads are copied out of the shared buffer or the slab. Whatever the mix, every chunk
// handed on must keep its bytes — while held (no two live chunks share memory) and when each is
// recycled as soon as it is consumed (as the relay does once a write completes).
import test from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { createHash, randomBytes } from 'node:crypto';
import { dial, plainSocketFactory, recycleChunk, type Upstream } from '../../src/egress/upstream.ts';

/** Serves: 3 MiB, then small writes one tick apart, then 3 MiB, a few small ones, end. */
async function patternServer(): Promise<{ server: net.Server; port: number; digest: string; total: number }> {
  const parts: Buffer[] = [randomBytes(3 << 20)];
  for (let i = 0; i < 40; i++) parts.push(randomBytes(1 + ((i * 37) % 900)));
  parts.push(randomBytes(3 << 20));
  for (let i = 0; i < 5; i++) parts.push(randomBytes(100 + i));
  const all = Buffer.concat(parts);
  const server = net.createServer((s) => {
    s.on('error', () => {});
    let i = 0;
    const next = (): void => {
      if (i === parts.length) return void s.end();
      const p = parts[i++]!;
      // Large parts as fast as the reader takes them; small ones a moment apart so they arrive
      // as separate small reads after a bulk read.
      if (p.length > 65536) {
        if (s.write(p)) setImmediate(next);
        else s.once('drain', next);
      } else {
        s.write(p);
        setTimeout(next, 2);
      }
    };
    next();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, port: (server.address() as net.AddressInfo).port, digest: createHash('sha256').update(all).digest('hex'), total: all.length };
}

async function readAll(up: Upstream, consume: (c: Buffer) => void): Promise<void> {
  up.onData = (c) => {
    consume(c);
    return true;
  };
  for (const c of up.takePending()) consume(c);
  await once(up.socket, 'end');
  up.destroy();
}

test('chunks held until the end keep their bytes (no two live chunks share memory)', async () => {
  const srv = await patternServer();
  try {
    const up = await dial({ factory: plainSocketFactory, egress: 't', address: '127.0.0.1', port: srv.port, timeoutMs: 5000, role: 'target' });
    const held: Buffer[] = [];
    await readAll(up, (c) => held.push(c));
    const got = Buffer.concat(held);
    assert.equal(got.length, srv.total);
    assert.equal(createHash('sha256').update(got).digest('hex'), srv.digest);
    assert.ok(held.some((c) => c.length < 1024), 'some small reads happened after bulk reads');
  } finally {
    srv.server.close();
  }
});

test('chunks recycled right after use keep the stream intact (slabs come back to the pool)', async () => {
  const srv = await patternServer();
  try {
    for (let round = 0; round < 2; round++) {
      const up = await dial({ factory: plainSocketFactory, egress: 't', address: '127.0.0.1', port: srv.port, timeoutMs: 5000, role: 'target' });
      const h = createHash('sha256');
      let n = 0;
      await readAll(up, (c) => {
        h.update(c);
        n += c.length;
        recycleChunk(c);
      });
      assert.equal(n, srv.total);
      assert.equal(h.digest('hex'), srv.digest);
    }
  } finally {
    srv.server.close();
  }
});
