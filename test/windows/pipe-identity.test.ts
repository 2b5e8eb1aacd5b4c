// Control permission classes on Windows (src/control/identity-windows.ts), on Linux with injected
// token facts: the class rules, the pipe's DACL (SDDL) per mode, read_users resolution, and the
// ControlServer's handling of a pipe listener's verdicts (a Caller, or an Error → fail closed). The
// real pipe, impersonation and GetNamedPipeClientProcessId run under Wine in wine-pipe.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { PassThrough } from 'node:stream';
import {
  PIPE_CLIENT_ACCESS,
  SID_ADMINISTRATORS,
  SID_LOCAL_SYSTEM,
  classifyWindowsToken,
  pipeSddl,
  resolveReadUsers,
  type WindowsPolicy,
} from '../../src/control/identity-windows.ts';
import { checkPermission, MethodRegistry } from '../../src/control/registry.ts';
import { ControlServer, type ControlConnection, type PipeListen } from '../../src/control/server.ts';
import { encodeFrame, FrameDecoder, parseBody } from '../../src/control/frame.ts';
import { ControlError } from '../../src/errors.ts';
import type { Caller } from '../../src/control/auth.ts';

const USER = 'S-1-5-21-1111-2222-3333-1001';
const OTHER = 'S-1-5-21-1111-2222-3333-1002';
const GROUP = 'S-1-5-21-1111-2222-3333-2001';
const policy: WindowsPolicy = { mode: 'service', daemonSid: SID_LOCAL_SYSTEM, groupSid: GROUP, readUsers: [] };
const ENABLED = 0x4 | 0x1 | 0x2;
const DENY_ONLY = 0x10;

const reg = new MethodRegistry()
  .register({ name: 'x.change', permission: 'change', summary: 'test', handler: async () => 'changed' })
  .register({ name: 'x.read', permission: 'read', summary: 'test', handler: async (_p, ctx) => ({ pid: ctx.caller.pid, sid: ctx.caller.sid }) })
  // Like conns/rdns: entries owned by Unix uids, by user SIDs (Windows flows), or by nobody known.
  .register({
    name: 'x.flows',
    permission: 'read',
    summary: 'test',
    privacy: { items: 'flows', ownerOf: (f) => (f as { uid?: number }).uid, ownerSidOf: (f) => (f as { sid?: string }).sid },
    handler: async () => ({ flows: [{ id: 1, uid: 1000 }, { id: 2, uid: 0 }, { id: 3 }, { id: 4, sid: USER }, { id: 5, sid: OTHER }, { id: 6, uid: -1 }] }),
  })
  // A private method whose entries name no SID owner (Unix-only owners): a Windows caller sees none.
  .register({
    name: 'x.uidflows',
    permission: 'read',
    summary: 'test',
    privacy: { items: 'flows', ownerOf: (f) => (f as { uid?: number }).uid },
    handler: async () => ({ flows: [{ id: 1, uid: -1 }, { id: 4, sid: USER }] }),
  })
  // Like explain --flow: the handler asks ctx.sees for one entry.
  .register({
    name: 'x.sees',
    permission: 'read',
    summary: 'test',
    handler: async (_p, ctx) => [ctx.sees(undefined, USER), ctx.sees(undefined, OTHER), ctx.sees(-1), ctx.sees(undefined)],
  });
const mayChange = (c: Caller) => {
  try {
    checkPermission(reg.get('x.change')!, c);
    return true;
  } catch (e) {
    assert.equal((e as ControlError).code, 'SY_ERR_CONTROL_PERMISSION');
    return false;
  }
};

test('LocalSystem, an elevated Administrator and an enabled member of the control group may change state', () => {
  const sys = classifyWindowsToken({ sid: SID_LOCAL_SYSTEM, elevated: true, groups: [] }, 4, policy);
  assert.deepEqual([sys.privileged, sys.reason, sys.pid, sys.sid], [true, 'LocalSystem', 4, SID_LOCAL_SYSTEM]);
  const admin = classifyWindowsToken({ sid: USER, elevated: true, groups: [{ sid: SID_ADMINISTRATORS, attributes: ENABLED }] }, 5, policy);
  assert.deepEqual([admin.privileged, admin.reason], [true, 'elevated member of Administrators']);
  const member = classifyWindowsToken({ sid: USER, elevated: false, groups: [{ sid: GROUP, attributes: ENABLED }] }, 6, policy);
  assert.deepEqual([member.privileged, member.reason], [true, 'member of the control group']);
  for (const c of [sys, admin, member]) assert.equal(mayChange(c), true);
});

