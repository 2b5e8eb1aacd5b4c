// The fanotify watcher (src/sys/linux/fanotify.ts, src/redirect/linux/fanotify-worker.ts,
// exec-mounts.ts, the fanotify mode of watcher.ts). Parsers against hostile bytes; struct layouts
// against the kernel headers; then, with no nft rules anywhere, where processes land
// (/proc/self/cgroup read by the program itself) under a unique per-run cgroup root. Programs are
// copies under unique names, so nothing else on the host matches. fanotify marks belong to
// filesystems, not network namespaces: these run in the test's own namespace, initial or not.
// Safety: a listener that never answers holds execs only until it dies (fixtures/fan-hang.ts, on a
// private tmpfs so that nothing else on the host waits on it).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ProcessWatcher, inInitialNetNamespace } from '../../src/redirect/linux/watcher.ts';
import { dynamicLoaders, encodeDev, execMounts, reachablePath } from '../../src/redirect/linux/exec-mounts.ts';
import { FANOTIFY_METADATA_VERSION, fanotify_event_metadata, fanotify_response, parseFanEvents, responseBytes, type FanEvent } from '../../src/sys/linux/fanotify.ts';
import { hostRuleset } from './helpers/host.ts';
import { WatchSandbox } from './helpers/watch-sandbox.ts';

const scale = Number(process.env['SWITCHYARD_TEST_SCALE'] ?? '1');
const LAUNCHES = Math.max(20, Math.round(200 * scale));
const missing = process.platform !== 'linux' ? 'needs Linux' : process.getuid?.() !== 0 ? 'needs root' : null;

const sb = new WatchSandbox('fan', missing !== null);
const rulesetBefore = missing ? '' : hostRuleset();

/** Runs argv; resolves with its stdout. */
function output(argv: string[]): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const c = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'ignore'] });
    let s = '';
    c.stdout!.on('data', (b: Buffer) => (s += b.toString()));
    c.on('error', () => resolve({ code: -1, out: s }));
    c.on('close', (code) => resolve({ code, out: s }));
  });
}

function event(len: number, vers: number, metaLen: number, mask: bigint, fd: number, pid: number): Buffer {
  const b = Buffer.alloc(Math.max(len, 24));
  b.writeUInt32LE(len, 0);
  b.writeUInt8(vers, 4);
  b.writeUInt16LE(metaLen, 6);
  b.writeBigUInt64LE(mask, 8);
  b.writeInt32LE(fd, 16);
  b.writeInt32LE(pid, 20);
  return b;
}

test('fanotify event parser: good events, then hostile bytes with the earlier events kept', () => {
  const good = Buffer.concat([event(24, 3, 24, 0x40000n, 7, 100), event(32, 3, 24, 0x40000n, 8, 101)]);
  assert.deepEqual(parseFanEvents(good, good.length), [
    { mask: 0x40000n, fd: 7, pid: 100 },
    { mask: 0x40000n, fd: 8, pid: 101 },
  ]);
  const bad: [Buffer, number, RegExp][] = [
    [event(24, 2, 24, 0n, 1, 1), 24, /metadata version 2/],
    [event(24, 3, 20, 0n, 1, 1), 24, /metadata_len 20/],
    [event(20, 3, 24, 0n, 1, 1), 24, /event_len 20/],
    [event(48, 3, 24, 0n, 1, 1), 24, /event_len 48/],
    [event(24, 3, 24, 0n, 1, 1), 23, /23 trailing bytes/],
    [event(24, 3, 24, 0n, 1, 1), 25, /read into a 24-byte buffer/],
    [event(0, 3, 24, 0n, 1, 1), 24, /event_len 0/],
  ];
  for (const [b, n, re] of bad) assert.throws(() => parseFanEvents(b, n), re);
  // A good event followed by garbage: the good one is handed back (it must still be answered).
  const mixed = Buffer.concat([event(24, 3, 24, 0x40000n, 9, 102), Buffer.from([1, 2, 3, 4, 5])]);
  const out: FanEvent[] = [];
  assert.throws(() => parseFanEvents(mixed, mixed.length, out), /5 trailing bytes/);
  assert.deepEqual(out, [{ mask: 0x40000n, fd: 9, pid: 102 }]);
  assert.deepEqual([...responseBytes(9, 1)], [9, 0, 0, 0, 1, 0, 0, 0]);
  assert.equal(FANOTIFY_METADATA_VERSION, 3);
});

