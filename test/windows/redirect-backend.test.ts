// The Windows RedirectBackend (src/redirect/windows/redirect-backend.ts) behind the OS-neutral
// interface: every refusal comes before any change (nothing left behind), a half-failed first apply
// is undone, skeleton keeps the kill-switch, down removes everything. WFP is the recording session
// of helpers/fake-wfp.ts (our side only; Wine's real 0x6E4 is in wine.test.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRedirectBackend, createFlowIdentity, buildPlan } from '../../src/redirect/index.ts';
import { WindowsRedirectBackend, type Reflection } from '../../src/redirect/windows/redirect-backend.ts';
import { OsCallError, RedirectUnavailableError } from '../../src/errors.ts';
import { FakeSession, type WfpState } from './helpers/fake-wfp.ts';
import { testConfig } from './helpers/config.ts';
import type { Config } from '../../src/policy/types.ts';

const selectedRule = { index: 0, name: null, domains: [], apps: [{ kind: 'path' as const, value: 'C:\\Apps\\zen.exe' }], cidrs: [], ports: [], network: null, origin: {}, egress: 'proxy' };

function cfg(windivertPath: string | null = 'C:\\WinDivert'): Config {
  const c = testConfig({ rules: [selectedRule] });
  return { ...c, enforce: { ...c.enforce, enabled: true, windivertPath } };
}

function rig(o: { elevated?: boolean; wfp0x6e4?: boolean; reflection?: Reflection | null; config?: Config; hasWinDivert?: boolean } = {}) {
  const state: WfpState = { provider: false, sublayer: false, filters: new Map() };
  const log: string[] = [];
  const sessions: FakeSession[] = [];
  const config = o.config ?? cfg();
  const b = new WindowsRedirectBackend({
    config: () => config,
    selfExe: 'C:\\switchyard\\node.exe',
    hasWinDivert: () => o.hasWinDivert ?? true,
    wfp: {
      isElevated: () => o.elevated ?? true,
      openSession: (dynamic) => {
        log.push(`open ${dynamic ? 'dyn' : 'per'}`);
        if (o.wfp0x6e4) throw new OsCallError('SY_ERR_WIN_WFP_UNSUPPORTED', 'FwpmEngineOpen0', 0x6e4, '0x6E4: the Windows Filtering Platform is not available');
        const s = new FakeSession(state, dynamic, log, () => false);
        sessions.push(s);
        return s;
      },
    },
    ...(o.reflection === null ? {} : { reflection: o.reflection ?? fakeReflection() }),
  });
  const plan = buildPlan({ config, ports: { groups: { proxy: 40001 }, captured: 40002, dns: 5353 } });
  const nothing = () => state.filters.size === 0 && !state.provider && !state.sublayer;
  return { b, state, log, sessions, plan, nothing };
}

function fakeReflection(fail = false): Reflection & { calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    async start() {
      calls.push('start');
      if (fail) throw new OsCallError('SY_ERR_WIN_WINDIVERT', 'WinDivertOpen', 577, 'injected');
    },
    addBindings(batch) {
      calls.push(`bindings ${batch.length}`);
    },
    async stop() {
      calls.push('stop');
    },
  };
}

test('createRedirectBackend on win32 gives the Windows backend; creating it touches nothing', async () => {
  const b = await createRedirectBackend({ platform: 'win32', config: () => cfg() });
  assert.equal(b.os, 'windows');
  assert.match(b.render(buildPlan({ config: cfg(), ports: { groups: {}, captured: null, dns: null } })), /kill-switch: selected apps/);
  await b.close();
});

test('createFlowIdentity: none for an OS without one', async () => {
  assert.equal(await createFlowIdentity('plan9', { groupOfPort: () => undefined }), undefined);
  assert.equal(await createFlowIdentity(null, { groupOfPort: () => undefined }), undefined);
});

test('not elevated: refused before any WFP session is opened', async () => {
  const r = rig({ elevated: false });
  await assert.rejects(r.b.apply(r.plan), (e: OsCallError) => e.code === 'SY_ERR_WIN_NOT_ADMIN');
  assert.deepEqual(r.log, []);
});

test('no WinDivert folder, or one without the files: refused before any WFP session is opened', async () => {
  const a = rig({ config: cfg(null) });
  await assert.rejects(a.b.apply(a.plan), (e: OsCallError) => e.code === 'SY_ERR_WIN_WINDIVERT_PATH' && /windivert_path/.test(e.message));
  const b = rig({ hasWinDivert: false });
  await assert.rejects(b.b.apply(b.plan), (e: OsCallError) => e.code === 'SY_ERR_WIN_WINDIVERT_PATH' && /C:\\WinDivert/.test(e.message));
  assert.deepEqual([...a.log, ...b.log], []);
});

