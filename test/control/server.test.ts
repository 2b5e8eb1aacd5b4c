// The control server over a real Unix socket: round trips, hostile frames on raw connections
// (the server answers or closes, and keeps serving), socket/directory modes, stale sockets, and
// callers who are not root — a real client process run as `nobody` through setpriv.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync, statSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ControlServer, type ControlServerOptions } from '../../src/control/server.ts';
import { ControlClient, callDaemon } from '../../src/control/client.ts';
import { MethodRegistry } from '../../src/control/registry.ts';
import { unixPeerIdentity } from '../../src/control/identity-unix.ts';
import { FrameDecoder, encodeFrame, parseBody, MAX_BODY_BYTES } from '../../src/control/frame.ts';
import { SYSTEM_ACCOUNT_FILES, type AccountFiles } from '../../src/control/accounts.ts';
import { isSwitchyardError } from '../../src/errors.ts';

const isRoot = process.getuid?.() === 0;
const hasSetpriv = spawnSync('setpriv', ['--version']).status === 0;
const NOBODY = 65534;
const TEST_GID = 4242; // a group that exists only in this test's group file
const HELPER = new URL('./helpers/call.ts', import.meta.url).pathname;
const TSX = new URL('../../node_modules/tsx/dist/esm/index.mjs', import.meta.url).pathname;

let dir: string;
let files: AccountFiles;
const servers: ControlServer[] = [];
let stopCalls = 0;
let watchAborted = 0;

function registry(): MethodRegistry {
  return new MethodRegistry()
    .register({ name: 'ping', permission: 'read', summary: 'liveness', handler: () => 'pong' })
    .register({ name: 'echo', permission: 'read', summary: 'echo params', handler: (p) => p })
    .register({ name: 'whoami', permission: 'read', summary: 'caller', handler: (_p, ctx) => ({ uid: ctx.caller.uid, privileged: ctx.caller.privileged, reason: ctx.caller.reason }) })
    .register({ name: 'stop', permission: 'change', summary: 'stop', handler: () => ++stopCalls })
    .register({ name: 'big', permission: 'read', summary: 'oversize result', handler: () => 'z'.repeat(MAX_BODY_BYTES) })
    .register({ name: 'boom', permission: 'read', summary: 'throws', handler: () => { throw new Error('secret internals'); } })
    .register({
      name: 'watch',
      permission: 'read',
      summary: 'streams flows (private)',
      privacy: { items: 'flows', ownerOf: (f) => (f as { uid?: number }).uid },
      handler: async (p, ctx) => {
        const n = (p as { n?: number } | null)?.n ?? 3;
        for (let i = 1; i <= n; i++) await ctx.send({ tick: i, flows: [{ id: i, uid: 0 }, { id: 100 + i, uid: NOBODY }] });
        if ((p as { hang?: boolean } | null)?.hang) {
          await new Promise((r) => ctx.signal.addEventListener('abort', r));
          watchAborted++;
        }
        return { done: true, flows: [] };
      },
    })
    .register({
      name: 'conns',
      permission: 'read',
      summary: 'flows (private)',
      privacy: { items: 'flows', ownerOf: (f) => (f as { uid?: number }).uid },
      handler: () => ({ total: 3, flows: [{ id: 1, uid: 0 }, { id: 2, uid: NOBODY }, { id: 3 }] }),
    });
}

async function start(name: string, extra: Partial<ControlServerOptions> = {}): Promise<ControlServer> {
  const s = new ControlServer({
    endpoint: join(dir, name, 'control.sock'),
    mode: 'service',
    registry: registry(),
    identify: unixPeerIdentity,
    files,
    group: 'sytest',
    ...extra,
  });
  await s.listen();
  servers.push(s);
  return s;
}

