// src/sys/linux/tcp-epoll.ts: the constants and the epoll_event layout against gcc's for the
// real headers, and the bench anchor built on it (bench/relay-epoll-proto.ts) relaying a SOCKS5
// CONNECT flow byte for byte both ways — its figures in bench:relay are only worth something if
// it really relays.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { once } from 'node:events';
import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';
import * as L from '../../src/sys/linux/tcp-epoll.ts';
import { has } from './helpers.ts';

const run = promisify(execFile);
const linux = process.platform === 'linux' ? false : 'Linux only';

describe('tcp-epoll constants and layout', { skip: linux || (!has('gcc') ? 'needs gcc' : false) }, () => {
  test('equal gcc\'s for <sys/epoll.h>, <sys/socket.h>, <netinet/tcp.h>, <errno.h>, <sys/eventfd.h>', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sy-tcp-epoll-'));
    try {
      const names = ['AF_INET', 'AF_INET6', 'SOCK_STREAM', 'SOCK_NONBLOCK', 'SOCK_CLOEXEC', 'SOL_SOCKET', 'SO_REUSEADDR', 'SO_ERROR', 'IPPROTO_TCP', 'TCP_NODELAY', 'SHUT_WR', 'SHUT_RDWR', 'EPOLL_CLOEXEC', 'EPOLL_CTL_ADD', 'EPOLL_CTL_DEL', 'EPOLL_CTL_MOD', 'EPOLLIN', 'EPOLLOUT', 'EPOLLERR', 'EPOLLHUP', 'EPOLLRDHUP', 'EFD_NONBLOCK', 'EFD_CLOEXEC', 'EAGAIN', 'EINTR', 'EINPROGRESS', 'ECONNREFUSED', 'ENETUNREACH', 'EHOSTUNREACH', 'ETIMEDOUT'];
      const lines = names.map((n) => `  printf("${n} %ld\\n", (long)(${n}));`);
      lines.push('  printf("EPOLL_EVENT_SIZE %zu\\n", sizeof(struct epoll_event));', '  printf("EPOLL_DATA_OFF %zu\\n", offsetof(struct epoll_event, data));');
      const src = `#define _GNU_SOURCE\n#include <stdio.h>\n#include <stddef.h>\n#include <errno.h>\n#include <sys/epoll.h>\n#include <sys/eventfd.h>\n#include <sys/socket.h>\n#include <netinet/in.h>\n#include <netinet/tcp.h>\nint main(void) {\n${lines.join('\n')}\n  return 0;\n}\n`;
      writeFileSync(join(dir, 'c.c'), src);
      await run('gcc', ['-o', join(dir, 'c'), join(dir, 'c.c')]);
      const { stdout } = await run(join(dir, 'c'));
      const want: Record<string, number> = {};
      for (const l of stdout.trim().split('\n')) {
        const [k, v] = l.split(' ') as [string, string];
        want[k] = Number(v);
      }
      const got: Record<string, number> = {};
      for (const k of Object.keys(want)) got[k] = (L as unknown as Record<string, number>)[k]!;
      assert.deepEqual(got, want);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('the epoll relay anchor (bench/relay-epoll-proto.ts)', { skip: linux }, () => {
  test('relays 8 MiB each way with matching sha256, half-close carried, one arrival at the target', async () => {
    const up = randomBytes(8 << 20);
    const down = randomBytes(8 << 20);
    let arrivals = 0;
    let gotUp = createHash('sha256');
    let gotUpLen = 0;
    const target = net.createServer({ allowHalfOpen: true }, (s) => {
      arrivals++;
      s.on('data', (d: Buffer) => {
        gotUp.update(d);
        gotUpLen += d.length;
      });
      // Answer only after the client's half-close arrived: the FIN must cross the relay.
      s.on('end', () => s.end(down));
    });
    target.listen(0, '127.0.0.1');
    await once(target, 'listening');
    const proc = spawn(process.execPath, ['--import', 'tsx', new URL('../../bench/relay-epoll-proto.ts', import.meta.url).pathname], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      const [line] = (await once(proc.stdout!, 'data')) as [Buffer];
      const port = Number(String(line).trim());
      const c = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
      await once(c, 'connect');
      c.write(Buffer.from([5, 1, 0]));
      const req = Buffer.from([5, 1, 0, 1, 127, 0, 0, 1, 0, 0]);
      req.writeUInt16BE((target.address() as net.AddressInfo).port, 8);
      let buf = Buffer.alloc(0);
      let phase = 0;
      const h = createHash('sha256');
      let n = 0;
      const done = new Promise<void>((resolve, reject) => {
        c.on('data', (d: Buffer) => {
          if (phase === 2) {
            h.update(d);
            n += d.length;
            return;
          }
          buf = Buffer.concat([buf, d]);
          if (phase === 0 && buf.length >= 2) {
            assert.deepEqual([...buf.subarray(0, 2)], [5, 0]);
            buf = buf.subarray(2);
            phase = 1;
            c.write(req);
          }
          if (phase === 1 && buf.length >= 10) {
            assert.equal(buf[1], 0, 'CONNECT succeeded');
            const rest = buf.subarray(10);
            phase = 2;
            h.update(rest);
            n += rest.length;
            c.end(up);
          }
        });
        c.on('end', resolve);
        c.on('error', reject);
      });
      // A relay that loses the FIN or stalls must fail this test, not hang the runner (the child
      // would keep it alive): a deadline far above the ~1 s this takes.
      let deadline: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        deadline = setTimeout(() => reject(new Error('relay did not finish within 30 s')), 30_000);
      });
      try {
        await Promise.race([done, timeout]);
      } finally {
        clearTimeout(deadline);
        c.destroy();
      }
      c.destroy();
      assert.equal(arrivals, 1);
      assert.equal(gotUpLen, up.length);
      assert.equal(gotUp.digest('hex'), createHash('sha256').update(up).digest('hex'));
      gotUp = createHash('sha256');
      assert.equal(n, down.length);
      assert.equal(h.digest('hex'), createHash('sha256').update(down).digest('hex'));
    } finally {
      proc.kill('SIGTERM');
      target.close();
    }
  });
});