test('WFP not available (0x6E4): a clear refusal, nothing left behind', async () => {
  const r = rig({ wfp0x6e4: true });
  await assert.rejects(r.b.apply(r.plan), (e: OsCallError) => e.code === 'SY_ERR_WIN_WFP_UNSUPPORTED' && /0x6E4/.test(e.message));
  assert.ok(r.nothing());
  assert.equal((await r.b.status()).state, 'absent');
});

test('reflection not wired: refused after a harmless WFP probe, nothing installed', async () => {
  const r = rig({ reflection: null });
  await assert.rejects(r.b.apply(r.plan), (e: Error) => e instanceof RedirectUnavailableError && /nothing was changed/.test(e.message));
  assert.deepEqual(r.log, ['open per', 'per.close'], 'one engine opened and closed, no transaction');
  assert.ok(r.nothing());
});

test('apply installs WFP filters then starts the reflection; skeleton keeps the kill-switch; down removes all', async () => {
  const refl = fakeReflection();
  const r = rig({ reflection: refl });
  const res = await r.b.apply(r.plan);
  assert.match(res.script, /kill-switch: selected apps/);
  assert.deepEqual(refl.calls, ['start']);
  const st = await r.b.status();
  assert.equal(st.state, 'active');
  assert.ok(st.setElements.dynamicFilters! > 0 && st.setElements.persistentFilters! > 0);
  await r.b.addBindings([{ ip: '198.18.0.5', family: 4, name: 'x.example', chain: [], ttl: 60, egresses: ['proxy'] } as never]);
  assert.deepEqual(refl.calls, ['start', 'bindings 1']);

  await r.b.skeleton();
  assert.equal((await r.b.status()).state, 'skeleton');
  const names = [...r.state.filters.values()].map((v) => v.spec.name);
  assert.ok(names.some((n) => n.startsWith('switchyard: kill-switch')), 'the kill-switch stays');
  assert.ok(!names.some((n) => n.startsWith('switchyard: selected apps')), 'the permits went with the dynamic session');
  assert.deepEqual(refl.calls.at(-1), 'stop');

  await r.b.apply(r.plan);
  await r.b.down();
  assert.ok(r.nothing(), 'down removes every filter, the sublayer and the provider');
  assert.equal((await r.b.status()).state, 'absent');
});

test('reflection fails to start on the first apply: the WFP objects are removed again', async () => {
  const r = rig({ reflection: fakeReflection(true) });
  await assert.rejects(r.b.apply(r.plan), (e: OsCallError) => e.code === 'SY_ERR_WIN_WINDIVERT');
  assert.ok(r.nothing());
});

test('placeProcess is a no-op and commandInGroup runs the program as is (Windows has no groups)', async () => {
  const r = rig();
  await r.b.placeProcess(1234, 'exempt');
  assert.deepEqual(r.b.commandInGroup('exempt', ['core.exe', '-c', 'x']), ['core.exe', '-c', 'x']);
  assert.deepEqual(r.log, []);
});

test('listenHosts: the refusals come first (nothing watched or bound), then the reflection answers; exempt PIDs and the NAT lookup go to it', async () => {
  const seen: string[] = [];
  const refl: Reflection = {
    ...fakeReflection(),
    listenHosts: () => (seen.push('hosts'), { host4: '198.18.0.10', host6: null }),
    exempt: (pid) => void seen.push(`exempt ${pid}`),
    lookup: () => (seen.push('lookup'), undefined),
  };
  const denied = rig({ elevated: false, reflection: refl });
  assert.throws(() => denied.b.listenHosts(), (e: OsCallError) => e.code === 'SY_ERR_WIN_NOT_ADMIN');
  assert.deepEqual(seen, [], 'the reflection was not asked');
  const r = rig({ reflection: refl });
  assert.deepEqual(r.b.listenHosts(), { host4: '198.18.0.10', host6: null });
  assert.equal(r.b.natLookup(4, '198.18.0.10', '198.19.7.7', 50001), undefined);
  assert.deepEqual(seen, ['hosts'], 'no lookup while nothing reflects');
  await r.b.apply(r.plan);
  r.b.natLookup(4, '198.18.0.10', '198.19.7.7', 50001);
  await r.b.placeProcess(4242, 'exempt');
  await r.b.placeProcess(4343, 'proxy');
  assert.deepEqual(seen, ['hosts', 'lookup', 'exempt 4242']);
  await r.b.down();
});
