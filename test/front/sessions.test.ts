// The session table's lazy process listing: flows whose decision did not need the process get it
// filled in by a listing, each looked up once, at most `maxLookups` per call.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SessionTable } from '../../src/front/sessions.ts';
import type { FlowRecord } from '../../src/flow/types.ts';

function record(id: string): FlowRecord {
  return {
    id,
    inbound: 'socks5',
    network: 'tcp',
    client: { address: '127.0.0.1', port: 1000, family: 4 },
    dst: { address: '127.0.0.1', port: 80, family: 4 },
    domain: null,
    domainSource: 'none',
    process: null,
    decision: { egress: 'direct', stage: 'default', rule: null, matched: [] },
    egress: 'direct',
    bytesUp: 0,
    bytesDown: 0,
    startedAt: Date.now(),
  };
}

test('listWithProcesses looks each flow up once, at most maxLookups per listing', async () => {
  const t = new SessionTable({ maxSessions: 100 });
  let calls = 0;
  for (let i = 0; i < 5; i++) {
    const h = t.open(() => {})!;
    h.record = record(h.id);
    h.lookupProcess = async () => {
      calls++;
      return { pid: 100 + i, name: `app${i}`, exe: `/bin/app${i}`, uid: 1000 };
    };
  }
  // A flow still in its handshake (no record) is neither listed nor looked up.
  t.open(() => {});
  const first = await t.listWithProcesses(3);
  assert.equal(calls, 3, 'bounded to 3 lookups');
  assert.equal(first.length, 5);
  assert.equal(first.filter((f) => f.process !== null).length, 3);
  const second = await t.listWithProcesses(3);
  assert.equal(calls, 5, 'the remaining two, and no repeats');
  assert.deepEqual(second.map((f) => f.process?.name).sort(), ['app0', 'app1', 'app2', 'app3', 'app4']);
  await t.listWithProcesses(3);
  assert.equal(calls, 5, 'a filled process is kept, not looked up again');
});

test('a failed lookup leaves the process empty and is not retried', async () => {
  const t = new SessionTable({ maxSessions: 10 });
  let calls = 0;
  const h = t.open(() => {})!;
  h.record = record(h.id);
  h.lookupProcess = async () => {
    calls++;
    throw new Error('socket gone');
  };
  assert.equal((await t.listWithProcesses())[0]!.process, null);
  await t.listWithProcesses();
  assert.equal(calls, 1);
});
