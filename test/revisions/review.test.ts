// Policy review through a real daemon process and its CLI: the risk of a reload decides whether
// it is active at once (low, asked for at a terminal) or waits (medium/high, scripts, the file
// watcher); a 10k-rule import waits and changes nothing until approved; hostile or changed import
// sources; a linked source's change waits; an unprivileged caller cannot approve; alerts stay in
// status until reviewed; rollback; and the audit log's tampering is caught by `audit --verify`.
// Paths are proven by the source address a counting server sees (microsocks binds 127.0.0.2 on
// its outgoing side, direct comes from 127.0.0.1).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync, renameSync, writeFileSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import type { Socket } from 'node:net';
import { CLI, TSX, call, cli, cliIn, connectVia, countServer, freePort, listening, roundTrip, startDaemon, tempDir, until, type CountServer, type DaemonProc } from '../helpers/daemon.ts';
import { configText, manyRules, type Ports, type Variant } from './helpers/config.ts';

const isRoot = process.getuid?.() === 0;
const have = (c: string) => spawnSync('sh', ['-c', `command -v ${c}`]).status === 0;
const hasMicrosocks = have('microsocks');
const hasScript = have('script');
const hasSetpriv = have('setpriv');

let dir: string;
let configPath: string;
let ports: Ports;
let cs: CountServer;
let ms: ChildProcess | null = null;
let d: DaemonProc | null = null;
const sockets: Socket[] = [];
/** The variant the running revision was made from: each risk case changes one thing against it. */
let current: Variant = {};

function writeConfig(v: Variant): void {
  const tmp = `${configPath}.tmp`;
  writeFileSync(tmp, configText(ports, v));
  renameSync(tmp, configPath);
}

function json(r: { status: number | null; stdout: string; stderr: string }): any {
  assert.equal(r.status, 0, `exit ${r.status}: ${r.stderr}${r.stdout}`);
  return JSON.parse(r.stdout);
}

async function egressOf(domain: string): Promise<string> {
  return ((await call(d!, 'explain', { query: { network: 'tcp', domain } })) as any).egress;
}

async function status(): Promise<any> {
  return call(d!, 'status');
}

/** Where a CONNECT to `name` through the proxy comes from at the counting server. */
async function pathOf(name: string): Promise<string> {
  const n = cs.sources.length;
  const s = await connectVia(ports.mixed, name, cs.port);
  sockets.push(s);
  s.on('error', () => {});
  await roundTrip(s, 'x');
  s.destroy();
  assert.equal(cs.sources.length, n + 1);
  return cs.sources[n]!;
}

before(async () => {
  dir = tempDir('sy-rev-');
  configPath = join(dir, 'config.toml');
  cs = await countServer();
  ports = { dns: await freePort(), mixed: await freePort(), socks: await freePort() };
  if (hasMicrosocks) {
    ms = spawn('microsocks', ['-i', '127.0.0.1', '-p', String(ports.socks), '-b', '127.0.0.2'], { stdio: 'ignore' });
    await until(() => listening(ports.socks), 'microsocks');
  }
  writeConfig(current);
  // --no-watch for the config file keeps the risk table deterministic (the watcher has its own
  // test in test/daemon); linked sources are still watched.
  d = await startDaemon(dir, configPath, ['--no-watch']);
});

after(async () => {
  for (const s of sockets) s.destroy();
  if (d && d.proc.exitCode === null) {
    d.proc.kill('SIGKILL');
    await d.exited;
  }
  ms?.kill('SIGKILL');
  await cs?.close();
});

test('every review command is listed and has --help', async () => {
  const top = await cliIn(d!.env, ['--help']);
  for (const c of ['revisions', 'diff', 'approve', 'reject', 'rollback', 'alerts', 'audit', 'import']) {
    assert.match(top.stdout, new RegExp(`^  ${c} +\\S`, 'm'), `${c} listed`);
    const h = await cliIn(d!.env, [c, '--help']);
    assert.equal(h.status, 0, `${c} --help: ${h.stderr}`);
    assert.match(h.stdout, new RegExp(`^usage: switchyard ${c}`));
  }
  const bad = await cliIn(d!.env, ['approve', 'x']);
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /SY_ERR_USAGE/);
});