function raw(path: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect(path);
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

/** Reads replies from a raw socket until `n` arrived or the socket closed. */
function readReplies(s: Socket, n: number): Promise<{ replies: Record<string, unknown>[]; closed: boolean }> {
  return new Promise((resolve) => {
    const d = new FrameDecoder();
    const replies: Record<string, unknown>[] = [];
    let done = false;
    const finish = (closed: boolean) => {
      if (done) return;
      done = true;
      resolve({ replies, closed });
    };
    s.on('data', (c: Buffer) => {
      for (const b of d.push(c)) replies.push(parseBody(b));
      if (replies.length >= n) finish(false);
    });
    s.on('close', () => finish(true));
    s.on('error', () => finish(true));
  });
}

function header(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n, 0);
  return b;
}

/** Runs the helper client as another user (async: the server under test lives in this process). */
async function runAs(args: string[], endpoint: string, methods: string[]): Promise<{ uid: number; out: { ok: boolean; code?: string; result?: unknown; partials?: unknown[] }[] }> {
  const child = spawn('setpriv', [...args, process.execPath, '--import', TSX, HELPER, endpoint, ...methods], {
    env: { PATH: process.env['PATH'], HOME: '/' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const status = await new Promise<number | null>((r) => child.once('close', r));
  assert.equal(status, 0, `helper failed: ${stderr}`);
  return JSON.parse(stdout.trim().split('\n').pop()!);
}

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'sy-control-'));
  chmodSync(dir, 0o755); // nobody must be able to reach the sockets below
  // Account files for the test: the real passwd (so `nobody` has a name), a group file with the
  // control group `sytest` whose only member is listed by supplementary gid, not by name.
  files = { passwd: SYSTEM_ACCOUNT_FILES.passwd, group: join(dir, 'group.txt'), proc: '/proc' };
  writeFileSync(files.group, `root:x:0:\nnogroup:x:65534:\nsytest:x:${TEST_GID}:\n`);
});

after(async () => {
  for (const s of servers) await s.close();
  rmSync(dir, { recursive: true, force: true });
});

test('round trips: methods, pipelined calls, errors with codes', async () => {
  const s = await start('rt');
  const c = await ControlClient.connect(s.opts.endpoint);
  const big = { list: Array.from({ length: 5000 }, (_, i) => ({ i, s: 'x'.repeat(20) })) };
  const [a, b, e, w] = await Promise.all([c.call('ping'), c.call('echo', { n: 1, u: 'ü' }), c.call('echo', big), c.call('whoami')]);
  assert.equal(a, 'pong');
  assert.deepEqual(b, { n: 1, u: 'ü' });
  assert.deepEqual(e, big);
  assert.deepEqual(w, { uid: process.getuid!(), privileged: isRoot, reason: isRoot ? 'root' : w && (w as { reason: string }).reason });
  await assert.rejects(c.call('nope'), (err) => isSwitchyardError(err) && err.code === 'SY_ERR_CONTROL_UNKNOWN_METHOD');
  // A handler's own exception is not leaked to the caller; it gets a generic code.
  await assert.rejects(c.call('boom'), (err) => isSwitchyardError(err) && err.code === 'SY_ERR_CONTROL_FAILED' && !err.message.includes('secret'));
  // A result over 1 MiB becomes an error reply, and the connection keeps working.
  await assert.rejects(c.call('big'), (err) => isSwitchyardError(err) && err.code === 'SY_ERR_CONTROL_TOO_LARGE');
  assert.equal(await c.call('ping'), 'pong');
  c.close();
  assert.equal(await callDaemon(s.opts.endpoint, 'ping'), 'pong');
});

test('streaming replies: partials in order, then the final; a disconnect aborts the handler', async () => {
  const s = await start('stream');
  const parts: unknown[] = [];
  const final = await callDaemon(s.opts.endpoint, 'watch', { n: 3 }, { onPartial: (p) => parts.push(p) });
  assert.deepEqual(final, { done: true, flows: [] });
  assert.deepEqual(parts.map((p) => (p as { tick: number }).tick), [1, 2, 3]);
  assert.equal((parts[0] as { flows: unknown[] }).flows.length, 2, 'root sees every flow');

  const c = await ControlClient.connect(s.opts.endpoint);
  const got: unknown[] = [];
  const pending = c.call('watch', { n: 1, hang: true }, { timeoutMs: 0, onPartial: (p) => got.push(p) });
  pending.catch(() => {});
  while (got.length === 0) await new Promise((r) => setTimeout(r, 10));
  c.close();
  await assert.rejects(pending, (e) => isSwitchyardError(e) && e.code === 'SY_ERR_CONTROL_CLOSED');
  while (watchAborted === 0) await new Promise((r) => setTimeout(r, 10));
  assert.equal(s.connections, 0);
});

