// The daemon with [enforce] enabled, inside `unshare --mount --net` (nft rules never touch the
// host): the supervised egress core runs in the exempt cgroup (/proc/PID/cgroup), an app in the
// egress's group is redirected through the transparent inbound and the core (the server sees the
// core's bind address), an app outside stays direct, and after stop the fail-closed skeleton
// refuses the group's traffic until `down`. Cgroups: a unique per-run root, removed afterwards.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tempDir } from '../helpers/daemon.ts';

function have(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

function cgroup2Root(): string | null {
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const [left, right] = line.split(' - ');
    if (right?.startsWith('cgroup2 ')) return left!.split(' ')[4]!;
  }
  return null;
}

function missing(): string | null {
  if (process.getuid?.() !== 0) return 'needs root';
  for (const c of ['nft', 'unshare', 'ip', 'socat', 'microsocks']) if (!have(c)) return `needs ${c}`;
  if (!cgroup2Root()) return 'needs a cgroup2 mount';
  return null;
}

const root = `switchyard-test-daemon-${process.pid}-${Date.now().toString(36)}`;

/** Moves leftover processes to the hierarchy root and removes the per-run tree, deepest first. */
function removeTree(): void {
  const base = cgroup2Root();
  if (!base || !existsSync(join(base, root))) return;
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) walk(join(d, e.name));
    try {
      for (const pid of readFileSync(join(d, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean)) {
        try {
          writeFileSync(join(base, 'cgroup.procs'), pid);
        } catch {}
      }
    } catch {}
    try {
      rmdirSync(d);
    } catch {}
  };
  walk(join(base, root));
}

after(removeTree);

test('enforcement: exempt core, redirected group, skeleton after stop', async (t) => {
  const why = missing();
  if (why) return t.skip(why);
  const hostBefore = spawnSync('nft', ['list', 'ruleset'], { encoding: 'utf8' }).stdout;
  const fixture = fileURLToPath(new URL('./fixtures/enforce.ts', import.meta.url));
  const out = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    const c = spawn('unshare', ['--mount', '--net', '--propagation', 'private', '--', process.execPath, '--import', 'tsx', fixture], {
      env: { ...process.env, SY_TEST_CGROUP_ROOT: root, SY_TEST_DIR: tempDir('sy-enforce-') },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    c.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    c.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    const timer = setTimeout(() => c.kill('SIGKILL'), 45_000);
    c.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? 1, stdout, stderr });
    });
  });
  const line = out.stdout.split('\n').reverse().find((l) => l.startsWith('RESULT '));
  assert.ok(line, `no result:\n${out.stdout}\n${out.stderr}`);
  const r = JSON.parse(line.slice(7)) as Record<string, any>;
  assert.equal(r['error'], undefined, `${r['error']}\n${out.stderr}`);
  assert.equal(out.code, 0);
  assert.equal(r['backendState'], 'active');
  assert.equal(r['supervisedExempt'], true);
  const v2 = (r['supervisedCgroup'] as string).split('\n').find((l) => l.startsWith('0::'));
  assert.equal(v2, `0::${r['expectedExempt']}`, 'the core runs in the exempt group (/proc/PID/cgroup)');
  const self = (r['daemonCgroup'] as string).split('\n').find((l) => l.startsWith('0::'));
  assert.equal(self, `0::${r['expectedExempt']}`, 'the daemon itself joined the exempt group');
  assert.equal(r['groupClient'], 'from 198.18.0.11', 'the group app went through the supervised core');
  assert.equal(r['plainClient'], 'from 198.18.0.10', 'an app outside any group stays direct');
  assert.deepEqual(r['sourcesActive'], ['198.18.0.11', '198.18.0.10']);
  assert.ok((r['rules'] as [string, number, number][]).some(([id, c]) => id === 'rule#1' && c === 1));
  // Stop: skeleton stays, the core is gone, the group's traffic is refused (not sent direct).
  assert.equal(r['tableAfterStop'], true);
  assert.equal(r['stateAfterStop'], 'skeleton');
  assert.equal(r['supervisedAliveAfterStop'], false);
  assert.match(r['groupClientSkeleton'], /^failed/);
  assert.equal(r['plainClientSkeleton'], 'from 198.18.0.10');
  assert.equal(r['newArrivalsFromGroupDuringSkeleton'], 1, 'only the ungrouped client arrived');
  assert.equal(r['downExit'], 0);
  assert.equal(r['tableAfterDown'], false, '`switchyard down` removed the skeleton');
  assert.equal(spawnSync('nft', ['list', 'ruleset'], { encoding: 'utf8' }).stdout, hostBefore, 'host ruleset untouched');
});