test('never privileged: a UAC-filtered admin, a deny-only group, a disabled group, another user; no Unix uid to match', () => {
  const cases = [
    { sid: USER, elevated: false, groups: [{ sid: SID_ADMINISTRATORS, attributes: DENY_ONLY }] }, // UAC-filtered token
    { sid: USER, elevated: true, groups: [{ sid: SID_ADMINISTRATORS, attributes: DENY_ONLY }] }, // restricted
    { sid: USER, elevated: false, groups: [{ sid: SID_ADMINISTRATORS, attributes: ENABLED }] }, // not elevated
    { sid: USER, elevated: false, groups: [{ sid: GROUP, attributes: DENY_ONLY | 0x1 }] },
    { sid: USER, elevated: false, groups: [{ sid: GROUP, attributes: 0 }] }, // present, not enabled
    { sid: OTHER, elevated: true, groups: [] }, // elevated but not an admin
  ];
  for (const t of cases) {
    const c = classifyWindowsToken(t, 7, policy);
    assert.equal(c.privileged, false, JSON.stringify(t));
    assert.equal(mayChange(c), false);
    assert.equal(c.mayRead, true, 'read_users empty: whoever the DACL admits may read');
    // uid -1: the privacy filter (`ownerOf(item) === caller.uid`) matches no flow owner.
    assert.deepEqual([c.uid, c.gid], [-1, -1]);
  }
  assert.match(classifyWindowsToken(cases[0]!, 7, policy).reason, /Administrators, but not elevated/);
});

test('the control group only counts when it exists (no groupSid: a group-like SID grants nothing)', () => {
  const noGroup: WindowsPolicy = { ...policy, groupSid: undefined };
  assert.equal(classifyWindowsToken({ sid: USER, elevated: false, groups: [{ sid: GROUP, attributes: ENABLED }] }, 8, noGroup).privileged, false);
});

test('read_users: listed SIDs and * may read, others not; user mode: the daemon user is privileged', () => {
  const ru: WindowsPolicy = { ...policy, readUsers: [OTHER] };
  assert.equal(classifyWindowsToken({ sid: OTHER, elevated: false, groups: [] }, 9, ru).mayRead, true);
  assert.equal(classifyWindowsToken({ sid: USER, elevated: false, groups: [] }, 9, ru).mayRead, false);
  assert.equal(classifyWindowsToken({ sid: USER, elevated: false, groups: [] }, 9, { ...policy, readUsers: ['*'] }).mayRead, true);
  const um: WindowsPolicy = { mode: 'user', daemonSid: USER, readUsers: [] };
  const me = classifyWindowsToken({ sid: USER, elevated: false, groups: [] }, 10, um);
  assert.deepEqual([me.privileged, me.reason], [true, 'the daemon user']);
  assert.equal(classifyWindowsToken({ sid: OTHER, elevated: false, groups: [] }, 10, um).privileged, false);
});

test('resolveReadUsers: SIDs and * kept, names looked up, unknown names reported; nothing resolved never means everyone', () => {
  const lookup = (n: string) => (n === 'alice' ? USER : undefined);
  assert.deepEqual(resolveReadUsers(['*', OTHER, 'alice', 'mallory'], lookup), { sids: ['*', OTHER, USER], unknown: ['mallory'] });
  assert.deepEqual(resolveReadUsers([], lookup), { sids: [], unknown: [] });
  const none = resolveReadUsers(['mallory'], lookup);
  assert.deepEqual(none.unknown, ['mallory']);
  assert.equal(none.sids.length, 1);
  assert.equal(classifyWindowsToken({ sid: USER, elevated: false, groups: [] }, 1, { ...policy, readUsers: none.sids }).mayRead, false);
});

