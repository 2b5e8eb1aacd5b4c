// The daemon's private read methods (src/daemon/read-methods.ts: conns, rdns, explain --flow) for a
// Windows pipe caller, on Linux: flows whose process carries an owner SID (as WindowsFlowIdentity
// records it), a stand-in daemon holding them, the registered handlers run and the server's privacy
// filter applied as ControlServer does (the real daemon over the pipe: wine-daemon.test.ts, privileged only). Own flows shown, others' and unknown owners' hidden,
// privileged sees all.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MethodRegistry, applyPrivacy, ownedBy } from '../../src/control/registry.ts';
import { registerReadMethods } from '../../src/daemon/read-methods.ts';
import type { Caller } from '../../src/control/auth.ts';
import type { CallContext } from '../../src/control/registry.ts';
import type { FlowRecord, StoreName } from '../../src/flow/types.ts';
import type { Daemon } from '../../src/daemon/daemon.ts';

const ME = 'S-1-5-21-10-20-30-1001';
const YOU = 'S-1-5-21-10-20-30-1002';

function flow(id: string, dst: string, sid: string | undefined): FlowRecord {
  return {
    id, inbound: 'transparent', network: 'tcp',
    client: { address: '192.0.2.10', port: 50000, family: 4 },
    dst: { address: dst, port: 443, family: 4 },
    domain: null, domainSource: 'none' as FlowRecord['domainSource'],
    process: { pid: 100, name: 'zen.exe', ...(sid ? { sid } : {}) },
    decision: { egress: 'direct', rule: null, stage: 'default' } as unknown as FlowRecord['decision'],
    egress: 'direct', bytesUp: 0, bytesDown: 0, startedAt: Date.now(),
  };
}

const flows = [flow('mine', '203.0.113.1', ME), flow('yours', '203.0.113.2', YOU), flow('unknown', '203.0.113.3', undefined)];
const name = (n: string): StoreName => ({ name: n, chain: [n], expiresAt: Date.now() + 60_000, upstream: 'u', firstSeen: 0, lastSeen: Date.now(), stale: false });
const names: Record<string, StoreName[]> = { '203.0.113.1': [name('mine.example')], '203.0.113.2': [name('yours.example')], '203.0.113.3': [name('who.example')] };

// Only what the read methods touch.
const daemon = {
  generation: 1,
  owners: new Map(),
  sessions: { listWithProcesses: async () => flows, get: (id: string) => (flows.some((f) => f.id === id) ? { record: flows.find((f) => f.id === id) } : undefined) },
  decisionChanged: () => false,
  deps: {},
  mixedAddress: () => null,
  dns: { store: { lookup: (ip: string) => ({ names: names[ip] ?? [], state: names[ip] ? 'fresh' : 'unknown' }), entries: () => Object.entries(names) } },
} as unknown as Daemon;

const reg = new MethodRegistry();
registerReadMethods(reg, daemon);

function caller(sid: string, privileged: boolean): Caller {
  return { uid: -1, gid: -1, pid: 7, user: sid, sid, groups: [], privileged, mayRead: true, reason: 'test' };
}

/** As ControlServer runs a method: the handler with a context, then the privacy filter. */
async function call(method: string, c: Caller, params: unknown = {}): Promise<any> {
  const spec = reg.get(method)!;
  const ctx = { caller: c, signal: new AbortController().signal, sees: (uid: number | undefined, sid?: string) => c.privileged || ownedBy(c, uid, sid), send: async () => {} } as CallContext;
  return applyPrivacy(spec, await spec.handler(params, ctx), c);
}

test('conns: a non-privileged Windows caller sees its own flows (by SID), not another user\'s or an unknown owner\'s', async () => {
  const r = await call('conns', caller(ME, false));
  assert.deepEqual(r.flows.map((f: { id: string; sid: string }) => [f.id, f.sid]), [['mine', ME]]);
  const other = await call('conns', caller(YOU, false));
  assert.deepEqual(other.flows.map((f: { id: string }) => f.id), ['yours']);
});

test('conns: a privileged Windows caller sees every flow, with its owner SID', async () => {
  const r = await call('conns', caller(YOU, true));
  assert.deepEqual(r.flows.map((f: { id: string; sid: string | null }) => [f.id, f.sid]), [['mine', ME], ['yours', YOU], ['unknown', null]]);
});

test('rdns: names of addresses the caller\'s own flows go to, and only those; privileged: all', async () => {
  const r = await call('rdns', caller(ME, false));
  assert.deepEqual(r.entries.map((e: { ip: string; sid: string }) => [e.ip, e.sid]), [['203.0.113.1', ME]]);
  const one = await call('rdns', caller(ME, false), { ip: '203.0.113.2' });
  assert.deepEqual(one.entries, [], 'another user\'s destination, asked by address');
  const all = await call('rdns', caller(YOU, true));
  assert.equal(all.entries.length, 3);
});

test('conns: a flow whose process was never looked up is matched to its owner SID by the listing\'s own lookup', async () => {
  // The daemon's owner fallback (read-methods ownerOf): processOf by the flow's socket pair, as the
  // Windows identity answers it (pid, exe and the token's SID).
  const asked: string[] = [];
  const bare = (id: string, dst: string): FlowRecord => ({ ...flow(id, dst, undefined), process: undefined } as unknown as FlowRecord);
  const unlooked = [bare('lookedup-mine', '203.0.113.4'), bare('lookedup-yours', '203.0.113.5'), bare('lookedup-none', '203.0.113.6')];
  const sidOf: Record<string, string | undefined> = { '203.0.113.4': ME, '203.0.113.5': YOU, '203.0.113.6': undefined };
  const d = {
    ...(daemon as unknown as Record<string, unknown>),
    owners: new Map(),
    sessions: { listWithProcesses: async () => unlooked, get: () => undefined },
    deps: {
      identity: {
        processOf: async (_local: unknown, remote: { address: string }) => {
          asked.push(remote.address);
          const sid = sidOf[remote.address];
          return sid === undefined ? undefined : { pid: 200, name: 'app.exe', sid };
        },
      },
    },
  } as unknown as Daemon;
  const r2 = new MethodRegistry();
  registerReadMethods(r2, d);
  const spec = r2.get('conns')!;
  const run = async (c: Caller) => {
    const ctx = { caller: c, signal: new AbortController().signal, sees: (uid: number | undefined, sid?: string) => c.privileged || ownedBy(c, uid, sid), send: async () => {} } as CallContext;
    return applyPrivacy(spec, await spec.handler({}, ctx), c) as any;
  };
  const mine = await run(caller(ME, false));
  assert.deepEqual(mine.flows.map((f: { id: string; sid: string }) => [f.id, f.sid]), [['lookedup-mine', ME]]);
  assert.deepEqual(asked.sort(), ['203.0.113.4', '203.0.113.5', '203.0.113.6'], 'each flow looked up once');
  const yours = await run(caller(YOU, false));
  assert.deepEqual(yours.flows.map((f: { id: string }) => f.id), ['lookedup-yours']);
  assert.equal(asked.length, 3, 'owners are cached per flow: the second listing asked nothing');
});