test('struct fanotify_event_metadata / fanotify_response layouts match the kernel headers', (t) => {
  if (spawnSync('sh', ['-c', 'command -v gcc']).status !== 0) return t.skip('needs gcc');
  const d = mkdtempSync(join(tmpdir(), 'sy-fanl-'));
  try {
    writeFileSync(
      join(d, 'l.c'),
      `#include <stdio.h>
#include <stddef.h>
#include <linux/fanotify.h>
#define F(t, m) printf("%s.%s %zu\\n", #t, #m, offsetof(struct t, m))
int main(void) {
  F(fanotify_event_metadata, event_len); F(fanotify_event_metadata, vers); F(fanotify_event_metadata, reserved);
  F(fanotify_event_metadata, metadata_len); F(fanotify_event_metadata, mask); F(fanotify_event_metadata, fd);
  F(fanotify_event_metadata, pid); F(fanotify_response, fd); F(fanotify_response, response);
  printf("fanotify_event_metadata.size %zu\\nfanotify_response.size %zu\\n", sizeof(struct fanotify_event_metadata), sizeof(struct fanotify_response));
  printf("FAN_OPEN_EXEC_PERM %d\\nFAN_Q_OVERFLOW %d\\nFAN_ALLOW %d\\nFAN_CLASS_CONTENT %d\\nFAN_MARK_FILESYSTEM %d\\nFANOTIFY_METADATA_VERSION %d\\n",
    FAN_OPEN_EXEC_PERM, FAN_Q_OVERFLOW, FAN_ALLOW, FAN_CLASS_CONTENT, FAN_MARK_FILESYSTEM, FANOTIFY_METADATA_VERSION);
  return 0;
}
`,
    );
    const cc = spawnSync('gcc', ['-o', join(d, 'l'), join(d, 'l.c')], { encoding: 'utf8' });
    if (cc.status !== 0) return t.skip(`gcc could not build the layout probe: ${cc.stderr.slice(0, 300)}`);
    const got = new Map(spawnSync(join(d, 'l'), { encoding: 'utf8' }).stdout.trim().split('\n').map((l) => l.split(' ') as [string, string]));
    for (const [k, v] of Object.entries(fanotify_event_metadata)) assert.equal(Number(got.get(`fanotify_event_metadata.${k}`)), v, k);
    for (const [k, v] of Object.entries(fanotify_response)) assert.equal(Number(got.get(`fanotify_response.${k}`)), v, k);
    const c = { FAN_OPEN_EXEC_PERM: 0x40000, FAN_Q_OVERFLOW: 0x4000, FAN_ALLOW: 1, FAN_CLASS_CONTENT: 4, FAN_MARK_FILESYSTEM: 0x100, FANOTIFY_METADATA_VERSION: 3 };
    for (const [k, v] of Object.entries(c)) assert.equal(Number(got.get(k)), v, k);
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
});

test('which filesystems are marked: one entry per superblock, pseudo filesystems skipped, escapes undone', () => {
  const info = [
    '22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw',
    '23 22 0:21 / /proc rw,nosuid - proc proc rw',
    '24 22 0:22 / /sys rw - sysfs sysfs rw',
    '25 24 0:29 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw',
    '26 22 0:23 / /dev/shm rw shared:4 master:2 - tmpfs tmpfs rw',
    '27 22 254:0 /home /srv/bind rw - ext4 /dev/vda rw',
    '28 22 0:40 / /mnt/with\\040space rw - xfs /dev/vdb rw',
    'garbage',
    '29 22 x:y / /bad rw - ext4 /dev/x rw',
    '30 22 0:41 / /nofs rw -',
    '',
  ].join('\n');
  assert.deepEqual(execMounts(info), [
    { dev: '254:0', mountPoint: '/', mountPoints: ['/', '/srv/bind'], fsType: 'ext4' },
    { dev: '0:23', mountPoint: '/dev/shm', mountPoints: ['/dev/shm'], fsType: 'tmpfs' },
    { dev: '0:40', mountPoint: '/mnt/with space', mountPoints: ['/mnt/with space'], fsType: 'xfs' },
  ]);
  // A superblock whose only mount point is hidden under another mount cannot be reached by path.
  assert.equal(reachablePath({ dev: '0:1', mountPoint: '/', mountPoints: ['/'], fsType: 'x' }), null);
  assert.equal(reachablePath({ dev: '0:1', mountPoint: '/nonexistent-sy', mountPoints: ['/nonexistent-sy'], fsType: 'x' }), null);
  // The dynamic loaders found are real files.
  for (const ld of dynamicLoaders()) assert.ok(existsSync(ld), ld);
  assert.equal(encodeDev('254:0'), 65024);
  assert.equal(encodeDev('0:300'), (300 & 0xff) | ((300 & ~0xff) << 12));
  if (process.platform === 'linux') {
    // The live table parses, and / is in it.
    const live = execMounts(readFileSync('/proc/self/mountinfo', 'utf8'));
    assert.ok(live.some((m) => m.mountPoint === '/'), JSON.stringify(live));
  }
});

test(`fanotify: ${LAUNCHES} launches of a name-matched program all start inside the group (no window)`, async (t) => {
  if (missing) return t.skip(missing);
  const cat = sb.copyTool('/bin/cat', `sy-fcat-${process.pid}`);
  // Started before the watcher: the initial rescan places it (fanotify sees only new execs).
  const early = spawn(cat, [], { stdio: ['pipe', 'ignore', 'ignore'] });
  sb.children.push(early);
  const w = new ProcessWatcher({ rules: [{ group: 'vpn', patterns: [{ kind: 'name', value: `SY-FCAT-${process.pid}` }] }], placer: sb.placer(), rescanMs: 60_000 });
  const s = await w.start();
  assert.ok(s.initial >= 1, 'the process started before the watcher was placed by the first rescan');
  assert.match(readFileSync(`/proc/${early.pid}/cgroup`, 'utf8'), /egress-vpn/);
  early.kill('SIGKILL');
  let inside = 0;
  let vias = 0;
  w.on('placed', (p: { via: string }) => p.via === 'fanotify' && vias++);
  try {
    assert.equal(s.mode, 'fanotify', s.reason);
    assert.equal(s.netlink, true);
    assert.ok((s.marked ?? 0) >= 1);
    for (let i = 0; i < LAUNCHES; i++) {
      const r = await output([cat, '/proc/self/cgroup']);
      if (r.out.includes(`${sb.cg.hierarchyRootPath()}/egress-vpn`)) inside++;
    }
  } finally {
    await w.stop();
  }
  t.diagnostic(`fanotify: ${inside}/${LAUNCHES} launches read /proc/self/cgroup inside the group as their first action; ${vias} placements reported`);
  assert.equal(inside, LAUNCHES, 'every launch was already in its group at its first instruction');
});

test('fanotify: a script matches by its own name (the interpreter is a different exec); ld.so and /bin/sh are not placed', async (t) => {
  if (missing) return t.skip(missing);
  const script = join(sb.dir, `sy-fscript-${process.pid}`);
  writeFileSync(script, '#!/bin/sh\ncat /proc/self/cgroup\n');
  chmodSync(script, 0o755);
  const w = new ProcessWatcher({ rules: [{ group: 'vpn', patterns: [{ kind: 'name', value: `sy-fscript-${process.pid}` }] }], placer: sb.placer(), rescanMs: 60_000 });
  const s = await w.start();
  try {
    assert.equal(s.mode, 'fanotify', s.reason);
    for (let i = 0; i < 10; i++) assert.match((await output([script])).out, /egress-vpn/);
    // The same interpreter running something else stays where it was.
    assert.doesNotMatch((await output(['sh', '-c', 'cat /proc/self/cgroup'])).out, /egress-vpn/);
  } finally {
    await w.stop();
  }
});

test('fanotify: execs go on when placing fails (the group is gone): the worker always allows', async (t) => {
  if (missing) return t.skip(missing);
  const tr = sb.copyTool('/bin/true', `sy-ftrue-${process.pid}`);
  const w = new ProcessWatcher({
    rules: [{ group: 'vpn', patterns: [{ kind: 'path', value: tr }] }],
    placer: { procs: { vpn: join(sb.dir, 'no-such-cgroup', 'cgroup.procs') }, rootPath: sb.cg.hierarchyRootPath() },
    rescanMs: 60_000,
  });
  const s = await w.start();
  try {
    assert.equal(s.mode, 'fanotify', s.reason);
    for (let i = 0; i < 20; i++) assert.equal((await output([tr])).code, 0);
  } finally {
    await w.stop();
  }
  // And after stop() the marks are gone with the fd: execs need no listener.
  assert.equal((await output([tr])).code, 0);
});

test('fanotify off: the proc connector takes over (initial network namespace) or rescans', async (t) => {
  if (missing) return t.skip(missing);
  const w = new ProcessWatcher({ rules: [{ group: 'vpn', patterns: [{ kind: 'name', value: `sy-none-${process.pid}` }] }], placer: sb.placer(), fanotify: false });
  const s = await w.start();
  await w.stop();
  assert.equal(s.mode, inInitialNetNamespace() === false ? 'rescan' : 'netlink', s.reason);
  assert.match(s.reason ?? '', /fanotify disabled/);
});

test('fanotify: the worker killed mid-run (a crash): the fd is closed, execs go on, the connector takes over', async (t) => {
  if (missing) return t.skip(missing);
  const cat = sb.copyTool('/bin/cat', `sy-fcrash-${process.pid}`);
  const w = new ProcessWatcher({ rules: [{ group: 'vpn', patterns: [{ kind: 'name', value: `sy-fcrash-${process.pid}` }] }], placer: sb.placer(), rescanMs: 60_000 });
  const errors: string[] = [];
  w.on('error', (e: Error) => errors.push(e.message));
  const s = await w.start();
  try {
    assert.equal(s.mode, 'fanotify', s.reason);
    assert.match((await output([cat, '/proc/self/cgroup'])).out, /egress-vpn/);
    const fanFds = () => readdirSync('/proc/self/fd').filter((f) => {
      try {
        return readlinkSync(`/proc/self/fd/${f}`) === 'anon_inode:[fanotify]';
      } catch {
        return false;
      }
    }).length;
    const before = fanFds();
    assert.ok(before >= 1);
    await w.fanotifyWorker!.terminate();
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(fanFds(), before - 1, 'the fanotify fd was closed by the main thread');
    // Execs are not held (this would hang if the marks were still there with no reader).
    for (let i = 0; i < 5; i++) assert.equal((await output(['/bin/true'])).code, 0);
    const end = Date.now() + 5000;
    while (w.mode !== 'netlink' && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
    if (inInitialNetNamespace() !== false) assert.equal(w.mode, 'netlink', 'the proc connector took over');
    assert.match(errors.join(';'), /fanotify worker exited/);
  } finally {
    await w.stop();
  }
});

test('fanotify: a filesystem mounted after start is marked at the next tick; programs on it start inside their group', async (t) => {
  if (missing) return t.skip(missing);
  if (spawnSync('sh', ['-c', 'command -v unshare']).status !== 0) return t.skip('needs unshare');
  const fixture = fileURLToPath(new URL('./fixtures/fan-newmount.ts', import.meta.url));
  const p = spawnSync('unshare', ['--mount', '--propagation', 'private', '--', process.execPath, '--import', 'tsx', fixture], {
    env: { ...process.env, SY_FAN_DIR: join(sb.dir, 'newmount'), SY_FAN_PROCS: sb.placer().procs.vpn, SY_FAN_ROOT: sb.placer().rootPath },
    encoding: 'utf8',
    timeout: 60_000,
  });
  const line = p.stdout.split('\n').find((l) => l.startsWith('RESULT '));
  assert.ok(line, `no result: ${p.stdout}${p.stderr}`);
  const r = JSON.parse(line.slice(7));
  assert.equal(r.error, undefined, r.error);
  assert.equal(r.mode, 'fanotify');
  assert.equal(r.markedAfter, r.markedBefore + 1, 'one more superblock marked');
  assert.equal(r.inside, 10, 'every launch from the new tmpfs started inside the group');
});

test('a listener that never answers holds execs only until it dies (SIGKILL releases them)', async (t) => {
  if (missing) return t.skip(missing);
  if (spawnSync('sh', ['-c', 'command -v unshare']).status !== 0) return t.skip('needs unshare');
  const d = join(sb.dir, 'hang');
  const fixture = fileURLToPath(new URL('./fixtures/fan-hang.ts', import.meta.url));
  const c = spawn('unshare', ['--mount', '--propagation', 'private', '--', process.execPath, '--import', 'tsx', fixture], { env: { ...process.env, SY_FAN_DIR: d }, stdio: ['ignore', 'pipe', 'pipe'] });
  sb.children.push(c);
  let out = '';
  let err = '';
  c.stdout!.on('data', (b: Buffer) => (out += b.toString()));
  c.stderr!.on('data', (b: Buffer) => (err += b.toString()));
  const end = Date.now() + 20_000;
  while (!/PID \d+/.test(out) && c.exitCode === null && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
  const pid = Number(/PID (\d+)/.exec(out)?.[1]);
  assert.ok(pid > 0, `fixture did not start: ${out}${err}`);
  await new Promise((r) => setTimeout(r, 700));
  assert.equal(existsSync(join(d, 'done')), false, 'the exec is held while the listener lives');
  let shExe = '';
  try {
    shExe = readlinkSync(`/proc/${pid}/exe`);
  } catch {}
  assert.match(shExe, /sh$/, 'sh is still waiting for its child');
  c.kill('SIGKILL');
  const until = Date.now() + 10_000;
  while (!existsSync(join(d, 'done')) && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
  assert.equal(existsSync(join(d, 'done')), true, 'the held exec ran once the listener died');
});

test('no nft table was created in the host namespace', (t) => {
  if (missing) return t.skip(missing);
  assert.equal(hostRuleset(), rulesetBefore);
});
