// Atomic activation through a real daemon: a failure injected after each apply step (the
// test-only SWITCHYARD_FAILPOINT) restores the running policy and rejects the candidate; SIGKILL
// before the commit point leaves last-known-good active after a restart, after it the new
// revision; a tampered persisted revision is refused at start (last-known-good runs, audit
// events, a tamper alert in status); a config file changed while the daemon was down becomes a
// pending revision, not the running policy. Paths are proven by the counting server's view of
// the source address (microsocks binds 127.0.0.2 outgoing; direct comes from 127.0.0.1).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { call, cliIn, connectVia, countServer, freePort, listening, roundTrip, startDaemon, tempDir, until, type CountServer, type DaemonProc } from '../helpers/daemon.ts';
import { configText, type Ports } from './helpers/config.ts';

const hasMicrosocks = spawnSync('sh', ['-c', 'command -v microsocks']).status === 0;
const STEPS = ['snapshot', 'apply', 'verify', 'before-commit', 'commit'] as const;
const VIA_MS = { extra: '\n[[rule]]\nname = "moved"\negress = "ms"\ndomains = ["full:count.test"]\n', default: 'direct' };

let ports: Ports;
let cs: CountServer;
let ms: ChildProcess | null = null;
const daemons: DaemonProc[] = [];
/** The first test's store and file, reused by the last one (a daemon start costs seconds). */
let failDir = '';

function writeConfig(path: string, v: object): void {
  writeFileSync(`${path}.tmp`, configText(ports, v));
  renameSync(`${path}.tmp`, path);
}

async function start(dir: string, configPath: string, failpoint?: string): Promise<DaemonProc> {
  // All daemons share the ports: one left by a failed test must not break the next.
  for (const old of daemons) {
    if (old.proc.exitCode === null && old.proc.signalCode === null) {
      old.proc.kill('SIGKILL');
      await old.exited;
    }
  }
  const d = await startDaemon(dir, configPath, ['--no-watch'], failpoint ? { SWITCHYARD_FAILPOINT: failpoint } : {});
  daemons.push(d);
  return d;
}

async function pathOf(name: string): Promise<string> {
  const n = cs.sources.length;
  const s = await connectVia(ports.mixed, name, cs.port);
  s.on('error', () => {});
  await roundTrip(s, 'x');
  s.destroy();
  return cs.sources[n]!;
}

const egressOf = async (d: DaemonProc, domain: string) => ((await call(d, 'explain', { query: { network: 'tcp', domain } })) as any).egress as string;
const status = (d: DaemonProc) => call(d, 'status') as Promise<any>;

async function stop(d: DaemonProc): Promise<void> {
  if (d.proc.exitCode !== null || d.proc.signalCode !== null) return;
  d.proc.kill('SIGTERM');
  await d.exited;
}

before(async () => {
  cs = await countServer();
  ports = { dns: await freePort(), mixed: await freePort(), socks: await freePort() };
  if (hasMicrosocks) {
    ms = spawn('microsocks', ['-i', '127.0.0.1', '-p', String(ports.socks), '-b', '127.0.0.2'], { stdio: 'ignore' });
    await until(() => listening(ports.socks), 'microsocks');
  }
});

after(async () => {
  for (const d of daemons) {
    if (d.proc.exitCode === null && d.proc.signalCode === null) {
      d.proc.kill('SIGKILL');
      await d.exited;
    }
  }
  ms?.kill('SIGKILL');
  await cs?.close();
});

