// Egress supervision with a real daemon: a microsocks started by the daemon from
// `[egress.NAME.process]`, killed with SIGKILL, restarted after a backoff; while it is down its
// flows fail closed (the target is reachable directly, and the counting server sees nothing);
// `stop` leaves no child process behind.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { alive, call, cliIn, connectVia, countServer, freePort, listening, roundTrip, startDaemon, tempDir, until, type CountServer, type DaemonProc } from '../helpers/daemon.ts';

const hasMicrosocks = spawnSync('sh', ['-c', 'command -v microsocks']).status === 0;

let cs: CountServer;
let d: DaemonProc | null = null;
let mixedPort: number;
let msPort: number;

interface EgressRow {
  name: string;
  health: string;
  process: { state: string; pid: number | null; restarts: number; lastExit: string | null; exempt: boolean } | null;
}

async function supRow(): Promise<EgressRow> {
  const r = (await call(d!, 'egress')) as { egress: EgressRow[] };
  return r.egress.find((e) => e.name === 'sup')!;
}

before(async () => {
  cs = await countServer();
  if (!hasMicrosocks) return;
  const dir = tempDir('sy-supervise-');
  const [dnsPort, m, p] = [await freePort(), await freePort(), await freePort()];
  mixedPort = m;
  msPort = p;
  const configPath = join(dir, 'config.toml');
  writeFileSync(
    configPath,
    `version = 1
default = "direct"
[dns]
listen = ["127.0.0.1:${dnsPort}"]
upstreams = ["udp://127.0.0.1:9"]
hosts = { "count.test" = ["127.0.0.1"] }
# Test hosts live on loopback (the only addresses outside a namespace), and with lan = "direct" a
# name resolving to loopback never goes to a proxy egress (docs/front.md): "policy" lets rules route them.
[enforce]
lan = "policy"

[inbound]
mixed = "127.0.0.1:${mixedPort}"
[egress.sup]
type = "socks5"
endpoint = "socks5://127.0.0.1:${msPort}"
send_domain = false
health = { interval_ms = 60000 }
process = { command = "microsocks", args = ["-i", "127.0.0.1", "-p", "${msPort}", "-b", "127.0.0.2"] }
[[rule]]
egress = "sup"
domains = ["count.test"]
`,
  );
  d = await startDaemon(dir, configPath, ['--no-watch']);
});

after(async () => {
  if (d && d.proc.exitCode === null) {
    d.proc.kill('SIGKILL');
    await d.exited;
  }
  await cs.close();
});

test('a supervised microsocks is restarted after SIGKILL; its flows fail closed meanwhile', async (t) => {
  if (!hasMicrosocks) return t.skip('needs microsocks');
  const first = await until(async () => {
    const r = await supRow();
    return r.process?.state === 'running' && r.process.pid !== null && r.health === 'up' ? r : null;
  }, 'the supervised microsocks');
  assert.equal(first.process!.exempt, false, 'enforcement is off: no exempt cgroup wrapper');
  const s1 = await connectVia(mixedPort, 'count.test', cs.port);
  await roundTrip(s1, 'x');
  assert.deepEqual(cs.sources, ['127.0.0.2'], 'the flow went through the supervised microsocks');
  s1.destroy();

  const pid = first.process!.pid!;
  process.kill(pid, 'SIGKILL');
  await until(async () => !(await listening(msPort)), 'microsocks gone');
  // Down: the flow is refused; the count server (reachable directly) sees nothing.
  await assert.rejects(connectVia(mixedPort, 'count.test', cs.port), /HTTP\/1\.1 50[23]/);
  assert.equal(cs.sources.length, 1, 'nothing reached the target while the egress was down');
  const down = await supRow();
  assert.ok(down.process!.restarts >= 1 || down.process!.state === 'backoff', `state ${JSON.stringify(down.process)}`);
  assert.match(down.process!.lastExit ?? '', /SIGKILL/);

  const again = await until(async () => {
    const r = await supRow();
    return r.process?.state === 'running' && r.process.pid !== pid && r.health === 'up' ? r : null;
  }, 'the restarted microsocks');
  assert.equal(again.process!.restarts, 1);
  const s2 = await connectVia(mixedPort, 'count.test', cs.port);
  await roundTrip(s2, 'y');
  assert.deepEqual(cs.sources, ['127.0.0.2', '127.0.0.2']);
  s2.destroy();

  const st = await cliIn(d!.env, ['egress']);
  assert.match(st.stdout, /^sup +socks5 .*running pid \d+, 1 restarts/m);

  // stop: the supervised child goes with the daemon.
  const newPid = again.process!.pid!;
  const r = await cliIn(d!.env, ['stop']);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(await d!.exited, 0);
  assert.equal(alive(newPid), false, 'no child process left');
  assert.equal(await listening(msPort), false);
  assert.equal(await listening(mixedPort), false);
});