test('hostile frames: error reply or close, and the server keeps serving', async () => {
  const s = await start('hostile', { frameTimeoutMs: 500 });
  const path = s.opts.endpoint;

  // Non-JSON, wrong version, deep nesting and empty frames on ONE connection: each gets its
  // own error reply, and a good request afterwards on the same connection still works.
  const a = await raw(path);
  const got = readReplies(a, 6);
  const body = (t: string) => Buffer.concat([header(Buffer.byteLength(t)), Buffer.from(t)]);
  a.write(body('not json at all'));
  a.write(body('{"v":9,"id":5,"method":"ping"}'));
  a.write(body('['.repeat(50_000) + ']'.repeat(50_000)));
  a.write(header(0));
  a.write(Buffer.concat([header(4), Buffer.from([0xff, 0xfe, 0xfd, 0xfc])]));
  a.write(encodeFrame({ v: 1, id: 9, method: 'ping' }));
  const r = await got;
  assert.deepEqual(
    r.replies.map((x) => [x['id'], (x['error'] as { code?: string } | undefined)?.code ?? x['result']]),
    [
      [null, 'SY_ERR_CONTROL_BAD_FRAME'],
      [5, 'SY_ERR_CONTROL_VERSION'],
      [null, 'SY_ERR_CONTROL_BAD_FRAME'],
      [null, 'SY_ERR_CONTROL_BAD_FRAME'],
      [null, 'SY_ERR_CONTROL_BAD_FRAME'],
      [9, 'pong'],
    ],
  );
  a.destroy();

  // A huge announced length: TOO_LARGE, then the server closes this connection.
  const b = await raw(path);
  const gotB = readReplies(b, 99);
  b.write(header(0xfffffff0));
  b.write(Buffer.alloc(1000, 0x41));
  const rb = await gotB;
  assert.equal(rb.closed, true);
  assert.equal((rb.replies[0]?.['error'] as { code: string }).code, 'SY_ERR_CONTROL_TOO_LARGE');

  // A truncated frame and then silence: closed after the frame deadline with TIMEOUT.
  const c = await raw(path);
  const gotC = readReplies(c, 99);
  c.write(Buffer.concat([header(100), Buffer.from('{"v":1,')]));
  const rc = await gotC;
  assert.equal(rc.closed, true);
  assert.equal((rc.replies[0]?.['error'] as { code: string }).code, 'SY_ERR_CONTROL_TIMEOUT');

  // A truncated frame and a hang-up: nothing to answer; no crash.
  const d = await raw(path);
  d.end(Buffer.concat([header(100), Buffer.from('{"v":1')]));
  await new Promise((r) => d.once('close', r));

  // Random garbage in bulk on a few connections.
  for (let i = 0; i < 5; i++) {
    const g = await raw(path);
    g.on('error', () => {});
    g.end(Buffer.from(Array.from({ length: 4096 }, (_, j) => (j * 7919 + i * 31) & 0xff)));
  }

  assert.equal(await callDaemon(path, 'ping'), 'pong');
});

test('a frame trickled byte by byte is cut off at its deadline', async () => {
  const s = await start('trickle', { frameTimeoutMs: 400 });
  const a = await raw(s.opts.endpoint);
  const got = readReplies(a, 99);
  const frame = encodeFrame({ v: 1, id: 1, method: 'echo', params: 'x'.repeat(200) });
  let i = 0;
  const timer = setInterval(() => {
    if (i < frame.length && !a.destroyed) a.write(frame.subarray(i, ++i));
  }, 20);
  const r = await got;
  clearInterval(timer);
  assert.equal(r.closed, true);
  assert.ok(i < frame.length, 'cut off before the frame was complete');
  assert.equal((r.replies[0]?.['error'] as { code: string }).code, 'SY_ERR_CONTROL_TIMEOUT');
});

