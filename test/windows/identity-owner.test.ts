// The owner SID of Windows flows (src/redirect/windows/identity.ts): looked up only when the flow's
// process is asked for, recorded on its ProcessInfo, cached per PID for SID_CACHE_MS. Injected lookups
// here; the real token read (advapi32 processUserSid) against the pipe's view of the same process runs
// under Wine in wine-pipe.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SID_CACHE_MS, SidCache, WindowsFlowIdentity } from '../../src/redirect/windows/identity.ts';
import type { NatEntry } from '../../src/redirect/windows/nat.ts';

const ME = 'S-1-5-21-10-20-30-1001';
const YOU = 'S-1-5-21-10-20-30-1002';

function entry(pid: number | undefined, localPort: number): NatEntry {
  return {
    family: 4, localAddress: '192.0.2.10', localPort, origDst: { address: '203.0.113.5', port: 443, family: 4 },
    listenerPort: 4000, pid, group: 'proxy', createdAt: 0, lastSeen: 0, finFromApp: false, finFromListener: false, state: 'open',
  } as NatEntry;
}

test('a flow\'s process carries its owner SID, asked only when the process is; a PID without a readable token has none', async () => {
  const asked: number[] = [];
  const nat = new Map([[50001, entry(200, 50001)], [50002, entry(300, 50002)], [50003, entry(200, 50003)], [50004, entry(undefined, 50004)]]);
  const id = new WindowsFlowIdentity({
    lookup: (_f, _la, _pa, pp) => nat.get(pp),
    imagePath: (pid) => (pid === 200 ? 'C:\\Apps\\zen.exe' : undefined),
    ownPid: 100,
    tcpOwner: () => 400,
    userSid: (pid) => {
      asked.push(pid);
      return pid === 200 ? ME : pid === 400 ? YOU : undefined;
    },
  });
  const f1 = id.identifyEndpoints({ address: '127.0.0.1', port: 4000 }, { address: '203.0.113.5', port: 50001 });
  assert.deepEqual(asked, [], 'identify alone reads no token');
  assert.deepEqual(await f1.process(), { pid: 200, exe: 'C:\\Apps\\zen.exe', name: 'zen.exe', sid: ME });
  const f2 = id.identifyEndpoints({ address: '127.0.0.1', port: 4000 }, { address: '203.0.113.5', port: 50002 });
  assert.deepEqual(await f2.process(), { pid: 300 }, 'protected or gone: no owner (hidden from unprivileged callers)');
  const f3 = id.identifyEndpoints({ address: '127.0.0.1', port: 4000 }, { address: '203.0.113.5', port: 50003 });
  assert.equal((await f3.process())?.sid, ME);
  assert.deepEqual(asked, [200, 300], 'the second flow of PID 200 reuses the cached SID');
  // No PID in the NAT entry: the TCP table's owner, and its SID.
  const f4 = id.identifyEndpoints({ address: '127.0.0.1', port: 4000 }, { address: '203.0.113.5', port: 50004 });
  assert.deepEqual(await f4.process(), { pid: 400, sid: YOU });
  // Proxy inbound (processOf) too.
  assert.equal((await id.processOf({ address: '127.0.0.1', port: 5000, family: 4 }, { address: '127.0.0.1', port: 1080, family: 4 }))?.sid, YOU);
});

test('without a userSid lookup (older wiring) flows simply have no owner SID', async () => {
  const id = new WindowsFlowIdentity({ lookup: () => entry(200, 1), imagePath: () => undefined, ownPid: 1, tcpOwner: () => undefined });
  assert.deepEqual(await id.identifyEndpoints({ address: '127.0.0.1', port: 1 }, { address: '203.0.113.5', port: 1 }).process(), { pid: 200 });
});

test('SidCache: an answer is reused for SID_CACHE_MS, then asked again (a PID can be reused); misses are not cached', () => {
  let now = 1_000_000;
  const asked: number[] = [];
  let answer: string | undefined = ME;
  const c = new SidCache((pid) => (asked.push(pid), answer), () => now);
  assert.equal(c.get(7), ME);
  now += SID_CACHE_MS - 1;
  assert.equal(c.get(7), ME);
  assert.deepEqual(asked, [7]);
  now += 1;
  answer = YOU; // PID 7 is now another user's process
  assert.equal(c.get(7), YOU);
  answer = undefined;
  assert.equal(c.get(8), undefined);
  assert.equal(c.get(8), undefined);
  assert.deepEqual(asked, [7, 7, 8, 8]);
});

test('SidCache stays bounded under many PIDs', () => {
  let n = 0;
  const c = new SidCache(() => (n++, ME), () => 0);
  for (let pid = 0; pid < 10_000; pid++) c.get(pid);
  n = 0;
  c.get(9_999);
  assert.equal(n, 0, 'the newest is kept');
  c.get(0);
  assert.equal(n, 1, 'the oldest was dropped');
});
