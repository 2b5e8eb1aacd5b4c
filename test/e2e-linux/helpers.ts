// Host side of the end-to-end tests: what they need, and a runner that starts a fixture inside
// `unshare --mount --net` and removes the per-run cgroup root afterwards whatever happened.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cgroup2Root, removeCgroupTree, uniqueCgroupRoot } from '../redirect-linux/helpers/host.ts';

export { cgroup2Root, removeCgroupTree, uniqueCgroupRoot };

function have(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

export function missing(tools: string[]): string | null {
  if (process.platform !== 'linux') return 'needs Linux';
  if (process.getuid?.() !== 0) return 'needs root';
  for (const c of ['nft', 'unshare', 'ip', ...tools]) if (!have(c)) return `needs ${c}`;
  if (!cgroup2Root()) return 'needs a cgroup2 mount';
  return null;
}

export interface FixtureRun {
  code: number;
  stdout: string;
  stderr: string;
  result: Record<string, any>;
}

export function runFixture(name: string, cgroupRoot: string, timeoutMs: number, env: Record<string, string> = {}): Promise<FixtureRun> {
  const file = fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));
  const dir = mkdtempSync(join(tmpdir(), 'sy-e2e-'));
  return new Promise((resolve) => {
    const c = spawn('unshare', ['--mount', '--net', '--propagation', 'private', '--', process.execPath, '--import', 'tsx', file], {
      env: { ...process.env, ...env, SY_TEST_CGROUP_ROOT: cgroupRoot, SY_TEST_DIR: dir, SY_TEST_HOST_NETNS: `/proc/${process.pid}/ns/net` },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    c.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    c.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    const timer = setTimeout(() => c.kill('SIGKILL'), timeoutMs);
    c.on('close', (code) => {
      clearTimeout(timer);
      rmSync(dir, { recursive: true, force: true });
      const line = stdout.split('\n').reverse().find((l) => l.startsWith('RESULT '));
      const result = line ? (JSON.parse(line.slice(7)) as Record<string, any>) : { error: `no result (exit ${code}):\n${stdout}\n${stderr}` };
      resolve({ code: code ?? 1, stdout, stderr, result });
    });
  });
}
