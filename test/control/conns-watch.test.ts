// `switchyard conns --watch` against a real daemon process on Linux: the watcher's JSON lines show
// a flow through the mixed inbound appear while it is open and disappear once it is closed, and the
// watcher ends on SIGINT by itself (exit code 0, nothing on stderr), leaving the daemon serving.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { callDaemon } from '../../src/control/index.ts';
import { CLI, TSX, freePort } from '../helpers/daemon.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let dir = '';
let endpoint = '';
let env: NodeJS.ProcessEnv = {};
let daemon: ChildProcess | undefined;
let daemonErr = '';
let echo: Server | undefined;
let echoPort = 0;
let mixedPort = 0;
const sockets = new Set<Socket>();

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'sy-watch-'));
  const dnsPort = await freePort();
  mixedPort = await freePort();
  echo = createServer((s) => {
    sockets.add(s);
    s.on('error', () => {});
    s.on('close', () => sockets.delete(s));
    s.pipe(s);
  });
  echo.listen(0, '127.0.0.1');
  await once(echo, 'listening');
  echoPort = (echo.address() as { port: number }).port;
  writeFileSync(
    join(dir, 'config.toml'),
    `version = 1
default = "direct"

[dns]
listen = ["127.0.0.1:${dnsPort}"]
upstreams = ["udp://127.0.0.1:9"]   # never asked

[inbound]
mixed = "127.0.0.1:${mixedPort}"
`,
  );
  env = { ...process.env, SWITCHYARD_RUNTIME_DIR: join(dir, 'run'), SWITCHYARD_STATE_DIR: join(dir, 'state'), SWITCHYARD_LOG: 'warn' };
  endpoint = join(dir, 'run', 'control.sock');
  daemon = spawn(process.execPath, ['--import', TSX, CLI, 'up', '--config', join(dir, 'config.toml')], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  daemon.stderr!.on('data', (b: Buffer) => (daemonErr += b.toString()));
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (daemon.exitCode !== null) throw new Error(`daemon exited while starting:\n${daemonErr}`);
    try {
      await callDaemon(endpoint, 'status', null, { timeoutMs: 2000 });
      break;
    } catch {
      if (Date.now() > deadline) throw new Error(`daemon did not come up:\n${daemonErr}`);
      await sleep(100);
    }
  }
});

after(async () => {
  for (const s of sockets) s.destroy();
  if (daemon && daemon.exitCode === null) {
    daemon.kill('SIGKILL');
    await once(daemon, 'exit');
  }
  if (echo) await new Promise((r) => echo!.close(r));
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** HTTP CONNECT through the mixed inbound to the echo server; resolves once a byte came back. */
async function tunnel(): Promise<Socket> {
  const s = connect(mixedPort, '127.0.0.1');
  sockets.add(s);
  s.on('error', () => {});
  await once(s, 'connect');
  s.write(`CONNECT 127.0.0.1:${echoPort} HTTP/1.1\r\nHost: 127.0.0.1:${echoPort}\r\n\r\n`);
  // Read the reply head by hand (breaking out of `for await` would destroy the socket).
  const got = await new Promise<string>((res, rej) => {
    let head = '';
    const timer = setTimeout(() => rej(new Error(`no CONNECT reply: ${head}`)), 10_000);
    const onData = (b: Buffer) => {
      head += b.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      clearTimeout(timer);
      s.off('data', onData);
      res(head);
    };
    s.on('data', onData);
  });
  assert.match(got, /^HTTP\/1\.[01] 200/, `CONNECT answered: ${got.split('\r\n')[0]}`);
  // One echoed round trip: the flow is relayed end to end.
  const echoed = new Promise<void>((res) => s.once('data', () => res()));
  s.write('ping');
  await echoed;
  return s;
}

interface Watch {
  proc: ChildProcess;
  lines: { flows: { dst: string; inbound: string }[] }[];
  stderr: () => string;
  /** Index of the first line at or after `from` satisfying `pred`, waiting for it to arrive. */
  until(what: string, pred: (flows: { dst: string }[]) => boolean, from?: number): Promise<number>;
}

function watch(): Watch {
  const proc = spawn(process.execPath, ['--import', TSX, CLI, 'conns', '--watch', '--interval', '0.2', '--format', 'json', '--socket', endpoint], {
    env: { ...env, SWITCHYARD_LOG: 'silent' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: Watch['lines'] = [];
  let buf = '';
  let err = '';
  proc.stdout!.on('data', (b: Buffer) => {
    buf += b.toString();
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      lines.push(JSON.parse(buf.slice(0, i)));
      buf = buf.slice(i + 1);
    }
  });
  proc.stderr!.on('data', (b: Buffer) => (err += b.toString()));
  return {
    proc,
    lines,
    stderr: () => err,
    async until(what, pred, from = 0) {
      const end = Date.now() + 15_000;
      for (;;) {
        for (; from < lines.length; from++) if (pred(lines[from]!.flows)) return from;
        if (proc.exitCode !== null) throw new Error(`the watcher exited (${proc.exitCode}) before ${what}: ${err}`);
        if (Date.now() > end) throw new Error(`timed out waiting for ${what}; last line ${JSON.stringify(lines.at(-1))}`);
        await sleep(50);
      }
    },
  };
}

test('conns --watch shows a flow appearing and disappearing, and exits cleanly on SIGINT', async () => {
  const w = watch();
  try {
    const mine = (flows: { dst: string }[]) => flows.some((f) => f.dst === `127.0.0.1:${echoPort}`);
    const empty = await w.until('a first refresh without our flow', (f) => !mine(f));
    const s = await tunnel();
    const seen = await w.until('the open flow', mine, empty + 1);
    const flow = w.lines[seen]!.flows.find((f) => f.dst === `127.0.0.1:${echoPort}`)!;
    assert.equal(flow.inbound, 'http', 'an HTTP CONNECT through the mixed inbound');
    s.destroy();
    const gone = await w.until('the flow gone', (f) => !mine(f), seen + 1);

    const linesBefore = w.lines.length;
    w.proc.kill('SIGINT');
    const [code, signal] = (await once(w.proc, 'exit')) as [number | null, NodeJS.Signals | null];
    assert.equal(signal, null, 'the watcher handled SIGINT itself instead of being killed by it');
    assert.equal(code, 0);
    assert.equal(w.stderr(), '', 'nothing on stderr');
    assert.ok(w.lines.length - linesBefore <= 1, 'at most the refresh in flight was printed after SIGINT');
    // The daemon is unaffected and has no leftover control connection from the watcher.
    const st = (await callDaemon(endpoint, 'status', null, { timeoutMs: 5000 })) as Record<string, unknown>;
    assert.ok(st);
    assert.equal(daemon!.exitCode, null, 'the daemon is still running');
  } finally {
    if (w.proc.exitCode === null) w.proc.kill('SIGKILL');
  }
});
