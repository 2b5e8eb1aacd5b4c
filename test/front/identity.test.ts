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
