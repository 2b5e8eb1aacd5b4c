// The whole daemon under Wine with Wine's own DLLs: the tsc build (dist/) run by the Windows build of
// Node 20. From Linux: dig gets an answer from its DNS forwarder and curl --socks5 goes through its
// mixed inbound (Wine's sockets are host sockets). Over the named pipe, node.exe clients run
// `switchyard conns`/`status`/`stop`; conns shows the live flow of a Windows client with its PID and
// exe (GetExtendedTcpTable + QueryFullProcessImageNameW). The named-pipe identity pieces and
// `dns system on/off` run through the real registry. With [enforce] enabled, the WFP backend gets
// 0x6E4 and the daemon refuses with a clear message, leaving no listener behind.
// Runs in a private PID + network namespace (Wine's socket-owner scan walks /proc of every visible
// process, which is slow on a busy host); everything stays on 127.0.0.1 inside it.
// Needs wine64 and .tools/win (tools/windows/wine-setup.sh), dnsmasq, dig, curl.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { nrptRuleValues } from '../../src/redirect/windows/nrpt.ts';
import { ROOT, WINE, NODE_EXE, KOFFI_WIN, PREFIX, wineToolsMissing } from './helpers/wine-paths.ts';

function missing(): string | undefined {
  const wine = wineToolsMissing();
  if (wine) return wine;
  for (const tool of ['dnsmasq', 'dig', 'curl']) if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) return `needs ${tool}`;
  return undefined;
}
const why = missing();
const isolated = process.getuid?.() === 0;

let dir = '';
let app = '';
let r: Record<string, any> = {};

before(() => {
  if (why) return;
  dir = mkdtempSync(join(tmpdir(), 'sy-wined-'));
  app = join(dir, 'app');
  // The production layout: dist/ from tsc, bin/, config/default.toml, package.json, the runtime
  // dependencies (koffi with its win32 binary).
  execFileSync(join(ROOT, 'node_modules/.bin/tsc'), ['-p', join(ROOT, 'tsconfig.build.json'), '--outDir', join(app, 'dist')]);
  mkdirSync(join(app, 'bin'), { recursive: true });
  copyFileSync(join(ROOT, 'bin/switchyard.js'), join(app, 'bin/switchyard.js'));
  cpSync(join(ROOT, 'config'), join(app, 'config'), { recursive: true });
  copyFileSync(join(ROOT, 'package.json'), join(app, 'package.json'));
  const deps = execFileSync('npm', ['ls', '--all', '--omit=dev', '--parseable'], { cwd: ROOT, encoding: 'utf8' }).trim().split('\n').slice(1);
  for (const d of deps) cpSync(d, join(app, relative(ROOT, d)), { recursive: true });
  cpSync(KOFFI_WIN, join(app, 'node_modules/@koromix/koffi-win32-x64'), { recursive: true });
  copyFileSync(NODE_EXE, join(app, 'node.exe'));
  execFileSync(join(ROOT, 'node_modules/esbuild/bin/esbuild'), [
    join(ROOT, 'tools/windows/wine-client.ts'),
    '--bundle',
    '--platform=node',
    '--format=esm',
    '--target=node20',
    '--external:koffi',
    `--outfile=${join(app, 'client.mjs')}`,
    '--log-level=warning',
  ]);
  // Its own wineserver: none of ours may run outside the namespace with this prefix.
  spawnSync('/usr/lib/wine/wineserver', ['-k'], { env: { ...process.env, WINEPREFIX: PREFIX }, stdio: 'ignore', timeout: 20_000 });
  const out = join(dir, 'result.json');
  const run = ['node', '--import', 'tsx', join(ROOT, 'tools/windows/wine-daemon-run.ts'), out];
  const argv = isolated ? ['unshare', '--net', '--pid', '--fork', '--mount-proc', 'bash', '-c', `ip link set lo up && exec ${run.map((a) => `'${a}'`).join(' ')}`] : run;
  spawnSync(argv[0]!, argv.slice(1), { cwd: ROOT, env: { ...process.env, WINEPREFIX: PREFIX, SY_APP: app }, stdio: 'ignore', timeout: 110_000 });
  r = existsSync(out) ? JSON.parse(readFileSync(out, 'utf8')) : { error: 'the run wrote no result' };
  writeFileSync(join(ROOT, '.tools/win/last-daemon-run.json'), JSON.stringify(r, null, 2));
});

