// Process watcher (src/redirect/linux/watcher.ts + watcher-worker.ts + placer.ts), its proc connector
// and rescan modes (fanotify: false; the fanotify mode is fanotify.test.ts), in the INITIAL
// network namespace — the only place the proc connector delivers events. No nft rules here: the
// test only asserts where processes land (/proc/PID/cgroup) under a unique per-run cgroup root.
// Programs are copies of coreutils under unique names, so nothing else on the host matches.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { copyFileSync, readFileSync, chmodSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { cgroupOf } from '../../src/redirect/linux/cgroups.ts';
import { ProcessWatcher, inInitialNetNamespace } from '../../src/redirect/linux/watcher.ts';
import { compileRules, globToRegExp, groupFor, watchRulesFromConfig } from '../../src/redirect/linux/app-match.ts';
import { hostRuleset } from './helpers/host.ts';
import { WatchSandbox } from './helpers/watch-sandbox.ts';

const scale = Number(process.env['SWITCHYARD_TEST_SCALE'] ?? '1');
const LAUNCHES = Math.max(10, Math.round(100 * scale));
const missing =
  process.platform !== 'linux' ? 'needs Linux' : process.getuid?.() !== 0 ? 'needs root' : inInitialNetNamespace() === false ? 'needs the initial network namespace' : null;

const sb = new WatchSandbox('watch', missing !== null);
const rulesetBefore = missing ? '' : hostRuleset();

async function landsIn(pid: number, group: string, timeoutMs = 3000): Promise<boolean> {
  const want = `${sb.cg.hierarchyRootPath()}/${group === 'exempt' ? 'exempt' : `egress-${group}`}`;
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (cgroupOf(pid) === want) return true;
    await new Promise((r) => setTimeout(r, 5));
  }
  return false;
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
};

test('glob, name and path patterns', () => {
  assert.ok(globToRegExp('/opt/**/bin/fire*').test('/opt/a/b/bin/firefox'));
  assert.ok(!globToRegExp('/opt/*/fire*').test('/opt/a/b/firefox'));
  assert.ok(globToRegExp('/usr/bin/py?hon3').test('/usr/bin/python3'));
  assert.ok(!globToRegExp('/a.b').test('/axb'), 'dots are literal');
  const rules = compileRules([
    { group: 'exempt', patterns: [{ kind: 'path', value: '/usr/bin/sing-box' }] },
    { group: 'vpn', patterns: [{ kind: 'name', value: 'Firefox' }, { kind: 'glob', value: '/opt/**' }] },
  ]);
  assert.equal(groupFor(rules, '/usr/lib/firefox/firefox'), 'vpn');
  assert.equal(groupFor(rules, '/usr/bin/sing-box'), 'exempt');
  assert.equal(groupFor(rules, '/opt/x/y'), 'vpn');
  assert.equal(groupFor(rules, '/usr/bin/curl'), null);
  assert.equal(groupFor(rules, '/tmp/firefox (deleted)'), 'vpn');
});

test('watch rules from config: exempt first, direct app rules place nothing', () => {
  const rules = watchRulesFromConfig({
    exempt: [{ apps: [{ kind: 'name', value: 'sing-box' }] }],
    rules: [
      { egress: 'direct', apps: [{ kind: 'name', value: 'steam' }] },
      { egress: 'vpn', apps: [{ kind: 'name', value: 'firefox' }] },
      { egress: 'vpn', apps: [] },
    ],
  });
  assert.deepEqual(rules.map((r) => r.group), ['exempt', 'vpn']);
});

