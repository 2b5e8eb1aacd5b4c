// src/sys/linux socket wrappers: struct layouts against the C headers, hostile sockaddr bytes,
// marks, device binding and SO_ORIGINAL_DST errors on real sockets.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SOCKADDR_IN, SOCKADDR_IN6, parseSockaddr, openExemptSocket, getMark, socketFd, bindToDevice, getOriginalDst, raiseFdLimit } from '../../src/sys/linux/socket.ts';
import { OsCallError } from '../../src/errors.ts';
import { FWMARK } from '../../src/ids.ts';
import * as h from './helpers.ts';

test('struct sockaddr_in / sockaddr_in6 layouts match <netinet/in.h>', { skip: h.has('gcc') ? false : 'needs gcc' }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'sy-layout-'));
  try {
    writeFileSync(
      join(dir, 'l.c'),
      `#include <stdio.h>
#include <stddef.h>
#include <netinet/in.h>
int main(void) {
  printf("%zu %zu %zu %zu\\n", sizeof(struct sockaddr_in), offsetof(struct sockaddr_in, sin_family), offsetof(struct sockaddr_in, sin_port), offsetof(struct sockaddr_in, sin_addr));
  printf("%zu %zu %zu %zu %zu %zu\\n", sizeof(struct sockaddr_in6), offsetof(struct sockaddr_in6, sin6_family), offsetof(struct sockaddr_in6, sin6_port), offsetof(struct sockaddr_in6, sin6_flowinfo), offsetof(struct sockaddr_in6, sin6_addr), offsetof(struct sockaddr_in6, sin6_scope_id));
  return 0;
}`,
    );
    execFileSync('gcc', ['-o', join(dir, 'l'), join(dir, 'l.c')]);
    const [v4, v6] = execFileSync(join(dir, 'l'), { encoding: 'utf8' }).trim().split('\n').map((l) => l.split(' ').map(Number));
    assert.deepEqual(v4, [SOCKADDR_IN.size, SOCKADDR_IN.family, SOCKADDR_IN.port, SOCKADDR_IN.addr]);
    assert.deepEqual(v6, [SOCKADDR_IN6.size, SOCKADDR_IN6.family, SOCKADDR_IN6.port, SOCKADDR_IN6.flowinfo, SOCKADDR_IN6.addr, SOCKADDR_IN6.scopeId]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('parseSockaddr reads both families and rejects short or unknown input', () => {
  const a = Buffer.alloc(16);
  a.writeUInt16LE(2, 0);
  a.writeUInt16BE(443, 2);
  Buffer.from([198, 18, 0, 1]).copy(a, 4);
  assert.deepEqual(parseSockaddr(a, 16), { family: 4, port: 443, address: '198.18.0.1' });
  const b = Buffer.alloc(28);
  b.writeUInt16LE(10, 0);
  b.writeUInt16BE(80, 2);
  Buffer.from('20010002000000000000000000000005', 'hex').copy(b, 8);
  assert.deepEqual(parseSockaddr(b, 28), { family: 6, port: 80, address: '2001:2::5' });
  assert.throws(() => parseSockaddr(a, 8), OsCallError);
  assert.throws(() => parseSockaddr(b, 20), OsCallError);
  assert.throws(() => parseSockaddr(Buffer.alloc(16), 16), /unknown family 0/);
  assert.throws(() => parseSockaddr(Buffer.alloc(1), 1), OsCallError);
});

test('openExemptSocket marks the socket before it connects; connect works', async () => {
  const echo = await h.recordingServer();
  try {
    const { socket, marked } = openExemptSocket({ family: 4, mark: FWMARK });
    assert.equal(marked, h.isRoot, 'marked when permitted (CAP_NET_ADMIN)');
    if (marked) assert.equal(getMark(socketFd(socket)!), FWMARK);
    socket.connect(echo.port, '127.0.0.1');
    await once(socket, 'connect');
    socket.write('m');
    const [d] = await once(socket, 'data');
    assert.equal(String(d), 'm');
    socket.destroy();
  } finally {
    await echo.close();
  }
});

test('bindToDevice: lo works, a missing device fails with the call name and errno', { skip: h.isRoot ? false : 'needs root (CAP_NET_RAW)' }, () => {
  const { socket } = openExemptSocket({ family: 4, device: 'lo' });
  socket.destroy();
  assert.throws(
    () => openExemptSocket({ family: 4, device: 'nosuch0' }),
    (e: unknown) => e instanceof OsCallError && e.call === 'setsockopt(SO_BINDTODEVICE)' && e.errno === 19 && e.code === 'SY_ERR_FRONT_SOCKET_CALL',
  );
  const s = openExemptSocket({ family: 6 }).socket;
  assert.throws(() => bindToDevice(socketFd(s)!, 'x'.repeat(20)), /too long/);
  s.destroy();
});

test('getOriginalDst on a connection that was not redirected fails with errno (no conntrack NAT entry)', async () => {
  const srv = net.createServer();
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const accepted = once(srv, 'connection');
  const c = net.connect((srv.address() as net.AddressInfo).port, '127.0.0.1');
  const [s] = (await accepted) as [net.Socket];
  try {
    // Without NAT the kernel either reports ENOENT or (conntrack loaded) the unchanged destination.
    try {
      const d = getOriginalDst(socketFd(s)!, 4);
      assert.deepEqual(d, { family: 4, address: '127.0.0.1', port: (srv.address() as net.AddressInfo).port });
    } catch (e) {
      assert.ok(e instanceof OsCallError && e.call === 'getsockopt(SO_ORIGINAL_DST)' && typeof e.errno === 'number' && e.errno > 0, String(e));
    }
  } finally {
    c.destroy();
    s.destroy();
    srv.close();
  }
});

test('raiseFdLimit raises the soft limit up to the hard limit', () => {
  const r = raiseFdLimit();
  assert.ok(r.soft <= r.hard && r.soft > 0);
  assert.equal(r.soft, r.hard);
});
