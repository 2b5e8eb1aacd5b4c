// The logger factory: level resolution, JSON lines by default, the readable TTY form, and the
// privacy rule (host names and paths only at debug).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createLogger, resolveLogLevel, formatPretty, REDACTED } from '../../src/log.ts';
import { isSwitchyardError } from '../../src/errors.ts';

function sink(isTTY = false) {
  const lines: string[] = [];
  return { lines, dest: { isTTY, write: (s: string) => void lines.push(s) } };
}

test('level: flag wins over SWITCHYARD_LOG, then info; bad values are usage errors', () => {
  assert.equal(resolveLogLevel(undefined, {}), 'info');
  assert.equal(resolveLogLevel(undefined, { SWITCHYARD_LOG: 'DEBUG' }), 'debug');
  assert.equal(resolveLogLevel('warn', { SWITCHYARD_LOG: 'debug' }), 'warn');
  assert.throws(() => resolveLogLevel('loud', {}), (e) => isSwitchyardError(e) && e.code === 'SY_ERR_USAGE' && /--log-level/.test(e.message));
  assert.throws(() => resolveLogLevel(undefined, { SWITCHYARD_LOG: 'x' }), (e) => isSwitchyardError(e) && /SWITCHYARD_LOG/.test(e.message));
});

test('JSON lines by default, filtered by level', () => {
  const { lines, dest } = sink();
  const log = createLogger({ level: 'info', env: {}, destination: dest, component: 'dns' });
  log.debug('hidden');
  log.info({ flows: 3 }, 'started');
  assert.equal(lines.length, 1);
  const rec = JSON.parse(lines[0]!);
  assert.equal(rec.msg, 'started');
  assert.equal(rec.level, 30);
  assert.equal(rec.flows, 3);
  assert.equal(rec.component, 'dns');
  assert.match(rec.time, /^\d{4}-\d\d-\d\dT/);
});

test('host names, addresses and paths are redacted at info and shown at debug', () => {
  const a = sink();
  createLogger({ level: 'info', env: {}, destination: a.dest }).warn({ domain: 'secret.example', flow: { dst: '198.18.0.1', path: '/home/u' }, egress: 'vpn' }, 'egress down');
  const ra = JSON.parse(a.lines[0]!);
  assert.equal(ra.domain, REDACTED);
  assert.equal(ra.flow.dst, REDACTED);
  assert.equal(ra.flow.path, REDACTED);
  assert.equal(ra.egress, 'vpn');
  assert.ok(!a.lines[0]!.includes('secret.example'));

  const b = sink();
  createLogger({ level: 'debug', env: {}, destination: b.dest }).info({ domain: 'secret.example' }, 'x');
  assert.equal(JSON.parse(b.lines[0]!).domain, 'secret.example');
});

test('a TTY gets one readable line per record', () => {
  const { lines, dest } = sink(true);
  createLogger({ level: 'info', env: {}, destination: dest }).error({ egress: 'vpn', n: 2 }, 'probe failed');
  assert.equal(lines.length, 1);
  assert.match(lines[0]!, /^\d\d:\d\d:\d\d\.\d{3} ERROR probe failed egress=vpn n=2\n$/);
  assert.equal(formatPretty('not json'), 'not json\n');
});