test('connection limits per uid and per class: a flood by one user locks out neither others nor root', async () => {
  // Identities handed out in accept order (connections are opened one at a time below).
  const ids: { uid: number; gid: number; pid: number }[] = [];
  const s = await start('limits', { maxPerUid: 2, maxConnections: 3, identify: () => ids.shift()! });
  const open = async (uid: number) => {
    ids.push({ uid, gid: uid, pid: 0 });
    const c = await raw(s.opts.endpoint);
    const got = readReplies(c, 1);
    c.write(encodeFrame({ v: 1, id: 1, method: 'ping' }));
    const r = await got;
    return { c, reply: r.replies[0] };
  };
  const conns: Socket[] = [];
  const code = (x: Record<string, unknown> | undefined) => (x?.['error'] as { code?: string } | undefined)?.code ?? x?.['result'];
  for (const [uid, want] of [[1001, 'pong'], [1001, 'pong'], [1001, 'SY_ERR_CONTROL_BUSY'], [1002, 'pong'], [1003, 'SY_ERR_CONTROL_BUSY'], [0, 'pong']] as const) {
    const { c, reply } = await open(uid);
    conns.push(c);
    assert.equal(code(reply), want, `uid ${uid}`);
  }
  for (const c of conns) c.destroy();
  while (s.connections > 0) await new Promise((r) => setTimeout(r, 10));
  assert.equal(code((await open(1003)).reply), 'pong', 'slots are given back on close');
});

test('too many queued requests on one connection close it; others unaffected', async () => {
  const s = await start('flood', { maxQueued: 4 });
  const a = await raw(s.opts.endpoint);
  const got = readReplies(a, 1000);
  const frames = Array.from({ length: 50 }, (_, i) => encodeFrame({ v: 1, id: i, method: 'ping' }));
  a.write(Buffer.concat(frames));
  const r = await got;
  assert.equal(r.closed, true);
  assert.ok(r.replies.some((x) => (x['error'] as { code?: string } | undefined)?.code === 'SY_ERR_CONTROL_BUSY'));
  assert.equal(await callDaemon(s.opts.endpoint, 'ping'), 'pong');
});

test('socket and runtime directory modes per mode', async (t) => {
  if (!isRoot) return t.skip('needs root (chown to the control group)');
  // Service mode, control group exists: 0660 root:sytest; directory 0755.
  const svc = await start('svc');
  const st = statSync(svc.opts.endpoint);
  assert.ok(st.isSocket());
  assert.equal(st.mode & 0o777, 0o660);
  assert.equal(st.gid, TEST_GID);
  assert.equal(statSync(join(dir, 'svc')).mode & 0o777, 0o755);
  // Service mode without the group: root only.
  const nog = await start('nogroup', { group: 'no-such-group' });
  assert.equal(statSync(nog.opts.endpoint).mode & 0o777, 0o600);
  // read_users set: others must connect, so 0666 (the server checks each call).
  const ru = await start('readusers', { readUsers: ['nobody'] });
  assert.equal(statSync(ru.opts.endpoint).mode & 0o777, 0o666);
  // User mode: owner only.
  const usr = await start('user', { mode: 'user' });
  assert.equal(statSync(usr.opts.endpoint).mode & 0o777, 0o600);
  // No temporary socket names left behind.
  assert.deepEqual(execFileSync('ls', ['-A', join(dir, 'svc')], { encoding: 'utf8' }).trim(), 'control.sock');
});

