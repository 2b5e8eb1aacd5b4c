// `cache.flush` through a real daemon's control socket: cached answers are forgotten (the upstream
// is asked again) while the resolver paths survive — the default upstream's TCP connection and the
// one opened through a SOCKS5 egress (microsocks) are both reused after the flush. Connections are
// counted by a relay in front of unbound, so "reused" means the relay accepted no new connection.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { call, freePort, listening, startDaemon, tempDir, until, type DaemonProc } from '../helpers/daemon.ts';
import { cleanup, dig, have, startUnbound, type Unbound } from '../dns/helpers.ts';

const skip = !have('unbound') || !have('dig') || !have('microsocks') ? 'needs unbound, dig and microsocks' : false;

/** A TCP relay to `port` that counts the connections it accepted. */
async function countingRelay(port: number): Promise<{ port: number; accepted: () => number; close: () => Promise<void> }> {
  let n = 0;
  const socks = new Set<Socket>();
  const server: Server = createServer((c) => {
    n++;
    const up = connect(port, '127.0.0.1');
    for (const s of [c, up]) {
      socks.add(s);
      s.on('error', () => {});
      s.on('close', () => socks.delete(s));
    }
    c.pipe(up).pipe(c);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as { port: number }).port,
    accepted: () => n,
    close: () =>
      new Promise<void>((r) => {
        for (const s of socks) s.destroy();
        server.close(() => r());
      }),
  };
}

let dir: string;
let ub: Unbound;
let relay: Awaited<ReturnType<typeof countingRelay>>;
let egressRelay: Awaited<ReturnType<typeof countingRelay>>;
let ms: ChildProcess | null = null;
let d: DaemonProc | null = null;
let dnsPort: number;

before(async () => {
  if (skip) return;
  dir = tempDir('sy-flush-');
  ub = await startUnbound({ dir, localData: ['a.test. 300 IN A 127.3.0.1', 'e.test. 300 IN A 127.3.0.2'] });
  relay = await countingRelay(ub.port);
  egressRelay = await countingRelay(ub.port);
  const msPort = await freePort();
  ms = spawn('microsocks', ['-i', '127.0.0.1', '-p', String(msPort)], { stdio: 'ignore' });
  await until(() => listening(msPort), 'microsocks');
  dnsPort = await freePort();
  const configPath = join(dir, 'config.toml');
  writeFileSync(
    configPath,
    `version = 1
default = "direct"

[dns]
listen = ["127.0.0.1:${dnsPort}"]
upstreams = ["tcp://127.0.0.1:${relay.port}"]
rate_limit = 0

[inbound]
mixed = false

[egress.ms]
type = "socks5"
endpoint = "socks5://127.0.0.1:${msPort}"
dns = ["tcp://127.0.0.1:${egressRelay.port}"]

[[rule]]
egress = "ms"
domains = ["e.test"]
`,
  );
  d = await startDaemon(dir, configPath);
});

after(async () => {
  if (d && d.proc.exitCode === null) {
    d.proc.kill('SIGTERM');
    await Promise.race([d.exited, new Promise((r) => setTimeout(r, 5000))]);
    if (d.proc.exitCode === null) d.proc.kill('SIGKILL');
  }
  ms?.kill();
  await relay?.close();
  await egressRelay?.close();
  await ub?.stop();
  if (dir) cleanup(dir);
});

const count = (q: string) => ub.queries().filter((x) => x === q).length;

test('cache.flush forgets answers and keeps the upstream and egress resolver connections', { skip }, async () => {
  for (const name of ['a.test', 'e.test']) {
    assert.equal((await dig('127.0.0.1', dnsPort, [name, 'A'])).status, 'NOERROR');
    assert.equal((await dig('127.0.0.1', dnsPort, [name, 'A'])).status, 'NOERROR');
    assert.equal(count(`${name}. A`), 1, `${name}: the second query was a cache hit`);
  }
  assert.equal(relay.accepted(), 1);
  assert.equal(egressRelay.accepted(), 1, 'e.test went through its egress resolver');

  const r = (await call(d!, 'cache.flush')) as { flushed: number };
  assert.equal(r.flushed, 2);

  for (const name of ['a.test', 'e.test']) {
    const ans = await dig('127.0.0.1', dnsPort, [name, 'A']);
    assert.equal(ans.status, 'NOERROR');
    assert.equal(count(`${name}. A`), 2, `${name}: asked upstream again after the flush`);
  }
  // Reused within the upstream connections' 10 s idle time: no new connection anywhere.
  assert.equal(relay.accepted(), 1, 'the default upstream connection survived the flush');
  assert.equal(egressRelay.accepted(), 1, 'the egress resolver path survived the flush');
});
