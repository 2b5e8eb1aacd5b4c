// The service files and the CLI surface: the rendered systemd unit passes `systemd-analyze
// verify` and keeps only the capabilities switchyard needs; install/uninstall into a scratch unit
// directory; the Windows sc.exe lines; `switchyard --help` and every command's `--help`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { renderUnit, windowsServiceCommands } from '../../src/daemon/service.ts';
import { cliIn, tempDir, ROOT } from '../helpers/daemon.ts';

const hasAnalyze = spawnSync('systemd-analyze', ['--version']).status === 0;
const ENV = { ...process.env };

// Every capability name the kernel knows (linux/capability.h), to catch a misspelt one: systemd
// only warns about unknown names.
const KNOWN_CAPS = new Set(
  'CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID KILL SETGID SETUID SETPCAP LINUX_IMMUTABLE NET_BIND_SERVICE NET_BROADCAST NET_ADMIN NET_RAW IPC_LOCK IPC_OWNER SYS_MODULE SYS_RAWIO SYS_CHROOT SYS_PTRACE SYS_PACCT SYS_ADMIN SYS_BOOT SYS_NICE SYS_RESOURCE SYS_TIME SYS_TTY_CONFIG MKNOD LEASE AUDIT_WRITE AUDIT_CONTROL SETFCAP MAC_OVERRIDE MAC_ADMIN SYSLOG WAKE_ALARM BLOCK_SUSPEND AUDIT_READ PERFMON BPF CHECKPOINT_RESTORE'
    .split(' ')
    .map((c) => `CAP_${c}`),
);

test('the systemd unit passes systemd-analyze verify with only the needed capabilities', (t) => {
  const dir = tempDir('sy-unit-');
  const config = join(dir, 'config.toml');
  writeFileSync(config, 'version = 1\n');
  const unit = renderUnit({ command: [process.execPath, join(ROOT, 'bin/switchyard.js')], config });
  assert.doesNotMatch(unit, /@[A-Z]+@/, 'every placeholder filled');
  assert.match(unit, new RegExp(`^ExecStart=${process.execPath} \\S+/bin/switchyard\\.js up --config ${config}$`, 'm'));
  const caps = /^CapabilityBoundingSet=(.*)$/m.exec(unit)![1]!.split(/\s+/);
  for (const c of caps) assert.ok(KNOWN_CAPS.has(c), `unknown capability ${c}`);
  assert.ok(caps.includes('CAP_NET_ADMIN') && caps.includes('CAP_NET_BIND_SERVICE'));
  for (const broad of ['CAP_SYS_ADMIN', 'CAP_SYS_MODULE', 'CAP_DAC_OVERRIDE', 'CAP_SETUID']) assert.ok(!caps.includes(broad), `${broad} is not needed`);
  assert.doesNotMatch(unit, /^ProtectControlGroups=yes/m, 'cgroups must stay writable');
  if (!hasAnalyze) return t.skip('needs systemd-analyze');
  const file = join(dir, 'switchyard.service');
  writeFileSync(file, unit);
  const r = spawnSync('systemd-analyze', ['verify', file], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  // verify only warns about unknown keys and bad values: any line naming our file is a problem.
  const ours = r.stderr.split('\n').filter((l) => l.includes(file));
  assert.deepEqual(ours, []);
  // And it does catch a broken unit (so the check above can fail).
  writeFileSync(file, unit.replace('Type=simple', 'Type=simpel'));
  const bad = spawnSync('systemd-analyze', ['verify', file], { encoding: 'utf8' });
  assert.ok(bad.status !== 0 || bad.stderr.includes(file), 'a bad value is reported');
});

test('service install / uninstall into a unit directory; Windows gets sc.exe lines', async () => {
  const dir = tempDir('sy-unitdir-');
  const dry = await cliIn(ENV, ['service', 'install', '--target', 'systemd', '--dry-run', '--config', '/etc/switchyard/config.toml']);
  assert.equal(dry.status, 0, dry.stderr);
  assert.match(dry.stdout, /^ExecStart=\S+ \S+switchyard\.js up --config \/etc\/switchyard\/config\.toml$/m);
  const inst = await cliIn(ENV, ['service', 'install', '--target', 'systemd', '--unit-dir', dir]);
  assert.equal(inst.status, 0, inst.stderr);
  assert.match(readFileSync(join(dir, 'switchyard.service'), 'utf8'), /^CapabilityBoundingSet=CAP_NET_ADMIN /m);
  const un = await cliIn(ENV, ['service', 'uninstall', '--target', 'systemd', '--unit-dir', dir]);
  assert.equal(un.status, 0, un.stderr);
  assert.equal(existsSync(join(dir, 'switchyard.service')), false);
  const win = await cliIn(ENV, ['service', 'install', '--target', 'windows', '--config', 'C:\\sy\\config.toml']);
  assert.equal(win.status, 0);
  assert.match(win.stdout, /^sc\.exe create switchyard binPath= ".*up --config \\"C:\\sy\\config\.toml\\"" start= auto obj= LocalSystem/m);
  assert.match(win.stdout, /^sc\.exe failure switchyard reset= 86400 actions= restart/m);
  assert.equal(windowsServiceCommands({ node: 'C:\\node.exe', script: 'C:\\s.js', config: 'C:\\c.toml' }).length, 4);
  const badUsage = await cliIn(ENV, ['service', 'reinstall']);
  assert.equal(badUsage.status, 2);
});

test('switchyard --help lists every command, and each command has --help', async () => {
  const top = await cliIn(ENV, ['--help']);
  assert.equal(top.status, 0);
  const cmds = ['up', 'status', 'reload', 'stop', 'explain', 'conns', 'close', 'rdns', 'cache', 'egress', 'rules', 'service'];
  for (const c of cmds) {
    assert.match(top.stdout, new RegExp(`^  ${c} +\\S`, 'm'), `${c} listed`);
    const h = await cliIn(ENV, [c, '--help']);
    assert.equal(h.status, 0, `${c} --help: ${h.stderr}`);
    assert.match(h.stdout, new RegExp(`^usage: switchyard ${c}`), `${c} --help prints its usage`);
  }
  const unknown = await cliIn(ENV, ['conns', '--bogus']);
  assert.equal(unknown.status, 2);
  assert.match(unknown.stderr, /SY_ERR_USAGE/);
});