test('a runtime directory or parent controlled by someone else is refused', async (t) => {
  if (!isRoot) return t.skip('needs root to chown');
  const foreignParent = join(dir, 'foreign-parent');
  execFileSync('mkdir', ['-p', join(foreignParent, 'rt')]);
  execFileSync('chown', [String(NOBODY), foreignParent]);
  const a = new ControlServer({ endpoint: join(foreignParent, 'rt', 'control.sock'), mode: 'service', registry: registry(), identify: unixPeerIdentity, files });
  await assert.rejects(a.listen(), (err) => isSwitchyardError(err) && err.code === 'SY_ERR_CONTROL_ENDPOINT' && /owned by uid 65534/.test(err.message));
  const foreignDir = join(dir, 'foreign-dir');
  execFileSync('mkdir', ['-p', foreignDir]);
  execFileSync('chown', [String(NOBODY), foreignDir]);
  const b = new ControlServer({ endpoint: join(foreignDir, 'control.sock'), mode: 'service', registry: registry(), identify: unixPeerIdentity, files });
  await assert.rejects(b.listen(), (err) => isSwitchyardError(err) && err.code === 'SY_ERR_CONTROL_ENDPOINT' && /foreign-dir is owned by uid 65534/.test(err.message));
  const open = join(dir, 'world-writable');
  execFileSync('mkdir', ['-p', join(open, 'rt')]);
  chmodSync(open, 0o777);
  const c = new ControlServer({ endpoint: join(open, 'rt', 'control.sock'), mode: 'service', registry: registry(), identify: unixPeerIdentity, files });
  await assert.rejects(c.listen(), (err) => isSwitchyardError(err) && /writable by others/.test(err.message));
  chmodSync(open, 0o1777); // sticky, like /tmp: fine
  const d = new ControlServer({ endpoint: join(open, 'rt', 'control.sock'), mode: 'service', registry: registry(), identify: unixPeerIdentity, files });
  await d.listen();
  servers.push(d);
});

test('stale socket is removed; a live daemon is never displaced; a non-socket is refused', async () => {
  const path = join(dir, 'stale', 'control.sock');
  // A socket file nobody listens on, as a SIGKILLed daemon leaves it.
  execFileSync('mkdir', ['-p', join(dir, 'stale')]);
  execFileSync('python3', ['-c', `import socket; s=socket.socket(socket.AF_UNIX); s.bind(${JSON.stringify(path)})`]);
  assert.ok(statSync(path).isSocket());
  const s = await start('stale');
  assert.equal(await callDaemon(path, 'ping'), 'pong');

  const second = new ControlServer({ endpoint: path, mode: 'service', registry: registry(), identify: unixPeerIdentity, files });
  await assert.rejects(second.listen(), (err) => isSwitchyardError(err) && err.code === 'SY_ERR_CONTROL_IN_USE');
  assert.equal(await callDaemon(path, 'ping'), 'pong', 'the first daemon still answers');

  writeFileSync(join(dir, 'notasock'), 'x');
  const third = new ControlServer({ endpoint: join(dir, 'notasock'), mode: 'service', registry: registry(), identify: unixPeerIdentity, files });
  await assert.rejects(third.listen(), (err) => isSwitchyardError(err) && err.code === 'SY_ERR_CONTROL_ENDPOINT');
  assert.equal(readFileSync(join(dir, 'notasock'), 'utf8'), 'x');

  // close() removes the socket file; the client then says the daemon is not running.
  await s.close();
  assert.equal(existsSync(path), false);
  await assert.rejects(callDaemon(path, 'ping'), (err) => isSwitchyardError(err) && err.code === 'SY_ERR_CONTROL_NOT_RUNNING');
});