test('first start: the file is revision 1, active, audited', async () => {
  const r = json(await cliIn(d!.env, ['revisions', '--format', 'json']));
  assert.equal(r.active, 1);
  assert.equal(r.revisions.length, 1);
  assert.equal(r.revisions[0].channel, 'file');
  assert.equal(r.revisions[0].source, configPath);
  assert.match(r.revisions[0].sourceSha256, /^[0-9a-f]{64}$/);
  assert.equal(r.revisions[0].note, 'first start');
  const a = json(await cliIn(d!.env, ['audit', '--format', 'json']));
  assert.deepEqual(
    a.events.map((e: any) => e.type),
    ['revision.created', 'revision.activated'],
  );
  const key = join(dir, 'state', 'hmac.key');
  assert.equal((await import('node:fs')).statSync(key).mode & 0o777, 0o600, 'HMAC key is 0600');
});

test('low risk (one exact name): a script waits, a person at a terminal activates it at once', async (t) => {
  if (!hasMicrosocks || !hasScript) return t.skip(`needs ${hasMicrosocks ? 'script' : 'microsocks'}`);
  assert.equal(await pathOf('count.test'), '127.0.0.1');
  const next: Variant = { ...current, extra: '\n[[rule]]\nname = "low"\negress = "ms"\ndomains = ["full:count.test"]\n' };
  // full:count.test is a new entry (the suffix rule `count` stays): one exact name, low risk. The
  // engine takes the most specific domain match, so full:count.test decides count.test.
  writeConfig(next);
  const scripted = json(await cliIn(d!.env, ['reload', '--format', 'json'])); // stdin is not a TTY here
  assert.equal(scripted.state, 'pending');
  assert.equal(scripted.risk.level, 'low');
  assert.equal(await pathOf('count.test'), '127.0.0.1', 'pending: nothing changed');
  // The real CLI on a pseudo-terminal (script(1)): a person asking.
  const env = { ...d!.env, SWITCHYARD_LOG: 'silent' };
  const tty = spawnSync('script', ['-qec', `${process.execPath} --import ${TSX} ${CLI} reload`, '/dev/null'], { env, encoding: 'utf8', timeout: 20_000 });
  assert.equal(tty.status, 0, tty.stdout + tty.stderr);
  assert.match(tty.stdout, new RegExp(`revision #${scripted.revision} \\(risk low\\) is active`));
  assert.equal(await pathOf('count.test'), '127.0.0.2', 'the low-risk change is live: the flow goes through microsocks');
  const st = await status();
  assert.equal(st.policy.active, scripted.revision);
  assert.equal(st.policy.lastKnownGood, 1);
  assert.ok(!st.policy.alerts.some((a: any) => a.revision === scripted.revision), 'activating it reviewed its non-interactive alert');
  current = next;
});

const riskCases: { name: string; variant: () => Variant; level: 'medium' | 'high'; reason: RegExp; probe: [string, string] }[] = [
  { name: 'a suffix', variant: () => ({ ...current, extra: `${current.extra}\n[[rule]]\negress = "ms"\ndomains = ["suffix.test"]\n` }), level: 'medium', reason: /suffix domain pattern added/, probe: ['a.suffix.test', 'direct'] },
  { name: 'removing a block rule', variant: () => ({ ...current, block: false }), level: 'high', reason: /block entry removed/, probe: ['blocked.test', 'block'] },
  { name: 'removing an exemption', variant: () => ({ ...current, exempt: false }), level: 'high', reason: /exemptions removed: app name:sing-box/, probe: ['blocked.test', 'block'] },
  { name: 'a default change', variant: () => ({ ...current, default: 'ms' }), level: 'high', reason: /default egress changes from direct to ms/, probe: ['other.test', 'direct'] },
];