test('netlink watcher moves exec\'d processes into their group; rescan catches ones started before', async (t) => {
  if (missing) return t.skip(missing);
  const probe = sb.copyTool('/bin/sleep', `sy-probe-${process.pid}`);
  const early = spawn(probe, ['30'], { stdio: 'ignore' });
  sb.children.push(early);
  const w = new ProcessWatcher({ rules: [{ group: 'vpn', patterns: [{ kind: 'name', value: `sy-probe-${process.pid}` }] }], placer: sb.placer(), rescanMs: 1000, fanotify: false });
  const started = await w.start();
  try {
    assert.equal(started.netlink, true, started.reason);
    assert.ok(started.initial >= 1, 'the process started before the watcher was placed by the first rescan');
    assert.ok(await landsIn(early.pid!, 'vpn'));

    const vias: string[] = [];
    w.on('placed', (p: { via: string }) => vias.push(p.via));
    let landed = 0;
    for (let i = 0; i < LAUNCHES; i++) {
      const c = spawn(probe, ['30'], { stdio: 'ignore' });
      sb.children.push(c);
      if (await landsIn(c.pid!, 'vpn')) landed++;
      c.kill('SIGKILL');
    }
    assert.equal(landed, LAUNCHES, 'every launch landed in the group');
    await new Promise((r) => setTimeout(r, 300)); // let the last placement messages arrive
    const lat = w.latenciesNs.map((n) => n / 1000);
    process.stdout.write(
      `# watcher: ${LAUNCHES} launches, via netlink ${vias.filter((v) => v === 'netlink').length}, via rescan ${vias.filter((v) => v === 'rescan').length}; ` +
        `exec→placed µs p50 ${pct(lat, 50).toFixed(0)} p99 ${pct(lat, 99).toFixed(0)} max ${Math.max(...lat).toFixed(0)}\n`,
    );
    assert.ok(vias.filter((v) => v === 'netlink').length >= LAUNCHES / 2, `placements come from exec events (${vias.join(',')})`);
  } finally {
    await w.stop();
  }
});

test('how often a program\'s first action already sees itself in the group (the window, measured)', async (t) => {
  if (missing) return t.skip(missing);
  // A copy of cat reading its own /proc/self/cgroup: its very first action after exec.
  const cat = sb.copyTool('/bin/cat', `sy-cat-${process.pid}`);
  const w = new ProcessWatcher({ rules: [{ group: 'vpn', patterns: [{ kind: 'path', value: cat }] }], placer: sb.placer(), rescanMs: 1000, fanotify: false });
  assert.equal((await w.start()).netlink, true);
  let inside = 0;
  const n = Math.max(10, Math.round(50 * scale));
  try {
    for (let i = 0; i < n; i++) {
      const out = await new Promise<string>((resolve) => {
        const c = spawn(cat, ['/proc/self/cgroup'], { stdio: ['ignore', 'pipe', 'ignore'] });
        let s = '';
        c.stdout!.on('data', (b: Buffer) => (s += b.toString()));
        c.on('close', () => resolve(s));
      });
      if (out.includes(`${sb.cg.hierarchyRootPath()}/egress-vpn`)) inside++;
    }
  } finally {
    await w.stop();
  }
  process.stdout.write(`# watcher window: ${inside}/${n} launches were already in the group at their first read\n`);
  assert.ok(inside >= 0); // informative: the race is real and documented; the backstops are SOCK_DESTROY and skeleton rules
});

test('glob rule and rescan-only mode (no connector) place within one rescan interval', async (t) => {
  if (missing) return t.skip(missing);
  mkdirSync(join(sb.dir, 'deep', 'bin'), { recursive: true });
  const g = join(sb.dir, 'deep', 'bin', `sy-glob-${process.pid}`);
  copyFileSync('/bin/sleep', g);
  chmodSync(g, 0o755);
  const w = new ProcessWatcher({ rules: [{ group: 'vpn', patterns: [{ kind: 'glob', value: `${sb.dir}/**/sy-glob-*` }] }], placer: sb.placer(), rescanMs: 200, netlink: false, fanotify: false });
  const s = await w.start();
  try {
    assert.equal(s.netlink, false);
    const c = spawn(g, ['30'], { stdio: 'ignore' });
    sb.children.push(c);
    assert.ok(await landsIn(c.pid!, 'vpn', 2000));
  } finally {
    await w.stop();
  }
});

test('a process already under the root (placed by exec) is left where it is', async (t) => {
  if (missing) return t.skip(missing);
  const probe = sb.copyTool('/bin/sleep', `sy-stay-${process.pid}`);
  const c = spawn('sh', ['-c', 'echo $$ > "$0" && exec "$@"', join(sb.cg.fsPath('exempt'), 'cgroup.procs'), probe, '30'], { stdio: 'ignore' });
  sb.children.push(c);
  assert.ok(await landsIn(c.pid!, 'exempt'));
  const w = new ProcessWatcher({ rules: [{ group: 'vpn', patterns: [{ kind: 'name', value: `sy-stay-${process.pid}` }] }], placer: sb.placer(), netlink: false, fanotify: false });
  await w.start();
  await w.stop();
  assert.ok(await landsIn(c.pid!, 'exempt', 100));
});

test('no nft table was created in the host namespace', (t) => {
  if (missing) return t.skip(missing);
  assert.equal(hostRuleset(), rulesetBefore);
  assert.ok(readFileSync('/proc/self/cgroup', 'utf8').length > 0);
});
