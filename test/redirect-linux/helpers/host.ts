// Host side of the namespace tests: checks what they need, runs a fixture inside
// `unshare --mount --net`, and cleans the per-run cgroup root afterwards whatever happened.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const CGROUP2 = '/sys/fs/cgroup/unified';

function have(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

/** Why the namespace tests cannot run here, or null when they can. */
export function missingForNamespaces(): string | null {
  if (process.platform !== 'linux') return 'needs Linux';
  if (process.getuid?.() !== 0) return 'needs root';
  for (const c of ['nft', 'unshare', 'ip', 'socat', 'setpriv']) if (!have(c)) return `needs ${c}`;
  if (!cgroup2Root()) return 'needs a cgroup2 mount';
  return null;
}

/** Where cgroup2 is mounted on the host. */
export function cgroup2Root(): string | null {
  const info = readFileSync('/proc/self/mountinfo', 'utf8');
  for (const line of info.split('\n')) {
    const [left, right] = line.split(' - ');
    if (right?.startsWith('cgroup2 ')) return left!.split(' ')[4]!;
  }
  return null;
}

let counter = 0;
/** A unique cgroup root name for this run (relative to the cgroup2 mount). */
export function uniqueCgroupRoot(tag: string): string {
  return `switchyard-test-${tag}-${process.pid}-${Date.now().toString(36)}-${counter++}`;
}

/** Moves every process out of the tree (to the hierarchy root) and removes it, deepest first. */
export function removeCgroupTree(rel: string): void {
  const base = cgroup2Root();
  if (!base) return;
  const top = join(base, rel);
  if (!existsSync(top)) return;
  const walk = (dir: string) => {
    for (const d of readdirSync(dir, { withFileTypes: true })) if (d.isDirectory()) walk(join(dir, d.name));
    try {
      for (const pid of readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean)) {
        try {
          writeFileSync(join(base, 'cgroup.procs'), pid);
        } catch {}
      }
    } catch {}
    for (let i = 0; i < 50; i++) {
      try {
        rmdirSync(dir);
        break;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') break;
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
      }
    }
  };
  if (statSync(top).isDirectory()) walk(top);
}

export interface FixtureResult {
  code: number;
  stdout: string;
  stderr: string;
  result: Record<string, unknown> | null;
}

const FIXTURES = fileURLToPath(new URL('../fixtures/', import.meta.url));

/** Runs test/redirect-linux/fixtures/<name> in fresh network + mount namespaces. */
export function runFixture(name: string, env: Record<string, string>, timeoutMs = 90_000): Promise<FixtureResult> {
  return new Promise((resolve) => {
    const child = spawn('unshare', ['--mount', '--net', '--propagation', 'private', '--', process.execPath, '--import', 'tsx', join(FIXTURES, name)], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      const line = stdout.split('\n').reverse().find((l) => l.startsWith('RESULT '));
      resolve({ code: code ?? 1, stdout, stderr, result: line ? (JSON.parse(line.slice(7)) as Record<string, unknown>) : null });
    });
  });
}

/** `nft list ruleset` of the host: tests compare it before and after to prove nothing was left. */
export function hostRuleset(): string {
  return spawnSync('nft', ['list', 'ruleset'], { encoding: 'utf8' }).stdout;
}