for (const c of riskCases) {
  test(`${c.name} is ${c.level} risk: pending even from a terminal, nothing changes, reject clears its alerts`, async () => {
    writeConfig(c.variant());
    // interactive: true is what the CLI sends from a TTY (shown above through script(1)).
    const r = (await call(d!, 'reload', { interactive: true })) as any;
    assert.equal(r.state, 'pending', JSON.stringify(r));
    assert.equal(r.risk.level, c.level);
    assert.ok(r.risk.reasons.some((x: string) => c.reason.test(x)), r.risk.reasons.join('; '));
    assert.equal(await egressOf(c.probe[0]), c.probe[1], 'the running policy did not change');
    const diff = json(await cliIn(d!.env, ['diff', String(r.revision), '--format', 'json']));
    assert.equal(diff.risk.level, c.level);
    assert.equal(diff.provenance.channel, 'file');
    const text = await cliIn(d!.env, ['diff']);
    assert.match(text.stdout, new RegExp(`revision #${r.revision} \\(pending\\)`));
    assert.match(text.stdout, new RegExp(`risk: ${c.level.toUpperCase()}`));
    const st = await status();
    assert.ok(st.policy.pending.includes(r.revision));
    if (c.level === 'high') {
      assert.ok(st.policy.alerts.some((a: any) => a.kind === 'high-risk' && a.revision === r.revision), 'a high-risk alert in status');
      assert.match((await cliIn(d!.env, ['status'])).stdout, new RegExp(`ALERT \\d+ \\[high-risk\\] revision #${r.revision} is high-risk`));
    }
    json(await cliIn(d!.env, ['reject', String(r.revision), '--format', 'json']));
    const after = await status();
    assert.ok(!after.policy.pending.includes(r.revision));
    assert.ok(!after.policy.alerts.some((a: any) => a.revision === r.revision), 'rejecting reviewed its alerts');
    writeConfig(current);
  });
}

test('an unprivileged caller cannot approve (SY_ERR_CONTROL_PERMISSION); the revision stays pending', async (t) => {
  if (!isRoot || !hasSetpriv) return t.skip(`needs ${isRoot ? 'setpriv' : 'root'}`);
  writeConfig({ ...current, default: 'ms' });
  const r = (await call(d!, 'reload', { interactive: true })) as any;
  assert.equal(r.state, 'pending');
  const tried = cli(d!.env, ['approve', String(r.revision)], 'nobody');
  assert.equal(tried.status, 1);
  assert.match(tried.stderr, /SY_ERR_CONTROL_PERMISSION/);
  assert.equal(((await call(d!, 'revisions')) as any).revisions.find((x: any) => x.n === r.revision).state, 'pending');
  assert.equal(await egressOf('other.test'), 'direct');
  json(await cliIn(d!.env, ['reject', String(r.revision), '--format', 'json']));
  writeConfig(current);
});

test('a 10k-rule import is pending and high; nothing changes until approved; rollback restores', async () => {
  const file = join(dir, 'bulk.toml');
  writeFileSync(file, configText(ports, { ...current, extra: `${current.extra}\n${manyRules(9_997)}` }));
  const before = (await status()).policy.active;
  const imp = await cliIn(d!.env, ['import', file]);
  assert.equal(imp.status, 0, imp.stderr);
  const m = /revision #(\d+) is PENDING \(config, 10000 rules, risk high\)/.exec(imp.stdout);
  assert.ok(m, imp.stdout);
  const n = Number(m[1]);
  assert.match(imp.stdout, /mass change: 9997 entries/);
  assert.equal(await egressOf('n42.bulk.test'), 'direct', 'not active before approve');
  assert.equal((await status()).policy.active, before);
  const diff = json(await cliIn(d!.env, ['diff', String(n), '--format', 'json']));
  assert.equal(diff.counts.added, 9997);
  assert.ok(diff.moreLines > 0, 'the diff is capped for the control frame');
  json(await cliIn(d!.env, ['approve', String(n), '--format', 'json']));
  assert.equal(await egressOf('n42.bulk.test'), 'ms');
  const rb = json(await cliIn(d!.env, ['rollback', '--format', 'json']));
  assert.equal(rb.to, before);
  assert.equal(await egressOf('n42.bulk.test'), 'direct', 'rolled back to last-known-good');
  const revs = json(await cliIn(d!.env, ['revisions', '--format', 'json']));
  assert.equal(revs.revisions.find((x: any) => x.n === n).state, 'superseded');
  assert.equal(revs.revisions.find((x: any) => x.n === rb.revision).state, 'active');
  assert.equal(revs.lastKnownGood, before);
});

