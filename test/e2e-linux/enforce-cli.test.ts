// `switchyard enforce dry-run` prints the script without touching the system; `enforce skeleton`
// (what packaging/switchyard-skeleton.service runs at early boot) installs the fail-closed skeleton
// in a namespace this test made; the unit passes `systemd-analyze verify`.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { missing, removeCgroupTree, uniqueCgroupRoot } from './helpers.ts';

const CLI = fileURLToPath(new URL('../redirect-linux/helpers/cli-entry.ts', import.meta.url));
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'sy-enforce-cli-'));
const config = join(dir, 'config.toml');
writeFileSync(config, 'version = 1\n[dns]\nlisten = ["127.0.0.1:5333"]\n[enforce]\nenabled = true\n[egress.vpn]\ntype = "socks5"\nendpoint = "socks5://127.0.0.1:1081"\n[[rule]]\negress = "vpn"\ndomains = ["x.test"]\n');
const cgroupRoot = uniqueCgroupRoot('enforce-cli');
after(() => removeCgroupTree(cgroupRoot));

test('enforce dry-run prints the active script and the skeleton, touching nothing', () => {
  const before = spawnSync('nft', ['list', 'ruleset'], { encoding: 'utf8' }).stdout;
  const r = spawnSync(process.execPath, ['--import', 'tsx', CLI, 'enforce', 'dry-run', '--config', config], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^table inet switchyard \{$/m);
  assert.match(r.stdout, /socket cgroupv2 level 2 "switchyard\/egress-vpn" redirect to :60001/);
  assert.match(r.stdout, /th dport 53 redirect to :5333/);
  const s = spawnSync(process.execPath, ['--import', 'tsx', CLI, 'enforce', 'dry-run', '--skeleton', '--config', config], { encoding: 'utf8' });
  assert.equal(s.status, 0, s.stderr);
  assert.doesNotMatch(s.stdout, /redirect to/);
  assert.match(s.stdout, /egress-vpn" goto deny/);
  assert.equal(spawnSync('nft', ['list', 'ruleset'], { encoding: 'utf8' }).stdout, before);
});

test('enforce skeleton installs the fail-closed table in a namespace; down removes it', (t) => {
  const why = missing([]);
  if (why) return t.skip(why);
  const script = [
    'set -e',
    'mount -t cgroup2 none /sys/fs/cgroup',
    `"$0" --import tsx "$1" enforce skeleton --config "$2"`,
    'nft list table inet switchyard',
    `"$0" --import tsx "$1" down`,
    'echo AFTER; nft list ruleset',
  ].join('\n');
  const r = spawnSync('unshare', ['--mount', '--net', '--propagation', 'private', '--', 'sh', '-c', script, process.execPath, CLI, config], {
    encoding: 'utf8',
    env: { ...process.env, SWITCHYARD_CGROUP_ROOT: cgroupRoot, SWITCHYARD_RUNTIME_DIR: join(dir, 'run'), SWITCHYARD_STATE_DIR: join(dir, 'state') },
  });
  assert.equal(r.status, 0, r.stderr);
  const [table, afterDown] = r.stdout.split('AFTER');
  assert.match(table!, /installed the fail-closed skeleton/);
  assert.match(table!, /th dport 53 .*goto deny|th dport 53 goto deny/);
  assert.match(table!, /egress-vpn" goto deny/);
  assert.doesNotMatch(table!, /redirect to/);
  assert.equal(afterDown!.trim(), '', 'down left nothing');
});

test('the early-boot unit passes systemd-analyze verify', (t) => {
  const unit = readFileSync(join(ROOT, 'packaging/switchyard-skeleton.service'), 'utf8')
    .replaceAll('@SWITCHYARD@', `${process.execPath} ${join(ROOT, 'bin/switchyard.js')}`)
    .replaceAll('@CONFIG@', config);
  assert.match(unit, /^Before=network-pre\.target/m);
  assert.match(unit, /^ExecStart=\S+ \S+ enforce skeleton --config /m);
  if (spawnSync('systemd-analyze', ['--version']).status !== 0) return t.skip('needs systemd-analyze');
  const file = join(dir, 'switchyard-skeleton.service');
  writeFileSync(file, unit);
  const r = spawnSync('systemd-analyze', ['verify', file], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(r.stderr.split('\n').filter((l) => l.includes(file)), []);
});