test('pipeSddl: NETWORK denied first; SYSTEM/Administrators full; group and (read_users) Authenticated Users without create-instance', () => {
  assert.equal(pipeSddl({ ...policy, groupSid: undefined }), 'D:P(D;;GA;;;S-1-5-2)(A;;GA;;;S-1-5-18)(A;;GA;;;S-1-5-32-544)');
  assert.equal(pipeSddl(policy), `D:P(D;;GA;;;S-1-5-2)(A;;GA;;;S-1-5-18)(A;;GA;;;S-1-5-32-544)(A;;0x12018b;;;${GROUP})`);
  assert.equal(
    pipeSddl({ ...policy, readUsers: [OTHER] }),
    `D:P(D;;GA;;;S-1-5-2)(A;;GA;;;S-1-5-18)(A;;GA;;;S-1-5-32-544)(A;;0x12018b;;;${GROUP})(A;;0x12018b;;;S-1-5-11)`,
  );
  // User mode: the owner only (read_users ignored, like the Unix socket's 0600).
  assert.equal(pipeSddl({ mode: 'user', daemonSid: USER, readUsers: ['*'] }), `D:P(D;;GA;;;S-1-5-2)(A;;GA;;;S-1-5-18)(A;;GA;;;S-1-5-32-544)(A;;GA;;;${USER})`);
  // The client mask: read, write data, write attributes; never FILE_APPEND_DATA (= FILE_CREATE_PIPE_INSTANCE, 0x4),
  // WRITE_DAC (0x40000) or WRITE_OWNER (0x80000).
  assert.equal(PIPE_CLIENT_ACCESS & 0x4, 0);
  assert.equal(PIPE_CLIENT_ACCESS & 0xc0000, 0);
  assert.equal(PIPE_CLIENT_ACCESS & 0x3, 0x3);
  // A malformed SID cannot smuggle ACEs into the descriptor.
  assert.throws(() => pipeSddl({ ...policy, groupSid: 'S-1-5-1)(A;;GA;;;WD' }), (e: Error & { code?: string }) => e.code === 'SY_ERR_CONTROL_ENDPOINT');
});

/** A connection object the server can serve: a PassThrough pair standing in for a pipe instance. */
function fakeConn(): { conn: ControlConnection; toServer: PassThrough; replies: () => Promise<unknown[]>; closed: Promise<void> } {
  const toServer = new PassThrough();
  const fromServer: Buffer[] = [];
  let destroyed = false;
  let closeCb: (() => void)[] = [];
  const closed = new Promise<void>((r) => closeCb.push(r));
  const conn: ControlConnection = {
    get destroyed() {
      return destroyed;
    },
    on(event: string, listener: (x: never) => void) {
      if (event === 'data') toServer.on('data', listener as (b: Buffer) => void);
      return conn;
    },
    once(event: string, listener: () => void) {
      if (event === 'close') closeCb.push(listener);
      return conn;
    },
    write(b: Buffer) {
      fromServer.push(b);
      return true;
    },
    end(b: Buffer) {
      fromServer.push(b);
      conn.destroy();
    },
    destroy() {
      if (destroyed) return;
      destroyed = true;
      const cbs = closeCb;
      closeCb = [];
      for (const c of cbs) c();
    },
    setTimeout() {},
  } as ControlConnection;
  return {
    conn,
    toServer,
    closed,
    async replies() {
      await new Promise((r) => setImmediate(r));
      const d = new FrameDecoder();
      return d.push(Buffer.concat(fromServer)).map((b) => parseBody(b));
    },
  };
}