test('hostile import files are refused with their code and change nothing', async () => {
  const count = () => call(d!, 'revisions').then((r: any) => r.revisions.length as number);
  const n0 = await count();
  const cases: [string, string | Buffer, RegExp][] = [
    ['unknown-key.toml', 'version = 1\n[[rule]]\negress = "ms"\ndomains = ["x.test"]\nvia_magic = true\n', /SY_ERR_CONFIG\b.*unknown key 'via_magic'/s],
    ['version.toml', 'version = 2\n[[rule]]\negress = "ms"\ndomains = ["x.test"]\n', /SY_ERR_CONFIG_VERSION/],
    ['long.toml', `version = 1\n[[rule]]\negress = "ms"\ndomains = ["${'a'.repeat(300)}.test"]\n`, /SY_ERR_CONFIG_PATTERN_TOO_LONG|SY_ERR_CONFIG\b/],
    ['nested.toml', `version = 1\nx = ${'['.repeat(40)}${']'.repeat(40)}\n`, /SY_ERR_CONFIG_LIMIT/],
    ['big.toml', Buffer.alloc(1024 * 1024 + 10, 0x23), /SY_ERR_CONFIG_TOO_LARGE/],
    ['undeclared.toml', 'version = 1\n[[rule]]\negress = "nowhere"\ndomains = ["x.test"]\n', /egress 'nowhere' is not declared/],
  ];
  for (const [name, body, code] of cases) {
    const f = join(dir, name);
    writeFileSync(f, body);
    const r = await cliIn(d!.env, ['import', f, '--linked']);
    assert.notEqual(r.status, 0, name);
    assert.match(r.stderr, code, `${name}: ${r.stderr}`);
  }
  assert.equal(await count(), n0, 'no revision was made');
});

test('snapshot import: a later change of the source is only a notice; linked: it makes a pending revision', async () => {
  const snap = join(dir, 'snap-list.toml');
  writeFileSync(snap, 'version = 1\n[[rule]]\negress = "ms"\ndomains = ["full:snap.test"]\n');
  const si = json(await cliIn(d!.env, ['import', snap, '--format', 'json']));
  assert.equal(si.kind, 'rule-list');
  assert.equal(si.state, 'pending');
  json(await cliIn(d!.env, ['approve', String(si.revision), '--format', 'json']));
  assert.equal(await egressOf('snap.test'), 'ms', 'the list rule is live after approve');
  assert.equal(await egressOf('count.test'), 'ms', 'the running rules were kept');
  // Someone edits the snapshot source: a notice, nothing pending, nothing live changes.
  const pending0 = (await status()).policy.pending.length;
  writeFileSync(snap, 'version = 1\n[[rule]]\negress = "direct"\ndomains = ["full:snap.test"]\n');
  await until(async () => (await status()).policy.notices.some((x: any) => x.message.includes(snap)), 'the snapshot notice');
  assert.equal((await status()).policy.pending.length, pending0);
  assert.equal(await egressOf('snap.test'), 'ms');

  const linked = join(dir, 'linked-list.toml');
  writeFileSync(linked, 'version = 1\n[[rule]]\negress = "ms"\ndomains = ["full:linked.test"]\n');
  const li = json(await cliIn(d!.env, ['import', linked, '--linked', '--format', 'json']));
  json(await cliIn(d!.env, ['approve', String(li.revision), '--format', 'json']));
  assert.equal(await egressOf('linked.test'), 'ms');
  // An unexpected change of the linked source: pending (with an alert), not active.
  writeFileSync(linked, 'version = 1\n[[rule]]\negress = "block"\ndomains = ["full:linked.test"]\n[[rule]]\negress = "ms"\ndomains = ["evil.test"]\n');
  const n = await until(async () => (await status()).policy.pending.find((x: number) => x > li.revision), 'the linked candidate');
  const revs = json(await cliIn(d!.env, ['revisions', '--format', 'json']));
  const row = revs.revisions.find((x: any) => x.n === n);
  assert.equal(row.channel, 'linked');
  assert.equal(row.source, linked);
  assert.equal(row.interactive, false);
  assert.equal(row.risk, 'high', 'it reroutes an existing destination');
  assert.equal(await egressOf('linked.test'), 'ms', 'not active');
  assert.equal(await egressOf('x.evil.test'), 'direct', 'not active');
  const st = await status();
  assert.ok(st.policy.alerts.some((a: any) => a.kind === 'non-interactive' && a.revision === n));
  const diff = await cliIn(d!.env, ['diff', String(n)]);
  assert.match(diff.stdout, /origin: linked .*linked-list\.toml/);
  assert.match(diff.stdout, /~ domain full linked\.test: ms -> block/);
  assert.match(diff.stdout, /\+ domain suffix evil\.test -> ms/);
  json(await cliIn(d!.env, ['reject', String(n), '--format', 'json']));
});

