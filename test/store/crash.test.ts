// Crash safety of activation: a child process activating revision #2 is SIGKILLed at a point
// before or after the commit point (the state.json rename); after restart, the revision that is
// active is #1 (before) or #2 (after), the store verifies, and the audit log agrees with it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, cpSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PolicyStore } from '../../src/store/store.ts';
import { loadOrCreateKey } from '../../src/store/key.ts';
import { activate } from '../../src/store/apply.ts';

const CHILD = new URL('./helpers/crash-child.ts', import.meta.url).pathname;
const TSX = new URL('../../node_modules/tsx/dist/esm/index.mjs', import.meta.url).pathname;
const actor = { user: 'root', uid: 0 };
const noop = { snapshot: () => null, apply: () => {}, verify: () => {}, restore: () => {} };

let root: string;
let template: string;

before(async () => {
  root = mkdtempSync(join(tmpdir(), 'sy-crash-'));
  template = join(root, 'template');
  const { key } = loadOrCreateKey(template);
  const s = PolicyStore.open(template, { key });
  const r = s.create({ version: 1, default: 'direct' }, { channel: 'file', source: '/x.toml', sourceSha256: 'ab'.repeat(32), user: 'root', uid: 0, time: '2026-01-01T00:00:00Z', interactive: true });
  await activate(s, r.n, noop, { actor });
  assert.equal(s.active, 1);
  startCrashes();
});

after(() => rmSync(root, { recursive: true, force: true }));

/** Runs the child until it prints `AT point`, then SIGKILLs it. Returns its output. */
function crashAt(stateDir: string, point: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', TSX, CHILD, stateDir, point], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString();
      if (out.includes(`AT ${point}\n`)) child.kill('SIGKILL');
    });
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    child.once('close', (code, signal) => {
      if (signal === 'SIGKILL') resolve(out);
      else reject(new Error(`child exited ${code} without reaching ${point}: ${out} ${err}`));
    });
  });
}

/** Children start slowly on a loaded machine: run every crash child up front, a few at a time. */
const runs = new Map<string, Promise<string>>();
function startAll(points: { dir: string; point: string }[]): void {
  let active = 0;
  const queue: (() => void)[] = [];
  for (const { dir, point } of points) {
    cpSync(template, dir, { recursive: true });
    const p = new Promise<string>((resolve, reject) => {
      const go = () => {
        active++;
        crashAt(dir, point)
          .then(resolve, reject)
          .finally(() => {
            active--;
            queue.shift()?.();
          });
      };
      if (active < 4) go();
      else queue.push(go);
    });
    p.catch(() => {}); // awaited by its test
    runs.set(dir, p);
  }
}

const cases = [
  { point: 'snapshot', active: 1 },
  { point: 'verify', active: 1 },
  { point: 'before-commit', active: 1 },
  { point: 'commit', active: 1 },
  { point: 'state:written@2', active: 1 }, // activation state in the temp file, not renamed
  { point: 'state:renamed@2', active: 2 }, // renamed: committed, audit line not yet appended
  { point: 'audit:before-append@2', active: 2 },
  { point: 'after-commit', active: 2 },
];

const createPoints = ['state:written', 'state:renamed', 'audit:before-append'];
const dirOf = (prefix: string, point: string) => join(root, prefix + point.replace(/[:@]/g, '-'));

// Called at the end of the one before() hook (two top-level hooks may overlap on Node 20).
function startCrashes(): void {
  startAll([
    ...cases.map((c) => ({ dir: dirOf('', c.point), point: c.point })),
    ...createPoints.map((point) => ({ dir: dirOf('create-', point), point })),
  ]);
}

for (const c of cases) {
  test(`SIGKILL at ${c.point}: revision #${c.active} is active after restart`, async () => {
    const dir = dirOf('', c.point);
    const out = await runs.get(dir)!;
    assert.match(out, /CREATED 2/);
    const { key } = loadOrCreateKey(dir);
    const s = PolicyStore.open(dir, { key });
    const act = s.resolveActive();
    const expectActive = c.active;
    assert.equal(act.revision?.n, expectActive);
    assert.equal(s.entry(2)?.state, expectActive === 2 ? 'active' : 'pending');
    assert.equal(act.fellBackFrom, null);
    assert.deepEqual(s.alerts(), []);
    const v = s.verifyAudit();
    assert.equal(v.ok, true, v.problems.join('; '));
    if (expectActive === 2) {
      assert.equal(s.entry(1)?.state, 'last-known-good');
    }
    // A temporary file the crash left behind is ignored (and overwritten by the next write).
    assert.ok(readdirSync(join(dir, 'store')).filter((f) => f.endsWith('.tmp')).length <= 1);
    if (c.point.startsWith('state:renamed') || c.point.startsWith('audit:')) assert.equal(s.openReport.repairedAuditEvents, 1);
  });
}

test('crashes inside the candidate write leave #1 active and the store usable', async () => {
  // The first state:written / state:renamed the child reaches is the *create* commit.
  for (const point of createPoints) {
    const dir = dirOf('create-', point);
    const out = await runs.get(dir)!;
    assert.doesNotMatch(out, /CREATED/);
    const { key } = loadOrCreateKey(dir);
    const s = PolicyStore.open(dir, { key });
    assert.equal(s.resolveActive().revision?.n, 1);
    // Committed (renamed) → the candidate exists as pending; not committed → it does not.
    assert.equal(s.entry(2)?.state, point === 'state:written' ? undefined : 'pending');
    assert.equal(s.verifyAudit().ok, true);
    // The next candidate works whatever number the crash left.
    const r = s.create({ x: 1 }, { channel: 'cli', source: null, sourceSha256: null, user: 'root', uid: 0, time: 'now', interactive: true });
    await activate(s, r.n, noop, { actor });
    assert.equal(s.active, r.n);
    assert.equal(s.verifyAudit().ok, true);
  }
});