test('as nobody: read-only works, state-changing is refused, private results are filtered', async (t) => {
  if (!isRoot) return t.skip('needs root (to switch to nobody)');
  if (!hasSetpriv) return t.skip('needs setpriv');
  const s = await start('nobody', { readUsers: ['nobody'] });
  const before = stopCalls;
  const r = await runAs(['--reuid', 'nobody', '--regid', 'nogroup', '--clear-groups'], s.opts.endpoint, ['ping', 'whoami', 'stop', 'conns', 'watch']);
  assert.equal(r.uid, NOBODY);
  assert.deepEqual(r.out[0], { ok: true, result: 'pong' });
  assert.deepEqual(r.out[1], { ok: true, result: { uid: NOBODY, privileged: false, reason: 'not root, not the daemon user, not in the control group' } });
  assert.deepEqual(r.out[2], { ok: false, code: 'SY_ERR_CONTROL_PERMISSION' });
  assert.deepEqual(r.out[3], { ok: true, result: { total: 3, flows: [{ id: 2, uid: NOBODY }] } });
  // Streamed partials are filtered the same way (the helper prints them under `partials`).
  assert.deepEqual(r.out[4]?.partials, [1, 2, 3].map((i) => ({ tick: i, flows: [{ id: 100 + i, uid: NOBODY }] })));
  assert.equal(stopCalls, before, 'the refused stop never reached its handler');
  // The server is alive and root still sees everything.
  assert.equal(await callDaemon(s.opts.endpoint, 'ping'), 'pong');
  assert.deepEqual(((await callDaemon(s.opts.endpoint, 'conns')) as { flows: unknown[] }).flows.length, 3);
});

test('as nobody in the control group (supplementary gid): state-changing is allowed', async (t) => {
  if (!isRoot) return t.skip('needs root (to switch to nobody)');
  if (!hasSetpriv) return t.skip('needs setpriv');
  const s = await start('group');
  const before = stopCalls;
  const r = await runAs(['--reuid', 'nobody', '--regid', 'nogroup', '--groups', String(TEST_GID)], s.opts.endpoint, ['whoami', 'stop', 'conns']);
  assert.deepEqual(r.out[0], { ok: true, result: { uid: NOBODY, privileged: true, reason: 'member of group sytest' } });
  assert.deepEqual(r.out[1], { ok: true, result: before + 1 });
  assert.equal((r.out[2]?.result as { flows: unknown[] }).flows.length, 3);
});

test('as nobody outside the group: the 0660 socket itself refuses, reported as PERMISSION', async (t) => {
  if (!isRoot) return t.skip('needs root (to switch to nobody)');
  if (!hasSetpriv) return t.skip('needs setpriv');
  const s = await start('closed');
  const r = await runAs(['--reuid', 'nobody', '--regid', 'nogroup', '--clear-groups'], s.opts.endpoint, ['ping']);
  assert.deepEqual(r.out, [{ ok: false, code: 'SY_ERR_CONTROL_PERMISSION' }]);
  assert.equal(await callDaemon(s.opts.endpoint, 'ping'), 'pong');
});

test('user mode: the daemon user is privileged on its own 0600 socket', async (t) => {
  if (!isRoot) return t.skip('needs root (to switch to nobody)');
  if (!hasSetpriv) return t.skip('needs setpriv');
  // Stand-in for a daemon run by nobody: its runtime directory and socket belong to nobody.
  const own = join(dir, 'usermode');
  execFileSync('mkdir', ['-p', own]);
  execFileSync('chown', [String(NOBODY), own]);
  const s = await start('usermode', { mode: 'user', uid: NOBODY });
  assert.equal(statSync(s.opts.endpoint).mode & 0o777, 0o600);
  execFileSync('chown', [String(NOBODY), s.opts.endpoint]);
  const before = stopCalls;
  const r = await runAs(['--reuid', 'nobody', '--regid', 'nogroup', '--clear-groups'], s.opts.endpoint, ['whoami', 'stop']);
  assert.deepEqual(r.out[0], { ok: true, result: { uid: NOBODY, privileged: true, reason: 'the daemon user' } });
  assert.deepEqual(r.out[1], { ok: true, result: before + 1 });
});

test('read_users narrows read-only calls to the listed users', async (t) => {
  if (!isRoot) return t.skip('needs root (to switch to nobody)');
  if (!hasSetpriv) return t.skip('needs setpriv');
  const s = await start('narrow', { readUsers: ['root'] });
  const r = await runAs(['--reuid', 'nobody', '--regid', 'nogroup', '--clear-groups'], s.opts.endpoint, ['ping']);
  assert.deepEqual(r.out, [{ ok: false, code: 'SY_ERR_CONTROL_PERMISSION' }]);
  assert.equal(await callDaemon(s.opts.endpoint, 'ping'), 'pong');
});