test('a failure after each apply step restores the running policy and rejects the candidate; after the commit point the new one stays', async (t) => {
  if (!hasMicrosocks) return t.skip('needs microsocks');
  const dir = (failDir = tempDir('sy-rev-fail-'));
  const cfg = join(dir, 'config.toml');
  writeConfig(cfg, {});
  const d = await start(dir, cfg, [...STEPS.map((s) => `fail:${s}`), 'fail:after-commit'].join(','));
  assert.equal(await pathOf('count.test'), '127.0.0.1');
  writeConfig(cfg, VIA_MS);
  for (const step of STEPS) {
    // Not interactive: the low-risk change waits for approve (which takes the next fail point).
    const r = (await call(d, 'reload', { interactive: false })) as any;
    assert.equal(r.state, 'pending', step);
    const a = await cliIn(d.env, ['approve', String(r.revision)]);
    assert.equal(a.status, 1, `${step}: ${a.stdout}`);
    assert.match(a.stderr, new RegExp(`SY_ERR_STORE_APPLY: activating revision #${r.revision} failed at ${step}: injected failure at ${step}; previous state restored`));
    assert.equal(await pathOf('count.test'), '127.0.0.1', `after a failure at ${step} the flow still goes direct`);
    assert.equal(await egressOf(d, 'count.test'), 'direct');
    const st = await status(d);
    assert.equal(st.policy.active, 1, step);
    assert.ok(st.policy.alerts.some((x: any) => x.kind === 'apply-failed' && x.revision === r.revision), `${step}: apply-failed alert`);
    const revs = (await call(d, 'revisions')) as any;
    const row = revs.revisions.find((x: any) => x.n === r.revision);
    assert.equal(row.state, 'rejected');
    assert.match(row.reason, new RegExp(`apply failed at ${step}`));
  }
  // The last fail point is after the commit point: the call reports it, the revision is active.
  const r = (await call(d, 'reload', { interactive: false })) as any;
  const a = await cliIn(d.env, ['approve', String(r.revision)]);
  assert.equal(a.status, 1);
  assert.match(a.stderr, new RegExp(`SY_ERR_STORE_APPLY: revision #${r.revision} is active, but: injected failure at after-commit`));
  assert.equal((await status(d)).policy.active, r.revision);
  assert.equal(await pathOf('count.test'), '127.0.0.2', 'past the commit point the new revision runs');
  const audit = (await call(d, 'audit', { verify: true, limit: 1000 })) as any;
  assert.equal(audit.verification.ok, true, audit.verification.problems.join('; '));
  assert.equal(audit.events.filter((e: any) => e.type === 'revision.apply-failed').length, STEPS.length);
  await stop(d);
});