after(() => {
  // SY_KEEP_WINE_APP=1 keeps the app folder (logs of every Wine process) for debugging.
  if (dir && !process.env['SY_KEEP_WINE_APP']) rmSync(dir, { recursive: true, force: true });
});

const t = (name: string, fn: () => void) =>
  test(name, (tc) => {
    if (why) return tc.skip(why);
    assert.equal(r.error, undefined, `run failed: ${r.error}\n${JSON.stringify(r, null, 1).slice(0, 4000)}`);
    fn();
  });

t('the daemon under Wine serves DNS to dig and SOCKS5 to curl from Linux', () => {
  assert.equal(r.dig, '198.18.0.77', 'answered through the forwarder from the dnsmasq upstream');
  assert.equal(r.curl, 'hello from linux\n');
});

t('the CLI over the named pipe: status, and conns showing the live flow of a Windows client with PID and exe', () => {
  assert.equal(r.status.code, 0, JSON.stringify(r.status));
  assert.equal(r.conns.code, 0, JSON.stringify(r.conns));
  const flows = (r.conns.json.flows ?? r.conns.json) as any[];
  const mine = flows.find((f) => f.pid === r.hold.pid);
  assert.ok(mine, `a flow of pid ${r.hold.pid} in ${JSON.stringify(flows)}`);
  assert.equal(String(mine.process).toLowerCase(), 'node.exe');
  assert.equal(mine.client, `127.0.0.1:${r.hold.localPort}`);
});

t('stop over the named pipe (a state-changing call) ends the daemon and closes its ports', () => {
  assert.equal(r.stop.code, 0, r.stop.out);
  assert.equal(r.closedAfterStop, true);
});

t('named-pipe identity pieces under Wine: client PID from our own pipe instance, token facts, permission class', () => {
  const c = r.checks;
  assert.equal(c.pipeClientPid, c.pid, JSON.stringify(c.pipeError ?? c));
  assert.equal(c.tokenViaPidSame, true, 'OpenProcess + OpenProcessToken by PID gives the same facts as our own token');
  assert.match(c.token.sid, /^S-1-5-/);
  assert.ok(Array.isArray(c.token.groups) && c.token.groups.length > 0);
  // Wine runs everything as an elevated Administrator.
  assert.equal(c.class.privileged, true, JSON.stringify(c.class));
});

t('dns system on/off through the real registry: the rule is written, then the key is exactly as before', () => {
  const n = r.checks.nrpt;
  assert.ok(n, JSON.stringify(r.checks.nrptError));
  assert.equal(n.on.on, true);
  assert.equal(n.on.server, '127.0.0.1');
  assert.equal(n.on.intact, true);
  // Read back by RegEnumValueW: exactly the bytes and types the plan wrote.
  const got = Object.fromEntries((n.during.values as any[]).map((v) => [v.name, [v.type, Buffer.from(v.data.data).toString('hex')]]));
  const want = Object.fromEntries(nrptRuleValues('127.0.0.1').map((v) => [v.name, [v.type, v.data.toString('hex')]]));
  assert.deepEqual(got, want);
  assert.equal(n.off.on, false);
  assert.equal(n.restored, true);
});

t('[enforce] enabled under Wine: WFP says 0x6E4, the daemon refuses with a clear message and leaves no listener', () => {
  assert.notEqual(r.enforce.code, 0);
  assert.match(r.enforce.out, /SY_ERR_WIN_WFP_UNSUPPORTED|0x6E4/);
  assert.match(r.enforce.out, /not available/);
  assert.equal(r.enforce.closed, true);
});
