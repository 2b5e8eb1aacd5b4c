// Linux FlowIdentity parts that run in the host namespace: /proc/net/tcp parsing, the process of
// a real loopback connection by its 4-tuple, and the cache that spares repeated full scans.
// (The redirected case with SO_ORIGINAL_DST runs in test/front/transparent.test.ts.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { parseProcNetTcp, ProcessLookup } from '../../src/redirect/linux/process-lookup.ts';
import { LinuxFlowIdentity } from '../../src/redirect/linux/identity.ts';

test('parses /proc/net/tcp and tcp6 lines, skipping garbage', () => {
  const v4 = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000  1000        0 123456 1 0000000000000000 20 4 30 10 -1
   1: garbage line
`;
  assert.deepEqual(parseProcNetTcp(v4), [{ local: { address: '127.0.0.1', port: 8080 }, remote: { address: '127.0.0.1', port: 50000 }, uid: 1000, inode: 123456 }]);
  const v6 = `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:0050 0000000000000000FFFF00000100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 777 1 0000000000000000 20 4 30 10 -1
`;
  assert.deepEqual(parseProcNetTcp(v6), [{ local: { address: '::1', port: 80 }, remote: { address: '127.0.0.1', port: 54321 }, uid: 0, inode: 777 }]);
  assert.deepEqual(parseProcNetTcp(''), []);
});

async function pair() {
  const srv = net.createServer();
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const accepted = once(srv, 'connection');
  const c = net.connect((srv.address() as net.AddressInfo).port, '127.0.0.1');
  await once(c, 'connect');
  const [s] = (await accepted) as [net.Socket];
  return { srv, c, s, close: () => (c.destroy(), s.destroy(), srv.close()) };
}

test('the process behind a loopback connection is found by its 4-tuple; later lookups use the cache', async () => {
  const lookup = new ProcessLookup();
  const identity = new LinuxFlowIdentity({ processes: lookup });
  const a = await pair();
  try {
    // From the server side: the client's socket has local = client address, remote = server.
    const client = { address: a.s.remoteAddress!, port: a.s.remotePort!, family: 4 as const };
    const server = { address: a.s.localAddress!, port: a.s.localPort!, family: 4 as const };
    const p = await identity.processOf(client, server);
    assert.equal(p?.pid, process.pid);
    assert.match(p?.name ?? '', /^node/);
    assert.equal(p?.uid, process.getuid?.());
    assert.equal(lookup.stats.fullScans, 1);
    // A second, new connection of the same process is found among recent processes: no full scan.
    const b = await pair();
    const p2 = await identity.processOf({ address: b.s.remoteAddress!, port: b.s.remotePort!, family: 4 }, { address: b.s.localAddress!, port: b.s.localPort!, family: 4 });
    assert.equal(p2?.pid, process.pid);
    assert.equal(lookup.stats.fullScans, 1);
    assert.equal(lookup.stats.mruHits, 1);
    b.close();
    // A 4-tuple nobody owns: undefined, not an error.
    assert.equal(await identity.processOf({ address: '127.0.0.1', port: 1, family: 4 }, { address: '127.0.0.1', port: 2, family: 4 }), undefined);
  } finally {
    a.close();
  }
});

test('identify() on a connection that was not redirected fails with SY_ERR_FRONT_IDENTITY or reports the real destination', async () => {
  const a = await pair();
  try {
    try {
      const id = await new LinuxFlowIdentity().identify(a.s);
      assert.equal(id.origDst.port, a.s.localPort);
    } catch (e) {
      assert.equal((e as { code?: string }).code, 'SY_ERR_FRONT_IDENTITY');
    }
  } finally {
    a.close();
  }
});

test('a listing fills in the process lazily, through the mixed inbound and the Linux identity', async () => {
  const h = await import('./helpers.ts');
  const echo = await h.recordingServer();
  const f = await h.startFront({ identity: new LinuxFlowIdentity() });
  try {
    const { rep, socket } = await h.socksConnect(f.port, '127.0.0.1', echo.port);
    assert.equal(rep, 0);
    // No app rule in the config: the decision did not look the process up.
    assert.equal(f.sessions.list()[0]?.process, null);
    const listed = await f.sessions.listWithProcesses();
    assert.equal(listed[0]?.process?.pid, process.pid, 'the SOCKS client is this process');
    socket.destroy();
  } finally {
    await echo.close();
    await f.close();
  }
});

async function pairOn(host: string) {
  const srv = net.createServer();
  srv.listen(0, host);
  await once(srv, 'listening');
  const accepted = once(srv, 'connection');
  const c = net.connect((srv.address() as net.AddressInfo).port, host);
  await once(c, 'connect');
  const [s] = (await accepted) as [net.Socket];
  return { c, s, close: () => (c.destroy(), s.destroy(), srv.close()) };
}

test('socket → inode by sock_diag agrees with /proc/net/tcp{,6}, IPv4 and IPv6; a missing tuple is undefined', async () => {
  const viaDiag = new ProcessLookup();
  const viaText = new ProcessLookup(undefined, 100, { sockDiag: false });
  for (const host of ['127.0.0.1', '::1']) {
    const a = await pairOn(host);
    try {
      const fam = host.includes(':') ? (6 as const) : (4 as const);
      // Both ends: the client's socket and the accepted one are different inodes.
      const client = { address: a.c.localAddress!, port: a.c.localPort!, family: fam };
      const server = { address: a.s.localAddress!, port: a.s.localPort!, family: fam };
      for (const [l, r] of [[client, server], [server, client]] as const) {
        const d = await viaDiag.inodeOf(l, r);
        const t = await viaText.inodeOf(l, r);
        assert.ok(d && d.inode > 0, `${host}: sock_diag found the socket`);
        assert.deepEqual(d, t, `${host}: same inode and uid both ways`);
      }
      assert.equal(await viaDiag.inodeOf({ address: host, port: 1, family: fam }, { address: host, port: 2, family: fam }), undefined);
    } finally {
      a.close();
    }
  }
  assert.equal(viaDiag.stats.procNetReads, 0, 'the real /proc: no /proc/net/tcp reads');
  assert.ok(viaDiag.stats.diagLookups >= 6);
  assert.equal(viaText.stats.diagLookups, 0);
});

test('sock_diag answers: hostile and odd datagrams are named failures, not crashes', async () => {
  const { parseDiagAnswer, diagRequest } = await import('../../src/redirect/linux/process-lookup-diag.ts');
  const msg = (type: number, seq: number, payload: Buffer) => {
    const b = Buffer.alloc(16 + payload.length);
    b.writeUInt32LE(16 + payload.length, 0);
    b.writeUInt16LE(type, 4);
    b.writeUInt32LE(seq, 8);
    payload.copy(b, 16);
    return b;
  };
  const diagMsg = Buffer.alloc(72);
  diagMsg.writeUInt32LE(1000, 64);
  diagMsg.writeUInt32LE(4242, 68);
  const errno = (e: number) => {
    const p = Buffer.alloc(20);
    p.writeInt32LE(-e, 0);
    return p;
  };
  const ok = msg(20, 7, diagMsg);
  assert.deepEqual(parseDiagAnswer(ok, ok.length, 7), { inode: 4242, uid: 1000 });
  assert.equal(parseDiagAnswer(ok, ok.length, 8), undefined, 'another request’s answer is skipped');
  const enoent = msg(2, 7, errno(2));
  assert.equal(parseDiagAnswer(enoent, enoent.length, 7), null);
  const eperm = msg(2, 7, errno(1));
  assert.throws(() => parseDiagAnswer(eperm, eperm.length, 7), /errno 1/);
  const short = msg(20, 7, Buffer.alloc(10));
  assert.throws(() => parseDiagAnswer(short, short.length, 7), /inet_diag_msg: 10 bytes/);
  const shortErr = msg(2, 7, Buffer.alloc(2));
  assert.throws(() => parseDiagAnswer(shortErr, shortErr.length, 7), /shorter than its error field/);
  assert.throws(() => parseDiagAnswer(ok, 10, 7), /truncated header/);
  const lying = Buffer.from(ok);
  lying.writeUInt32LE(5000, 0);
  assert.throws(() => parseDiagAnswer(lying, lying.length, 7), /exceeds/);
  let seed = 9;
  const rnd = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 0x100000000;
  for (let i = 0; i < 2000; i++) {
    const b = Buffer.from(Array.from({ length: Math.floor(rnd() * 120) }, () => Math.floor(rnd() * 256)));
    if (b.length >= 4 && rnd() < 0.5) b.writeUInt32LE(Math.floor(rnd() * (b.length + 8)), 0);
    try {
      parseDiagAnswer(b, b.length, 7);
    } catch (e) {
      assert.ok(e instanceof Error && e.message.length > 0);
    }
  }
  // Unparsable endpoints make no request at all.
  assert.equal(diagRequest({ address: 'x.y', port: 1, family: 4 }, { address: '127.0.0.1', port: 2, family: 4 }, 1), undefined);
  assert.equal(diagRequest({ address: '1.2.3.999', port: 1, family: 4 }, { address: '127.0.0.1', port: 2, family: 4 }, 1), undefined);
});
