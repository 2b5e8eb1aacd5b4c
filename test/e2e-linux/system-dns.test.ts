// `switchyard dns system on|off` (src/redirect/linux/system-dns.ts) against a temporary directory
// standing in for / — never the host's /etc/resolv.conf. Saved and restored exactly (bytes, mode,
// symlink target), refusal of unknown symlinks and of files changed since, the resolved drop-in,
// and `down` undoing it through the real CLI.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { systemDnsOff, systemDnsOn } from '../../src/redirect/linux/system-dns.ts';

const CLI = fileURLToPath(new URL('../redirect-linux/helpers/cli-entry.ts', import.meta.url));

function fakeRoot() {
  const root = mkdtempSync(join(tmpdir(), 'sy-sysdns-'));
  mkdirSync(join(root, 'etc'), { recursive: true });
  return { root, stateDir: join(root, 'state') };
}

test('resolv.conf file: replaced, then restored byte for byte with its mode', () => {
  const o = fakeRoot();
  const path = join(o.root, 'etc/resolv.conf');
  const original = Buffer.from('# héllo\nnameserver 192.0.2.1\nsearch lan\n', 'utf8');
  writeFileSync(path, original, { mode: 0o640 });
  const on = systemDnsOn(o, '127.0.0.1', 53);
  assert.equal(on.method, 'resolv.conf');
  assert.match(readFileSync(path, 'utf8'), /^nameserver 127\.0\.0\.1$/m);
  assert.equal(systemDnsOn(o, '127.0.0.1', 53).changed, false, 'idempotent while on');
  const off = systemDnsOff(o);
  assert.equal(off?.changed, true);
  assert.deepEqual(readFileSync(path), original);
  assert.equal(statSync(path).mode & 0o777, 0o640);
  assert.equal(systemDnsOff(o), null, 'nothing to undo the second time');
});

test('a known symlink is restored as the same symlink; an unknown one is refused untouched', () => {
  const o = fakeRoot();
  const path = join(o.root, 'etc/resolv.conf');
  symlinkSync('../run/systemd/resolve/stub-resolv.conf', path);
  systemDnsOn(o, '127.0.0.1', 53);
  assert.ok(lstatSync(path).isFile());
  systemDnsOff(o);
  assert.ok(lstatSync(path).isSymbolicLink());
  assert.equal(readlinkSync(path), '../run/systemd/resolve/stub-resolv.conf');

  const u = fakeRoot();
  const upath = join(u.root, 'etc/resolv.conf');
  symlinkSync('/opt/weird/resolv.conf', upath);
  assert.throws(() => systemDnsOn(u, '127.0.0.1', 53), { code: 'SY_ERR_REDIRECT_SYSTEM_DNS' });
  assert.equal(readlinkSync(upath), '/opt/weird/resolv.conf');
  assert.equal(existsSync(join(u.stateDir, 'system-dns.json')), false);
});

test('resolv.conf cannot name a port; a file changed since `on` is not overwritten', () => {
  const o = fakeRoot();
  const path = join(o.root, 'etc/resolv.conf');
  writeFileSync(path, 'nameserver 192.0.2.1\n');
  assert.throws(() => systemDnsOn(o, '127.0.0.1', 1053), /cannot name a port/);
  assert.equal(readFileSync(path, 'utf8'), 'nameserver 192.0.2.1\n');
  systemDnsOn(o, '127.0.0.1', 53);
  writeFileSync(path, 'nameserver 198.51.100.7\n'); // someone else took over
  assert.throws(() => systemDnsOff(o), /was changed since/);
  assert.equal(readFileSync(path, 'utf8'), 'nameserver 198.51.100.7\n');
});

test('systemd-resolved running: a drop-in with the port, removed again; resolved restarted both times', () => {
  const o = fakeRoot();
  writeFileSync(join(o.root, 'etc/resolv.conf'), 'nameserver 127.0.0.53\n');
  let restarts = 0;
  const opts = { ...o, resolvedActive: () => true, restartResolved: () => void restarts++ };
  const on = systemDnsOn(opts, '127.0.0.1', 1053);
  assert.equal(on.method, 'resolved');
  const dropin = readFileSync(join(o.root, 'etc/systemd/resolved.conf.d/switchyard.conf'), 'utf8');
  assert.match(dropin, /^DNS=127\.0\.0\.1:1053$/m);
  assert.match(dropin, /^Domains=~\.$/m);
  assert.equal(readFileSync(join(o.root, 'etc/resolv.conf'), 'utf8'), 'nameserver 127.0.0.53\n', 'resolv.conf untouched');
  systemDnsOff(opts);
  assert.equal(existsSync(join(o.root, 'etc/systemd/resolved.conf.d/switchyard.conf')), false);
  assert.equal(restarts, 2);
});

test('CLI: dns system on, then `down` puts resolv.conf back', (t) => {
  if (process.platform !== 'linux') return t.skip('needs Linux');
  const o = fakeRoot();
  const path = join(o.root, 'etc/resolv.conf');
  writeFileSync(path, 'nameserver 192.0.2.1\n');
  const env = { ...process.env, SWITCHYARD_SYSTEM_ROOT: o.root, SWITCHYARD_STATE_DIR: o.stateDir, SWITCHYARD_RUNTIME_DIR: join(o.root, 'run'), SWITCHYARD_CGROUP_ROOT: `switchyard-test-sysdns-${process.pid}` };
  const on = spawnSync(process.execPath, ['--import', 'tsx', CLI, 'dns', 'system', 'on', '--address', '127.0.0.1:53', '--format', 'json'], { env, encoding: 'utf8' });
  assert.equal(on.status, 0, on.stderr);
  assert.match(readFileSync(path, 'utf8'), /nameserver 127\.0\.0\.1/);
  if (process.getuid?.() !== 0) return t.skip('`down` needs root');
  // down in a private mount + net namespace: it also looks for a table there (none) and no groups.
  const down = spawnSync('unshare', ['--mount', '--net', '--', process.execPath, '--import', 'tsx', CLI, 'down', '--format', 'json'], { env, encoding: 'utf8' });
  assert.equal(down.status, 0, down.stderr);
  assert.equal((JSON.parse(down.stdout) as { systemDnsRestored: string }).systemDnsRestored, path);
  assert.equal(readFileSync(path, 'utf8'), 'nameserver 192.0.2.1\n');
});