test('SIGKILL before the commit point: last-known-good after restart; after it: the new revision; a tampered revision at start is refused', async (t) => {
  if (!hasMicrosocks) return t.skip('needs microsocks');
  const dir = tempDir('sy-rev-kill-');
  const cfg = join(dir, 'config.toml');
  writeConfig(cfg, {});
  let d = await start(dir, cfg, 'kill:before-commit');
  writeConfig(cfg, VIA_MS);
  const r = (await call(d, 'reload', { interactive: false })) as any;
  assert.equal(r.state, 'pending');
  await assert.rejects(call(d, 'approve', { revision: r.revision }), (e: any) => /SY_ERR_CONTROL_(CLOSED|TIMEOUT|NOT_RUNNING)/.test(e.code));
  await d.exited;
  assert.equal(d.proc.signalCode, 'SIGKILL');

  d = await start(dir, cfg, 'kill:after-commit');
  let st = await status(d);
  assert.equal(st.policy.active, 1, 'killed before the commit point: the previous revision is active');
  assert.ok(st.policy.pending.includes(r.revision), 'the candidate is still pending');
  assert.equal(await pathOf('count.test'), '127.0.0.1');
  await assert.rejects(call(d, 'approve', { revision: r.revision }));
  await d.exited;
  assert.equal(d.proc.signalCode, 'SIGKILL');

  d = await start(dir, cfg);
  st = await status(d);
  assert.equal(st.policy.active, r.revision, 'killed after the commit point: the new revision is active');
  assert.equal(st.policy.lastKnownGood, 1);
  assert.equal(await pathOf('count.test'), '127.0.0.2');
  assert.equal(((await call(d, 'audit', { verify: true })) as any).verification.ok, true, 'the log was completed from the state');
  await stop(d);

  // Someone edits the active revision's file while the daemon is down (sends count.test to block).
  const revFile = join(dir, 'state', 'store', 'revisions', `${r.revision}.json`);
  const text = readFileSync(revFile, 'utf8');
  const edited = text.replace('"egress":"ms","index":2', '"egress":"block","index":2');
  assert.notEqual(edited, text, 'the edit hit the rule');
  writeFileSync(revFile, edited);
  writeConfig(cfg, {}); // the file now holds revision 1's policy: no candidate from it
  d = await start(dir, cfg);
  st = await status(d);
  assert.equal(st.policy.active, 1, 'the tampered revision is refused; last-known-good runs');
  const tamper = st.policy.alerts.find((x: any) => x.kind === 'tamper');
  assert.ok(tamper, 'a tamper alert');
  assert.match(tamper.message, new RegExp(`revision #${r.revision} failed its integrity check \\(revision #${r.revision}: HMAC mismatch\\); fell back to last-known-good #1`));
  assert.match((await cliIn(d.env, ['status'])).stdout, new RegExp(`ALERT ${tamper.id} \\[tamper\\]`));
  assert.equal(await pathOf('count.test'), '127.0.0.1');
  assert.equal(await egressOf(d, 'count.test'), 'direct');
  const audit = (await call(d, 'audit', { limit: 3 })) as any;
  const types = audit.events.map((e: any) => e.type);
  assert.deepEqual(types.slice(-2), ['revision.tampered', 'revision.fallback']);
  assert.equal(audit.events.at(-2).revision, r.revision);
  assert.deepEqual(audit.events.at(-1).detail, { from: r.revision, to: 1 });
  const revs = (await call(d, 'revisions')) as any;
  assert.equal(revs.revisions.find((x: any) => x.n === r.revision).state, 'rejected');
  // The alert stays until reviewed.
  const ack = await cliIn(d.env, ['alerts', 'ack', String(tamper.id)]);
  assert.equal(ack.status, 0, ack.stderr);
  assert.ok(!(await status(d)).policy.alerts.some((x: any) => x.id === tamper.id));
  await stop(d);

  // Now revision 1 (active, and no last-known-good is left) is edited too: nothing can be
  // trusted, so the daemon fails closed — everything blocked — until a person approves the file.
  const one = join(dir, 'state', 'store', 'revisions', '1.json');
  writeFileSync(one, readFileSync(one, 'utf8').replace('"default":"direct"', '"default":"ms"'));
  d = await start(dir, cfg);
  st = await status(d);
  assert.equal(st.policy.active, null);
  assert.equal(st.policy.pending.length, 1);
  assert.ok(st.policy.alerts.some((x: any) => x.kind === 'tamper' && x.revision === 1));
  await assert.rejects(pathOf('count.test'), /403/, 'fail closed: refused, not direct');
  const n = st.policy.pending[0];
  const ok = await cliIn(d.env, ['approve', String(n)]);
  assert.equal(ok.status, 0, ok.stderr);
  assert.equal(await pathOf('count.test'), '127.0.0.1', 'the approved file runs');
  await stop(d);
});

test('a config file changed while the daemon was down becomes a pending revision with an alert', async (t) => {
  if (!hasMicrosocks || !failDir) return t.skip('needs microsocks and the first test');
  // The first test left its revision with full:count.test → ms active; the file is edited back.
  const cfg = join(failDir, 'config.toml');
  writeConfig(cfg, {});
  const d = await start(failDir, cfg);
  const st = await status(d);
  const active = st.policy.active as number;
  assert.equal(st.policy.pending.length, 1);
  const n = st.policy.pending[0] as number;
  assert.ok(n > active);
  assert.ok(st.policy.alerts.some((x: any) => x.kind === 'non-interactive' && x.revision === n));
  assert.equal(await pathOf('count.test'), '127.0.0.2', 'the running policy is the active revision, not the file');
  const diff = await cliIn(d.env, ['diff']);
  assert.match(diff.stdout, /the config file differs from the active revision at start/);
  assert.match(diff.stdout, /- domain full count\.test \(was -> ms, moved\)/);
  assert.match(diff.stdout, /risk: MEDIUM/);
  await stop(d);
});
