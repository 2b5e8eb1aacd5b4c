// src/sys/linux/udp-batch.ts: the struct layout koffi uses against gcc's for the real headers,
// and BatchRing on a real socket (several datagrams per recvmmsg, replies per sendmmsg to each
// sender, the receive timeout, shutdown waking the reader).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { BatchRing, closeFd, layout, openUdp, sendTo, shutdownUdp, sockaddr } from '../../src/sys/linux/udp-batch.ts';
import { cleanup, have, tempDir } from './helpers.ts';

const run = promisify(execFile);
const linux = process.platform === 'linux' ? false : 'Linux only';

const FIELDS: Record<string, { c: string; fields: string[] }> = {
  iovec: { c: 'struct iovec', fields: ['iov_base', 'iov_len'] },
  msghdr: { c: 'struct msghdr', fields: ['msg_name', 'msg_namelen', 'msg_iov', 'msg_iovlen', 'msg_control', 'msg_controllen', 'msg_flags'] },
  mmsghdr: { c: 'struct mmsghdr', fields: ['msg_hdr', 'msg_len'] },
  sockaddr_in: { c: 'struct sockaddr_in', fields: ['sin_family', 'sin_port', 'sin_addr', 'sin_zero'] },
  sockaddr_in6: { c: 'struct sockaddr_in6', fields: ['sin6_family', 'sin6_port', 'sin6_flowinfo', 'sin6_addr', 'sin6_scope_id'] },
  timeval: { c: 'struct timeval', fields: ['tv_sec', 'tv_usec'] },
};

describe('udp-batch struct layout', { skip: linux || (!have('gcc') ? 'needs gcc' : false) }, () => {
  test('sizes and offsets equal gcc\'s for <sys/socket.h>, <sys/uio.h>, <netinet/in.h>, <sys/time.h>', async () => {
    const dir = tempDir('layout');
    try {
      const lines: string[] = [];
      for (const [name, { c, fields }] of Object.entries(FIELDS)) {
        lines.push(`  printf("${name} size %zu\\n", sizeof(${c}));`);
        for (const f of fields) lines.push(`  printf("${name} ${f} %zu\\n", offsetof(${c}, ${f}));`);
      }
      const src = `#define _GNU_SOURCE\n#include <stdio.h>\n#include <stddef.h>\n#include <sys/socket.h>\n#include <sys/uio.h>\n#include <netinet/in.h>\n#include <sys/time.h>\nint main(void) {\n${lines.join('\n')}\n  return 0;\n}\n`;
      writeFileSync(join(dir, 'l.c'), src);
      await run('gcc', ['-o', join(dir, 'l'), join(dir, 'l.c')]);
      const { stdout } = await run(join(dir, 'l'));
      const want: Record<string, Record<string, number>> = {};
      for (const l of stdout.trim().split('\n')) {
        const [s, f, v] = l.split(' ') as [string, string, string];
        (want[s] ??= {})[f] = Number(v);
      }
      assert.deepEqual(layout(), want);
    } finally {
      cleanup(dir);
    }
  });
});

describe('BatchRing on a real socket', { skip: linux }, () => {
  test('takes queued datagrams in one call and replies to each sender; times out; wakes on shutdown', async () => {
    const s = openUdp('127.0.0.1', 0, { bufferBytes: 1 << 16, recvTimeoutMs: 100 });
    const ring = new BatchRing(s.fd, 8, 2048);
    const a = createSocket('udp4');
    const b = createSocket('udp4');
    try {
      assert.ok(s.port > 0);
      assert.equal(ring.recv(), 0, 'nothing queued: returns after the receive timeout');
      const got: string[] = [];
      const done = new Promise<void>((resolve) => {
        const on = (who: string) => (m: Buffer) => {
          got.push(`${who}:${m.toString()}`);
          if (got.length === 3) resolve();
        };
        a.on('message', on('a'));
        b.on('message', on('b'));
      });
      await new Promise<void>((r) => a.bind(0, '127.0.0.1', () => r()));
      await new Promise<void>((r) => b.bind(0, '127.0.0.1', () => r()));
      const sent = (sock: typeof a, msg: string): Promise<void> => new Promise((r) => sock.send(msg, s.port, '127.0.0.1', () => r()));
      await sent(a, 'one');
      await sent(b, 'two');
      await sent(a, 'three');
      await new Promise((r) => setTimeout(r, 50));
      const n = ring.recv();
      assert.equal(n, 3, 'all three queued datagrams in one recvmmsg');
      const seen: string[] = [];
      for (let i = 0; i < n; i++) {
        const off = ring.dataOff(i);
        const len = ring.length(i);
        assert.equal(ring.nameLen(i), 16);
        assert.equal(ring.truncated(i), false);
        seen.push(ring.mem.toString('latin1', off, off + len));
        // Echo in upper case from reply slot n-1-i (slots and datagrams need not line up).
        const out = ring.outOff(n - 1 - i);
        ring.mem.write(seen[i]!.toUpperCase(), out, 'latin1');
        ring.reply(n - 1 - i, i, len);
      }
      assert.deepEqual(seen, ['one', 'two', 'three']);
      assert.equal(ring.send(n), 3);
      await done;
      assert.deepEqual(got.sort(), ['a:ONE', 'a:THREE', 'b:TWO']);
      // sendTo from another thread's point of view: one datagram to a stored sender address.
      const back = new Promise<string>((r) => b.once('message', (m) => r(m.toString())));
      assert.equal(sendTo(s.fd, Buffer.from('direct'), sockaddr('127.0.0.1', b.address().port)), true);
      assert.equal(await back, 'direct');
      shutdownUdp(s.fd);
      assert.equal(ring.recv(), -1, 'after shutdown the reader is told to stop');
    } finally {
      ring.free();
      closeFd(s.fd);
      a.close();
      b.close();
    }
  });

  test('openUdp refuses what is not an IP literal and reports a bound port in use', () => {
    assert.throws(() => openUdp('localhost', 0, { bufferBytes: 1 << 16, recvTimeoutMs: 100 }), /not an IP literal/);
    const s = openUdp('127.0.0.1', 0, { bufferBytes: 1 << 16, recvTimeoutMs: 100 });
    try {
      assert.throws(() => openUdp('127.0.0.1', s.port, { bufferBytes: 1 << 16, recvTimeoutMs: 100 }), (e: Error & { code?: string; errno?: number }) => e.code === 'SY_ERR_DNS_FAST_PATH' && e.errno === 98);
      const six = openUdp('::1', 0, { bufferBytes: 1 << 16, recvTimeoutMs: 100 });
      closeFd(six.fd);
    } finally {
      closeFd(s.fd);
    }
  });
});
