// A real daemon process driven through its CLI and control socket: round trips of every read-only
// method, reloads that flip a decision while live flows keep going (the path is proven by the
// source address a counting server sees: microsocks binds 127.0.0.2, direct comes from
// 127.0.0.1), a broken config refused with the old policy kept, a caller running as `nobody`,
// stop releasing everything, and a restart after SIGKILL.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Socket } from 'node:net';
import { createSocket } from 'node:dgram';
import {
  call,
  cli,
  cliIn,
  connectVia,
  countServer,
  freePort,
  listening,
  roundTrip,
  sleep,
  startDaemon,
  tempDir,
  until,
  type CountServer,
  type DaemonProc,
} from '../helpers/daemon.ts';

const isRoot = process.getuid?.() === 0;
const hasSetpriv = spawnSync('setpriv', ['--version']).status === 0;
const hasMicrosocks = spawnSync('sh', ['-c', 'command -v microsocks']).status === 0;
const hasDig = spawnSync('sh', ['-c', 'command -v dig']).status === 0;

let dir: string;
let configPath: string;
let cs: CountServer;
let ms: ChildProcess | null = null;
let d: DaemonProc | null = null;
let dnsPort: number;
let mixedPort: number;
let msPort: number;
const tunnels: Socket[] = [];

function config(target: 'direct' | 'ms'): string {
  return `version = 1
default = "direct"

[dns]
listen = ["127.0.0.1:${dnsPort}"]
upstreams = ["udp://127.0.0.1:9"]   # never asked: test names come from [dns] hosts
hosts = { "count.test" = ["127.0.0.1"], "other.test" = ["127.0.0.1"] }

# Test hosts live on loopback (the only addresses outside a namespace), and with lan = "direct" a
# name resolving to loopback never goes to a proxy egress (docs/front.md): "policy" lets rules route them.
[enforce]
lan = "policy"

[inbound]
mixed = "127.0.0.1:${mixedPort}"

[control]
read_users = ["*"]   # socket 0666: the nobody test connects; the server checks each call

[egress.ms]
type = "socks5"
endpoint = "socks5://127.0.0.1:${msPort}"
send_domain = false

[[rule]]
name = "count"
egress = "${target}"
domains = ["count.test"]

[[rule]]
name = "other"
egress = "ms"
domains = ["other.test"]

[[rule]]
name = "blocked"
egress = "block"
domains = ["blocked.test"]
`;
}

/** Replaces the config file the way editors do (new file renamed over the old). */
function writeConfig(text: string): void {
  const tmp = `${configPath}.tmp`;
  writeFileSync(tmp, text);
  renameSync(tmp, configPath);
}

async function flow(): Promise<{ s: Socket; from: string }> {
  const n = cs.sources.length;
  const s = await connectVia(mixedPort, 'count.test', cs.port);
  tunnels.push(s);
  s.on('error', () => {});
  await roundTrip(s, 'hello');
  assert.equal(cs.sources.length, n + 1, 'the count server saw exactly one new connection');
  return { s, from: cs.sources[n]! };
}

