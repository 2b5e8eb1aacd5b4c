// The daemon raises its open-file limit at start (src/daemon/os-glue.ts → raiseFdLimit), and the
// session cap is checked against it. Node itself raises the soft limit to the hard one when it
// starts, so the child (hard limit 4096 via prlimit) lowers its soft limit to 512 through libc
// first; the raise is then visible in its own /proc/self/limits.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as h from './helpers.ts';
import { sessionsForFdLimit, FD_RESERVE, FDS_PER_SESSION } from '../../src/daemon/os-glue.ts';

const skip = process.platform !== 'linux' ? 'Linux only' : h.has('prlimit') ? false : 'needs prlimit';

test('osGlue on Linux raises the soft RLIMIT_NOFILE to the hard limit at start', { skip }, () => {
  const glue = new URL('../../src/daemon/os-glue.ts', import.meta.url).pathname;
  const tsx = new URL('../../node_modules/tsx/dist/loader.mjs', import.meta.url).pathname;
  const libc = new URL('../../src/sys/linux/libc.ts', import.meta.url).pathname;
  const script = `const { osGlue } = await import(${JSON.stringify(glue)});
const L = await import(${JSON.stringify(libc)});
const b = Buffer.alloc(16); b.writeBigUInt64LE(512n, 0); b.writeBigUInt64LE(4096n, 8);
if (L.libc().setrlimit(L.RLIMIT_NOFILE, b) !== 0) throw new Error('setrlimit');
const before = (await import('node:fs')).readFileSync('/proc/self/limits', 'utf8').match(/Max open files +(\\d+) +(\\d+)/);
const g = await osGlue('linux', false, () => undefined);
const after = (await import('node:fs')).readFileSync('/proc/self/limits', 'utf8').match(/Max open files +(\\d+) +(\\d+)/);
console.log(JSON.stringify({ before: [before[1], before[2]], after: [after[1], after[2]], fdLimit: g.fdLimit, binder: typeof g.udpDeviceBinder }));
process.exit(0);`;
  const out = execFileSync('prlimit', ['--nofile=512:4096', process.execPath, '--import', tsx, '--input-type=module', '-e', script], { encoding: 'utf8', env: Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'NODE_TEST_CONTEXT')) });
  const r = JSON.parse(out.trim().split('\n').at(-1)!);
  assert.deepEqual(r.before, ['512', '4096'], 'the child started with the low soft limit');
  assert.deepEqual(r.after, ['4096', '4096'], 'raised to the hard limit');
  assert.deepEqual(r.fdLimit, { soft: 4096, hard: 4096 });
  assert.equal(r.binder, 'function', 'the UDP device binder is provided on Linux');
});

test('the session cap that fits an fd limit', () => {
  assert.equal(sessionsForFdLimit(1024), (1024 - FD_RESERVE) / FDS_PER_SESSION);
  assert.equal(sessionsForFdLimit(100), 0);
  assert.equal(sessionsForFdLimit(524288), 262016);
});
