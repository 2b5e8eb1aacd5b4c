// The backend's use of WFP transactions, against a recording WfpSession that models WFP's
// transaction semantics (changes become visible on commit, vanish on abort; a dynamic session's
// filters vanish when it closes). This checks OUR side — call order, abort on any error, nothing
// left behind, the fail-closed skeleton on stop — not Windows itself (see docs/windows.md for what
// only a real Windows machine can show).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildWfpPlan } from '../../src/redirect/windows/filter-plan.ts';
import { world, FakeSession } from './helpers/fake-wfp.ts';
import { WindowsBackend } from '../../src/redirect/windows/backend.ts';
import { OsCallError } from '../../src/errors.ts';
import { testConfig } from './helpers/config.ts';

const plan = buildWfpPlan(testConfig(), { selfExe: 'C:\\switchyard\\node.exe' });

test('apply: one persistent transaction, then one dynamic transaction, then read-back', async () => {
  const { state, log, backend, sessions } = world();
  await backend.apply(plan);
  const per = log.filter((l) => l.startsWith('per.'));
  assert.deepEqual(per.slice(0, 5), ['per.begin', 'per.ensureProvider', 'per.ensureSublayer', 'per.filterKeys v4', 'per.filterKeys v6']);
  const perCommit = log.indexOf('per.commit');
  const dynBegin = log.indexOf('dyn.begin');
  assert.ok(perCommit > 0 && dynBegin > perCommit, 'dynamic after the persistent commit');
  assert.ok(log.indexOf('dyn.commit') > dynBegin);
  assert.deepEqual(log.slice(-3), ['per.filterKeys v4', 'per.filterKeys v6', 'per.close'], 'read back, then close the persistent session');
  assert.equal(state.filters.size, plan.persistent.length + plan.dynamic.length);
  assert.equal(sessions.filter((s) => s.dynamic && !s.closed).length, 1, 'the dynamic session stays open');
  assert.deepEqual(backend.status().lastError, null);
});

test('re-apply replaces our filters exactly (stable keys, no duplicates)', async () => {
  const { state, backend } = world();
  await backend.apply(plan);
  await backend.apply(plan);
  assert.equal(state.filters.size, plan.persistent.length + plan.dynamic.length);
});

test('an error in the middle of the persistent transaction aborts it: nothing committed', async () => {
  let adds = 0;
  const { state, log, backend, sessions } = world({ fail: (c) => c.startsWith('addFilter') && ++adds === 3 });
  await assert.rejects(backend.apply(plan), (e: OsCallError) => e.code === 'SY_ERR_WIN_WFP' && e.call.startsWith('addFilter'));
  assert.ok(log.includes('per.abort'));
  assert.ok(!log.includes('per.commit'));
  assert.ok(!log.some((l) => l.startsWith('dyn.')), 'the dynamic session is not touched');
  assert.equal(state.filters.size, 0);
  assert.equal(state.provider, false, 'even the provider add was rolled back');
  assert.ok(sessions.every((s) => s.closed), 'sessions closed');
  assert.match(backend.status().lastError ?? '', /addFilter/);
});

test('an error in the dynamic transaction aborts it; the persistent skeleton (fail closed) stays', async () => {
  const { state, log, backend } = world({ fail: (c, _n, dyn) => dyn && c.startsWith('addFilter') });
  await assert.rejects(backend.apply(plan));
  assert.ok(log.includes('dyn.abort'));
  assert.ok(!log.includes('dyn.commit'));
  const kinds = [...state.filters.values()].map((v) => v.spec);
  assert.equal(kinds.length, plan.persistent.length, 'only the persistent filters');
  assert.ok(kinds.every((f) => !plan.dynamic.some((d) => d.key === f.key)));
});

test('stop: the permits die with the dynamic session, the kill-switch stays', async () => {
  const { state, backend } = world();
  await backend.apply(plan);
  await backend.stop();
  const left = [...state.filters.values()].map((v) => v.spec);
  assert.equal(left.length, plan.persistent.length);
  assert.ok(left.some((f) => f.name.includes('kill-switch') && f.action === 'block'));
  assert.ok(!left.some((f) => f.name.includes('selected apps, TCP')), 'the permit is gone');
  assert.equal(backend.status().enabled, false);
});

test('a crash (dynamic session closed without stop) leaves the same fail-closed state', async () => {
  const { state, backend, sessions } = world();
  await backend.apply(plan);
  sessions.find((s) => s.dynamic)!.close(); // what WFP does when the process dies
  assert.equal(state.filters.size, plan.persistent.length);
});

test('down removes every filter of the provider, then the sublayer, then the provider, in one transaction', async () => {
  const { state, log, backend } = world();
  await backend.apply(plan);
  log.length = 0;
  await backend.down(plan.provider.key, plan.sublayer.key);
  assert.equal(log[0], 'dyn.close');
  const body = log.filter((l) => l.startsWith('per.'));
  assert.equal(body[0], 'per.begin');
  assert.deepEqual(body.slice(-4), ['per.deleteSublayer', 'per.deleteProvider', 'per.commit', 'per.close']);
  assert.equal(state.filters.size, 0);
  assert.equal(state.sublayer, false);
  assert.equal(state.provider, false);
});

test('down after a crash finds leftovers by provider key alone', async () => {
  const first = world();
  await first.backend.apply(plan);
  first.sessions.find((s) => s.dynamic)!.close(); // the first process died
  // A new process (fresh backend object, no memory of keys) on the same WFP state.
  const log: string[] = [];
  const fresh = new WindowsBackend({ openSession: (d) => new FakeSession(first.state, d, log, () => false), isElevated: () => true });
  await fresh.down(plan.provider.key, plan.sublayer.key);
  assert.equal(first.state.filters.size, 0);
  assert.equal(first.state.sublayer, false);
  assert.equal(first.state.provider, false);
});

test('not elevated: refused before any WFP call', async () => {
  const { log, backend } = world({ elevated: false });
  await assert.rejects(backend.apply(plan), (e: OsCallError) => e.code === 'SY_ERR_WIN_NOT_ADMIN');
  assert.deepEqual(log, []);
});

test('WFP unavailable (0x6E4, as under Wine): refused with a clear message, nothing left behind', async () => {
  const log: string[] = [];
  const backend = new WindowsBackend({
    openSession: () => {
      log.push('open');
      throw new OsCallError('SY_ERR_WIN_WFP_UNSUPPORTED', 'FwpmEngineOpen0', 0x6e4, '0x6E4: the Windows Filtering Platform is not available');
    },
    isElevated: () => true,
  });
  await assert.rejects(backend.apply(plan), (e: OsCallError) => e.code === 'SY_ERR_WIN_WFP_UNSUPPORTED' && /0x6E4/.test(e.message));
  assert.deepEqual(log, ['open']);
  assert.equal(backend.status().enabled, false);
});