test('alerts ack reviews an alert (audited) and removes it from status', async () => {
  writeConfig({ ...current, default: 'ms' });
  const r = (await call(d!, 'reload', { interactive: false })) as any;
  const st = await status();
  const ids = st.policy.alerts.filter((a: any) => a.revision === r.revision).map((a: any) => a.id);
  assert.equal(ids.length, 2, 'high-risk and non-interactive');
  for (const id of ids) json(await cliIn(d!.env, ['alerts', 'ack', String(id), '--format', 'json']));
  assert.ok(!(await status()).policy.alerts.some((a: any) => ids.includes(a.id)));
  const all = json(await cliIn(d!.env, ['alerts', '--all', '--format', 'json']));
  assert.ok(all.alerts.filter((a: any) => ids.includes(a.id)).every((a: any) => a.reviewed && a.reviewedBy === 'root'));
  const a = json(await cliIn(d!.env, ['audit', '--limit', '2', '--format', 'json']));
  assert.deepEqual(
    a.events.map((e: any) => [e.type, e.detail.alert, e.actor.user]),
    ids.map((id: number) => ['alert.reviewed', id, 'root']),
  );
  json(await cliIn(d!.env, ['reject', String(r.revision), '--format', 'json']));
  writeConfig(current);
});

test('audit --verify: an edit in the middle, a cut end, and a rewrite with recomputed hashes are each detected', async () => {
  const { createHash } = await import('node:crypto');
  const { canonicalJson } = await import('../../src/store/canonical.ts');
  const log = join(dir, 'state', 'store', 'audit.ndjson');
  const good = readFileSync(log, 'utf8');
  const ok = await cliIn(d!.env, ['audit', '--verify']);
  assert.equal(ok.status, 0, ok.stderr);
  assert.match(ok.stdout, /verified/);
  const lines = good.trimEnd().split('\n');
  assert.ok(lines.length >= 10, 'a log with some history');
  const rehash = (evs: any[]) => {
    let prev = '0'.repeat(64);
    return evs.map((e) => {
      const { hash: _h, ...body } = { ...e, prev };
      const hash = createHash('sha256').update(canonicalJson(body)).digest('hex');
      prev = hash;
      return canonicalJson({ ...body, hash });
    });
  };
  const mid = Math.floor(lines.length / 2);
  const edited = JSON.parse(lines[mid]!);
  edited.actor = { user: 'someone-else', uid: 1234 };
  const cases: [string, string, RegExp][] = [
    ['edited in the middle', [...lines.slice(0, mid), canonicalJson(edited), ...lines.slice(mid + 1)].join('\n') + '\n', new RegExp(`line ${mid + 1}: hash mismatch`)],
    ['truncated', lines.slice(0, lines.length - 3).join('\n') + '\n', /truncated or deleted/],
    ['rewritten with recomputed hashes', rehash(lines.map((l) => ({ ...JSON.parse(l), ...(JSON.parse(l).actor ? { actor: { user: 'nobody', uid: 65534 } } : {}) }))).join('\n') + '\n', /the log was rewritten/],
  ];
  try {
    for (const [what, text, problem] of cases) {
      writeFileSync(log, text);
      const r = await cliIn(d!.env, ['audit', '--verify']);
      assert.equal(r.status, 1, `${what}: exit ${r.status}`);
      assert.match(r.stderr, /SY_ERR_STORE_AUDIT/, what);
      assert.match(r.stderr, problem, `${what}: ${r.stderr}`);
      const j = await cliIn(d!.env, ['audit', '--verify', '--format', 'json']);
      assert.equal(j.status, 1);
      assert.equal(JSON.parse(j.stdout).error.code, 'SY_ERR_STORE_AUDIT');
    }
  } finally {
    writeFileSync(log, good);
    chmodSync(log, 0o600);
  }
  assert.equal((await cliIn(d!.env, ['audit', '--verify'])).status, 0, 'the original log verifies again');
});