function json(r: { status: number | null; stdout: string; stderr: string }): any {
  assert.equal(r.status, 0, `exit ${r.status}: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

before(async () => {
  dir = tempDir('sy-daemon-');
  configPath = join(dir, 'config.toml');
  cs = await countServer();
  [dnsPort, mixedPort, msPort] = [await freePort(), await freePort(), await freePort()];
  if (hasMicrosocks) {
    ms = spawn('microsocks', ['-i', '127.0.0.1', '-p', String(msPort), '-b', '127.0.0.2'], { stdio: 'ignore' });
    await until(() => listening(msPort), 'microsocks');
  }
  writeConfig(config('direct'));
  d = await startDaemon(dir, configPath);
});

after(async () => {
  for (const s of tunnels) s.destroy();
  if (d && d.proc.exitCode === null) {
    d.proc.kill('SIGKILL');
    await d.exited;
  }
  ms?.kill('SIGKILL');
  await cs?.close();
});

test('status, conns, rdns, explain and rules round trips', async (t) => {
  if (!hasMicrosocks) return t.skip('needs microsocks');
  const f1 = await flow();
  assert.equal(f1.from, '127.0.0.1', 'rule count → direct');
  if (hasDig) {
    const q = spawnSync('dig', ['+short', '+time=2', '+tries=1', '-p', String(dnsPort), '@127.0.0.1', 'count.test', 'A'], { encoding: 'utf8' });
    assert.equal(q.stdout.trim(), '127.0.0.1', `dig: ${q.stdout}${q.stderr}`);
  }

  const st = json(await cliIn(d!.env, ['status', '--format', 'json']));
  assert.equal(st.config.source, configPath);
  assert.equal(st.config.generation, 1);
  assert.equal(st.flows.live, 1);
  assert.equal(st.enforcement.enabled, false);
  assert.deepEqual(st.listeners.dns, [`127.0.0.1:${dnsPort}`]);
  assert.ok(st.egress.some((e: any) => e.name === 'ms' && e.type === 'socks5' && e.endpoint === `127.0.0.1:${msPort}`));
  assert.ok(st.dns.storeEntries >= (hasDig ? 1 : 0));
  const text = await cliIn(d!.env, ['status']);
  assert.equal(text.status, 0, text.stderr);
  assert.match(text.stdout, /generation 1/);
  assert.match(text.stdout, /^ms +socks5/m);

  const conns = json(await cliIn(d!.env, ['conns', '--format', 'json']));
  assert.equal(conns.flows.length, 1);
  const c = conns.flows[0];
  assert.equal(c.domain, 'count.test');
  assert.equal(c.domainSource, 'http-proxy');
  assert.equal(c.egress, 'direct');
  assert.equal(c.rule, 'count');
  // No rule names an app, so the decision did not look the process up; the listing does (lazily).
  assert.equal(c.pid, process.pid, 'conns shows the flow\'s process (this test process)');
  assert.equal(c.changed, false);
  assert.ok(c.bytesUp >= 5 && c.bytesDown >= 5, 'live byte counters');
  assert.match((await cliIn(d!.env, ['conns'])).stdout, new RegExp(`${c.id} .*count\\.test`));

  if (hasDig) {
    const rd = json(await cliIn(d!.env, ['rdns', '127.0.0.1', '--format', 'json']));
    assert.equal(rd.entries[0].ip, '127.0.0.1');
    assert.ok(rd.entries[0].names.some((n: any) => n.name === 'count.test' && n.upstream === 'hosts'));
    const ex = await cliIn(d!.env, ['explain', '--ip', '127.0.0.1', '--port', String(cs.port)]);
    assert.equal(ex.status, 0, ex.stderr);
    assert.match(ex.stdout, /answered by the running daemon \(config .*config\.toml, generation 1\)/);
    assert.match(ex.stdout, /domain count\.test \(from DNS \d+ s ago via hosts, TTL \d+ s left\)/);
    // lan = "policy" in this config (see above): the domain rule decides, not the LAN stage.
    assert.match(ex.stdout, /rule count \(domain count\.test matches count\.test\), egress direct \(up\)/, 'the domain rule decides');
    // A second name for the same address that leads elsewhere makes the answer ambiguous.
    spawnSync('dig', ['+short', '+time=2', '+tries=1', '-p', String(dnsPort), '@127.0.0.1', 'other.test', 'A']);
    const amb = await cliIn(d!.env, ['explain', '--ip', '127.0.0.1', '--format', 'json']);
    const ax = json(amb);
    assert.equal(ax.domain.source, 'dns-ambiguous');
    assert.equal(ax.domain.name, 'other.test', 'the newest name is used');
    assert.match(ax.domain.detail, /^ambiguous: other\.test, count\.test /);
  }
  const exFlow = await cliIn(d!.env, ['explain', '--flow', c.id, '--format', 'json']);
  const xf = json(exFlow);
  assert.equal(xf.answeredBy, 'daemon');
  assert.equal(xf.rule.id, 'count');
  assert.equal(xf.domain.source, 'http-proxy');
  const offline = await cliIn(d!.env, ['explain', '--config', configPath, '--domain', 'count.test']);
  assert.equal(offline.status, 0, offline.stderr);
  assert.match(offline.stdout, /config: file .*config\.toml/);
  assert.doesNotMatch(offline.stdout, /running daemon/);

  await assert.rejects(connectVia(mixedPort, 'blocked.test', cs.port), /403/);
  const rules = json(await cliIn(d!.env, ['rules', '--format', 'json']));
  const hit = (id: string) => rules.rules.find((r: any) => r.rule === id);
  assert.equal(hit('count').connected, 1);
  assert.equal(hit('blocked').refused, 1);
  assert.equal(hit('default').connected, 0);
  assert.match((await cliIn(d!.env, ['rules'])).stdout, /^count +direct +1 +0/m);
});

test('a reload makes a pending revision; approving it flips a decision while a live flow keeps going', async (t) => {
  if (!hasMicrosocks) return t.skip('needs microsocks');
  const live = tunnels[0]!;
  writeFileSync(configPath, config('ms')); // in place: the watcher may race the command; both make the same candidate
  const rr = json(await cliIn(d!.env, ['reload', '--format', 'json']));
  // count.test direct → ms reroutes an existing destination: high risk, so it waits (docs/store.md).
  assert.equal(rr.applied, false);
  assert.equal(rr.state, 'pending');
  assert.equal(rr.risk.level, 'high');
  const still = await flow();
  assert.equal(still.from, '127.0.0.1', 'nothing changes before approve');
  const ap = json(await cliIn(d!.env, ['approve', String(rr.revision), '--format', 'json']));
  assert.equal(ap.state, 'active');
  const f2 = await flow();
  assert.equal(f2.from, '127.0.0.2', 'after approve count.test goes through microsocks');
  assert.equal(await roundTrip(live, 'still-alive'), 'still-alive', 'the flow decided before the change keeps going');
  const conns = json(await cliIn(d!.env, ['conns', '--format', 'json']));
  const byEgress = (e: string) => conns.flows.filter((f: any) => f.egress === e);
  assert.equal(byEgress('direct').length, 2);
  assert.ok(byEgress('direct').every((f: any) => f.changed === true), 'the old direct flows would now go elsewhere');
  assert.equal(byEgress('ms')[0].changed, false);
  for (const f of [still]) f.s.destroy();
});

test('a change of the config file becomes a pending revision; approving it applies it', async (t) => {
  if (!hasMicrosocks) return t.skip('needs microsocks');
  await sleep(400); // let a watcher event from the previous test settle
  const pendingBefore = ((await call(d!, 'status')) as any).policy.pending as number[];
  writeConfig(config('direct'));
  const egressNow = async () => ((await call(d!, 'explain', { query: { network: 'tcp', domain: 'count.test' } })) as any).egress;
  const n = await until(async () => ((await call(d!, 'status')) as any).policy.pending.find((x: number) => !pendingBefore.includes(x)), 'the watcher candidate');
  const st = (await call(d!, 'status')) as any;
  assert.equal(st.config.lastReload.trigger, 'file change');
  assert.equal(st.config.lastReload.state, 'pending');
  assert.ok(st.policy.alerts.some((a: any) => a.kind === 'non-interactive' && a.revision === n), 'a watcher change raises an alert');
  assert.equal(await egressNow(), 'ms', 'the watcher never activates by itself');
  json(await cliIn(d!.env, ['approve', String(n), '--format', 'json']));
  assert.equal(await egressNow(), 'direct');
  const f3 = await flow();
  assert.equal(f3.from, '127.0.0.1', 'back to direct after approving the file change');
  const viaMs = tunnels.find((s) => !s.destroyed && s !== tunnels[0] && s !== tunnels[1])!;
  assert.equal(await roundTrip(viaMs, 'ms-alive'), 'ms-alive', 'the flow through microsocks keeps going');
  // close --changed ends exactly the flows the new policy would route elsewhere (the ms one).
  const closed = once(viaMs, 'close');
  const r = json(await cliIn(d!.env, ['close', '--changed', '--format', 'json']));
  assert.equal(r.closed, 1);
  await closed;
  assert.equal(await roundTrip(tunnels[0]!, 'first-alive'), 'first-alive');
});

test('a broken config is refused and the old policy stays', async (t) => {
  if (!hasMicrosocks) return t.skip('needs microsocks');
  await sleep(400);
  const gen = ((await call(d!, 'status')) as any).config.generation as number;
  writeFileSync(configPath, config('ms').replace('type = "socks5"', 'type = "sockz"'));
  const r = await cliIn(d!.env, ['reload']);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /SY_ERR_DAEMON_RELOAD: config refused, the running policy stays .*SY_ERR_CONFIG/);
  assert.match(r.stderr, /config\.toml:\d+/, 'names the line');
  const st = (await call(d!, 'status')) as any;
  assert.equal(st.config.generation, gen);
  assert.equal(st.config.lastReload.ok, false);
  const f = await flow();
  assert.equal(f.from, '127.0.0.1', 'count.test still direct: the broken config (count → ms) did not apply');
  await sleep(500); // the watcher's attempt on the same broken file is refused too
  assert.equal(((await call(d!, 'status')) as any).config.generation, gen);
  writeConfig(config('direct'));
});

test('as nobody: reads work, own flows only, stop is refused and the daemon lives', async (t) => {
  if (!isRoot || !hasSetpriv) return t.skip(`needs ${isRoot ? 'setpriv' : 'root'}`);
  if (!hasMicrosocks) return t.skip('needs microsocks');
  assert.equal(statSync(d!.endpoint).mode & 0o777, 0o666, 'read_users = ["*"] opens the socket to every local user');
  const st = cli(d!.env, ['status', '--format', 'json'], 'nobody');
  assert.equal(st.status, 0, st.stderr);
  assert.equal(JSON.parse(st.stdout).pid, d!.proc.pid);
  const mine = json(await cliIn(d!.env, ['conns', '--format', 'json']));
  assert.ok(mine.flows.length >= 1, 'root sees the live flows');
  const theirs = JSON.parse(cli(d!.env, ['conns', '--format', 'json'], 'nobody').stdout);
  assert.deepEqual(theirs.flows, [], "nobody sees none of root's flows");
  const stop = cli(d!.env, ['stop'], 'nobody');
  assert.equal(stop.status, 1);
  assert.match(stop.stderr, /SY_ERR_CONTROL_PERMISSION/);
  assert.equal(d!.proc.exitCode, null);
  assert.equal(((await call(d!, 'status')) as any).pid, d!.proc.pid, 'the daemon still answers');
});

test('close FLOW and close --egress end live flows', async (t) => {
  if (!hasMicrosocks) return t.skip('needs microsocks');
  const conns = json(await cliIn(d!.env, ['conns', '--format', 'json']));
  const target = conns.flows[0];
  const r = json(await cliIn(d!.env, ['close', target.id, '--format', 'json']));
  assert.equal(r.closed, 1);
  const after = json(await cliIn(d!.env, ['conns', '--format', 'json']));
  assert.ok(!after.flows.some((f: any) => f.id === target.id));
  const missing = await cliIn(d!.env, ['close', target.id]);
  assert.equal(missing.status, 1);
  assert.match(missing.stderr, /SY_ERR_DAEMON_NO_FLOW/);
  const e = json(await cliIn(d!.env, ['close', '--egress', 'direct', '--format', 'json']));
  assert.equal(e.closed, after.flows.filter((f: any) => f.egress === 'direct').length);
  const flushed = json(await cliIn(d!.env, ['cache', 'flush', '--format', 'json']));
  assert.equal(typeof flushed.flushed, 'number');
});

test('stop leaves no listener and no socket file; after SIGKILL `up` works again; SIGTERM stops cleanly', async () => {
  const r = await cliIn(d!.env, ['stop']);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /stopped/);
  assert.equal(await d!.exited, 0);
  assert.equal(existsSync(d!.endpoint), false, 'control socket removed');
  assert.equal(await listening(mixedPort), false, 'proxy port closed');
  const u = createSocket('udp4');
  await new Promise<void>((res, rej) => {
    u.once('error', rej);
    u.bind(dnsPort, '127.0.0.1', () => res());
  });
  u.close();
  const notRunning = await cliIn(d!.env, ['status']);
  assert.equal(notRunning.status, 1);
  assert.match(notRunning.stderr, /SY_ERR_CONTROL_NOT_RUNNING/);

  // A crash leaves the socket file behind; the next `up` must see it is stale and replace it.
  d = await startDaemon(dir, configPath, ['--no-watch']);
  d.proc.kill('SIGKILL');
  await d.exited;
  assert.equal(existsSync(d.endpoint), true, 'SIGKILL left the socket file');
  d = await startDaemon(dir, configPath, ['--no-watch']);
  const st = (await call(d, 'status')) as any;
  assert.equal(st.pid, d.proc.pid);
  // SIGTERM (systemd's stop without ExecStop, Ctrl-C's sibling) stops it as cleanly as `stop`.
  d.proc.kill('SIGTERM');
  assert.equal(await d.exited, 0);
  assert.equal(existsSync(d.endpoint), false, 'socket removed after SIGTERM');
  assert.equal(await listening(mixedPort), false);
});

function once(s: Socket, ev: string): Promise<void> {
  return new Promise((r) => s.once(ev, () => r()));
}

test('a start that fails half-way releases what it had started (in-process)', async () => {
  const { Daemon } = await import('../../src/daemon/daemon.ts');
  const { createLogger } = await import('../../src/log.ts');
  const { resolvePaths } = await import('../../src/paths.ts');
  const { createServer } = await import('node:net');
  const dir2 = tempDir('sy-startfail-');
  const [p1, p2] = [await freePort(), await freePort()];
  const blocker = createServer().listen(p2, '127.0.0.1');
  await new Promise((r) => blocker.once('listening', r));
  const cfg = join(dir2, 'config.toml');
  writeFileSync(cfg, `version = 1\n[dns]\nlisten = ["127.0.0.1:${p1}"]\nupstreams = ["udp://127.0.0.1:9"]\n[inbound]\nmixed = "127.0.0.1:${p2}"\n`);
  const paths = resolvePaths('user', { platform: 'linux', env: { SWITCHYARD_RUNTIME_DIR: join(dir2, 'run'), SWITCHYARD_STATE_DIR: join(dir2, 'state') }, uid: 0, home: dir2 });
  const daemon = new Daemon({ configPath: cfg, paths, log: createLogger({ level: 'silent' }), watch: false });
  await assert.rejects(daemon.start(), (e: any) => e.code === 'SY_ERR_FRONT_LISTEN');
  await daemon.done;
  // The DNS forwarder had bound p1 (UDP and TCP) before the proxy failed: both must be free again.
  const u = createSocket('udp4');
  await new Promise<void>((res, rej) => {
    u.once('error', rej);
    u.bind(p1, '127.0.0.1', () => res());
  });
  u.close();
  assert.equal(await listening(p1), false);
  assert.equal(existsSync(join(dir2, 'run', 'control.sock')), false);
  blocker.close();
});