test('ControlServer with a pipe listener: the listener\'s Caller decides; an identity Error is refused and closed (fail closed)', async () => {
  let accept: Parameters<PipeListen>[1] | undefined;
  const listenPipe: PipeListen = async (_ep, a) => {
    accept = a;
    return { close() {} };
  };
  const server = new ControlServer({ endpoint: '\\\\.\\pipe\\switchyard-test', mode: 'service', registry: reg, listenPipe });
  await server.listen();
  // An unprivileged reader: read ok, change refused, pid/sid from the listener.
  const plain = fakeConn();
  accept!(plain.conn, classifyWindowsToken({ sid: USER, elevated: false, groups: [] }, 4242, policy));
  plain.toServer.write(Buffer.concat([encodeFrame({ v: 1, id: 1, method: 'x.read', params: null }), encodeFrame({ v: 1, id: 2, method: 'x.change', params: null })]));
  await new Promise((r) => setTimeout(r, 20));
  const got = (await plain.replies()) as any[];
  assert.deepEqual(got[0], { v: 1, id: 1, ok: true, result: { pid: 4242, sid: USER } });
  assert.equal(got[1].error.code, 'SY_ERR_CONTROL_PERMISSION');
  // conns/rdns-like methods: a non-privileged Windows caller sees the entries its own user SID owns
  // (matched by SID: it has no Unix uid, -1), not another user's, not one of unknown owner, not one
  // owned by uid -1; a privileged one sees every entry.
  plain.toServer.write(Buffer.concat([
    encodeFrame({ v: 1, id: 3, method: 'x.flows', params: null }),
    encodeFrame({ v: 1, id: 4, method: 'x.uidflows', params: null }),
    encodeFrame({ v: 1, id: 5, method: 'x.sees', params: null }),
  ]));
  const admin = fakeConn();
  accept!(admin.conn, classifyWindowsToken({ sid: 'S-1-5-21-1-2-3-500', elevated: true, groups: [{ sid: SID_ADMINISTRATORS, attributes: 7 }] }, 77, policy));
  admin.toServer.write(encodeFrame({ v: 1, id: 1, method: 'x.flows', params: null }));
  await new Promise((r) => setTimeout(r, 20));
  const own = (await plain.replies()) as any[];
  assert.deepEqual(own[2], { v: 1, id: 3, ok: true, result: { flows: [{ id: 4, sid: USER }] } });
  assert.deepEqual(own[3], { v: 1, id: 4, ok: true, result: { flows: [] } });
  assert.deepEqual(own[4], { v: 1, id: 5, ok: true, result: [true, false, false, false] });
  assert.deepEqual(((await admin.replies()) as any[])[0].result.flows.map((f: { id: number }) => f.id), [1, 2, 3, 4, 5, 6]);
  admin.conn.destroy();
  // Identity could not be read: refused with SY_ERR_CONTROL_IDENTITY and closed, the request never run.
  const anon = fakeConn();
  accept!(anon.conn, new ControlError('SY_ERR_CONTROL_IDENTITY', 'cannot identify the caller (pid 7): OpenThreadToken failed'));
  anon.toServer.write(encodeFrame({ v: 1, id: 1, method: 'x.change', params: null }));
  await anon.closed;
  const refused = (await anon.replies()) as any[];
  assert.equal(refused.length, 1);
  assert.equal(refused[0].error.code, 'SY_ERR_CONTROL_IDENTITY');
  // Any other error from the listener is also an identity refusal, never a pass.
  const odd = fakeConn();
  accept!(odd.conn, new Error('something else'));
  await odd.closed;
  assert.equal(((await odd.replies()) as any[])[0].error.code, 'SY_ERR_CONTROL_IDENTITY');
  plain.conn.destroy();
  await server.close();
});

test('a pipe endpoint without a pipe listener is refused (node:net would serve it without identities)', async () => {
  const server = new ControlServer({ endpoint: '\\\\.\\pipe\\switchyard-test', mode: 'service', registry: reg, identify: () => ({ uid: 0, gid: 0, pid: 1 }) });
  await assert.rejects(server.listen(), (e: Error & { code?: string }) => e.code === 'SY_ERR_CONTROL_ENDPOINT');
  void once;
});

test('off Windows the pipe worker starts, reports kernel32 unavailable, and ends: listen and open reject, nothing is left running', async () => {
  const { PipeServer, openPipe } = await import('../../src/sys/windows/pipe-host.ts');
  const server = new PipeServer({ name: '\\\\.\\pipe\\switchyard-linux', sddl: 'D:P', onConnection: () => assert.fail('no connection expected') });
  await assert.rejects(server.listen(), (e: Error & { code?: string }) => e.code === 'SY_ERR_WIN_CALL' && /kernel32\.dll/.test(e.message));
  await server.close();
  await assert.rejects(openPipe('\\\\.\\pipe\\switchyard-linux'), (e: Error & { code?: string }) => e.code === 'SY_ERR_WIN_CALL' && /kernel32\.dll/.test(e.message));
});
