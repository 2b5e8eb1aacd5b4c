// The reflection state machine (src/redirect/windows/reflector.ts) fed with golden packets built by
// scapy, its output checked by scapy: SYN pending in both orders and its timeout, the inverse path,
// the NAT lifecycle (FIN, RST, idle), and what is never reflected (own PID, exempt, loopback, own
// addresses). The WINDIVERT_ADDRESS that goes with each packet is the 80-byte layout checked in
// abi.test.ts; the clock is injected.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Reflector, type Outgoing, type Verdict } from '../../src/redirect/windows/reflector.ts';
import type { FlowTuple } from '../../src/redirect/windows/pending.ts';
import { decodeAddress } from '../../src/sys/windows/windivert.ts';
import { WINDIVERT_BITS } from '../../src/sys/windows/types.ts';
import { WindowsFlowIdentity } from '../../src/redirect/windows/identity.ts';
import { NotReflectedError } from '../../src/errors.ts';
import { Scapy, scapyMissing, type BuildSpec } from './helpers/scapy.ts';

const missing = scapyMissing();
let scapy: Scapy;
before(() => {
  if (!missing) scapy = new Scapy();
});
after(() => scapy?.close());

const OWN_PID = 100;
const SELECTED_PID = 200;
const EXEMPT_PID = 300;
const PROXY_PORT = 47001;
const DNS_PORT = 47002;
const FAM = {
  4: { app: '198.18.0.10', server: '198.19.7.7', other: '198.19.8.8' },
  6: { app: '2001:db8::10', server: '2001:db8:1::7', other: '2001:db8:1::8' },
} as const;

/** An outbound NETWORK-layer WINDIVERT_ADDRESS as the driver fills it (IfIdx 7, checksums valid). */
function netAddr(family: 4 | 6): Buffer {
  const b = Buffer.alloc(80);
  b.writeBigInt64LE(123456789n, 0);
  let w = 2 ** WINDIVERT_BITS.Outbound.shift + 2 ** WINDIVERT_BITS.IPChecksum.shift + 2 ** WINDIVERT_BITS.TCPChecksum.shift;
  if (family === 6) w += 2 ** WINDIVERT_BITS.IPv6.shift;
  b.writeUInt32LE(w, 8);
  b.writeUInt32LE(7, 16);
  b.writeUInt32LE(1, 20);
  return b;
}

interface Rig {
  r: Reflector;
  clock: { t: number };
  fallback: Map<string, number>;
  classified: (number | undefined)[];
}

function rig(opts: { unknown?: Verdict } = {}): Rig {
  const clock = { t: 1_000_000 };
  const fallback = new Map<string, number>();
  const classified: (number | undefined)[] = [];
  const classify = (pid: number | undefined, t: FlowTuple): Verdict => {
    classified.push(pid);
    if (pid === SELECTED_PID) return { action: 'reflect', group: 'proxy' };
    if (pid === EXEMPT_PID) return { action: 'pass' };
    if (pid === 777) return { action: 'reflect', group: 'no-such-group' };
    if (pid === undefined) return opts.unknown ?? { action: 'block' };
    return t.remotePort === 853 ? { action: 'reflect', group: 'dns' } : { action: 'pass' };
  };
  const r = new Reflector({
    ownPid: OWN_PID,
    listeners: {
      4: { address: FAM[4].app, ports: new Map([['proxy', PROXY_PORT], ['dns', DNS_PORT]]) },
      6: { address: FAM[6].app, ports: new Map([['proxy', PROXY_PORT], ['dns', DNS_PORT]]) },
    },
    localAddresses: () => new Set([FAM[4].app, FAM[6].app, '198.18.0.11']),
    classify,
    pidFallback: (t) => fallback.get(`${t.localPort}`),
    now: () => clock.t,
    nat: { idleMs: 60_000, lingerMs: 5_000 },
    pending: { synTimeoutMs: 500, connectTtlMs: 10_000 },
  });
  return { r, clock, fallback, classified };
}

function tuple(family: 4 | 6, sport: number, dport = 443, dst: string = FAM[family].server): FlowTuple {
  return { family, localAddress: FAM[family].app, localPort: sport, remoteAddress: dst, remotePort: dport };
}

function spec(family: 4 | 6, sport: number, flags: string, extra: Partial<BuildSpec> = {}): BuildSpec {
  return { family, src: FAM[family].app, dst: FAM[family].server, sport, dport: 443, flags, ...(family === 6 ? { ext: ['hbh', 'dst'] } : {}), ...extra };
}

/** The listener's packet to its peer ("server : app port"). */
function listenerSpec(family: 4 | 6, sport: number, flags: string): BuildSpec {
  return { family, src: FAM[family].app, dst: FAM[family].server, sport: PROXY_PORT, dport: sport, flags, ...(family === 6 ? { ext: ['dst'] } : {}) };
}

async function expectToListener(out: Outgoing[], family: 4 | 6, sport: number, flags: string): Promise<void> {
  assert.equal(out.length, 1, 'one packet out');
  const s = await scapy.check(out[0]!.packet);
  assert.ok(s.tcp_chksum_ok && s.ip_chksum_ok, 'checksums');
  assert.deepEqual([s.src, s.dst, s.sport, s.dport, s.flags], [FAM[family].server, FAM[family].app, sport, PROXY_PORT, flags]);
  const a = decodeAddress(out[0]!.addr);
  assert.equal(a.outbound, false, 'marked inbound');
  assert.equal(a.ifIdx, 7, 'same interface');
  assert.equal(a.tcpChecksum, false, 'no stale checksum-valid flag');
}

async function expectToApp(out: Outgoing[], family: 4 | 6, sport: number, flags: string): Promise<void> {
  assert.equal(out.length, 1, 'one packet out');
  const s = await scapy.check(out[0]!.packet);
  assert.ok(s.tcp_chksum_ok && s.ip_chksum_ok, 'checksums');
  assert.deepEqual([s.src, s.dst, s.sport, s.dport, s.flags], [FAM[family].server, FAM[family].app, 443, sport, flags]);
  assert.equal(decodeAddress(out[0]!.addr).outbound, false);
}

for (const family of [4, 6] as const) {
  test(`IPv${family}: SYN first, CONNECT event second → held, then reflected`, async (t) => {
    if (missing) return t.skip(missing);
    const { r } = rig();
    const syn = await scapy.build(spec(family, 50001, 'S'));
    assert.deepEqual(r.onPacket(syn, netAddr(family)), [], 'held, nothing sent');
    assert.equal(r.pending.heldCount, 1);
    await expectToListener(r.onConnect(tuple(family, 50001), SELECTED_PID), family, 50001, 'S');
    assert.equal(r.pending.heldCount, 0);
    const e = r.nat.get(family, FAM[family].app, 50001);
    assert.ok(e);
    assert.deepEqual([e.origDst.address, e.origDst.port, e.pid, e.group, e.listenerPort], [FAM[family].server, 443, SELECTED_PID, 'proxy', PROXY_PORT]);
  });

  test(`IPv${family}: CONNECT event first, SYN second → reflected at once`, async (t) => {
    if (missing) return t.skip(missing);
    const { r } = rig();
    assert.deepEqual(r.onConnect(tuple(family, 50002), SELECTED_PID), []);
    await expectToListener(r.onPacket(await scapy.build(spec(family, 50002, 'S')), netAddr(family)), family, 50002, 'S');
  });

  test(`IPv${family}: a whole connection through the NAT, then its FIN/FIN lifecycle`, async (t) => {
    if (missing) return t.skip(missing);
    const { r, clock } = rig();
    const sport = 50003;
    r.onConnect(tuple(family, sport), SELECTED_PID);
    await expectToListener(r.onPacket(await scapy.build(spec(family, sport, 'S')), netAddr(family)), family, sport, 'S');
    // Listener answers SYN-ACK → the app sees it from the server.
    await expectToApp(r.onPacket(await scapy.build(listenerSpec(family, sport, 'SA')), netAddr(family)), family, sport, 'SA');
    await expectToListener(r.onPacket(await scapy.build(spec(family, sport, 'A')), netAddr(family)), family, sport, 'A');
    await expectToListener(r.onPacket(await scapy.build(spec(family, sport, 'PA', { payload: '160301' })), netAddr(family)), family, sport, 'PA');
    await expectToApp(r.onPacket(await scapy.build(listenerSpec(family, sport, 'PA')), netAddr(family)), family, sport, 'PA');
    // FIN from the app, FIN from the listener: closing, kept for the linger time, then gone.
    await expectToListener(r.onPacket(await scapy.build(spec(family, sport, 'FA')), netAddr(family)), family, sport, 'FA');
    assert.equal(r.nat.get(family, FAM[family].app, sport)?.state, 'open');
    await expectToApp(r.onPacket(await scapy.build(listenerSpec(family, sport, 'FA')), netAddr(family)), family, sport, 'FA');
    assert.equal(r.nat.get(family, FAM[family].app, sport)?.state, 'closing');
    clock.t += 1_000;
    // The last ACK still goes to the listener during the linger.
    await expectToListener(r.onPacket(await scapy.build(spec(family, sport, 'A')), netAddr(family)), family, sport, 'A');
    r.tick();
    assert.ok(r.nat.get(family, FAM[family].app, sport), 'still lingering');
    clock.t += 5_000;
    r.tick();
    assert.equal(r.nat.get(family, FAM[family].app, sport), undefined, 'removed after the linger');
  });
}

test('RST ends an entry (after the linger); idle entries expire', async (t) => {
  if (missing) return t.skip(missing);
  const { r, clock } = rig();
  r.onConnect(tuple(4, 50010), SELECTED_PID);
  r.onConnect(tuple(4, 50011), SELECTED_PID);
  await expectToListener(r.onPacket(await scapy.build(spec(4, 50010, 'S')), netAddr(4)), 4, 50010, 'S');
  await expectToListener(r.onPacket(await scapy.build(spec(4, 50011, 'S')), netAddr(4)), 4, 50011, 'S');
  await expectToApp(r.onPacket(await scapy.build(listenerSpec(4, 50010, 'R')), netAddr(4)), 4, 50010, 'R');
  assert.equal(r.nat.get(4, FAM[4].app, 50010)?.state, 'closing');
  clock.t += 5_000;
  r.tick();
  assert.equal(r.nat.get(4, FAM[4].app, 50010), undefined, 'RST entry gone');
  assert.ok(r.nat.get(4, FAM[4].app, 50011), 'the other one is idle but not yet expired');
  clock.t += 60_000;
  r.tick();
  assert.equal(r.nat.size, 0, 'idle entry expired');
  // After the entry is gone a stray packet of that flow is no longer ours: it passes unchanged.
  const stray = await scapy.build(spec(4, 50011, 'A'));
  const out = r.onPacket(stray, netAddr(4));
  assert.equal(out.length, 1);
  assert.deepEqual(out[0]!.packet, stray);
});

test('a held SYN times out: blocked when the app cannot be known (selected apps exist)', async (t) => {
  if (missing) return t.skip(missing);
  const { r, clock, classified } = rig();
  const syn = await scapy.build(spec(4, 50020, 'S'));
  assert.deepEqual(r.onPacket(syn, netAddr(4)), []);
  clock.t += 499;
  assert.deepEqual(r.tick(), [], 'not yet');
  clock.t += 1;
  assert.deepEqual(r.tick(), [], 'timed out and blocked: nothing sent');
  assert.deepEqual(classified, [undefined]);
  assert.equal(r.stats.blocked, 1);
  assert.equal(r.stats.timedOut, 1);
  // The CONNECT event arrives late: the retransmitted SYN is reflected with the right PID.
  r.onConnect(tuple(4, 50020), SELECTED_PID);
  await expectToListener(r.onPacket(syn, netAddr(4)), 4, 50020, 'S');
});

test('a held SYN times out: the TCP table names an exempt process → it passes unchanged', async (t) => {
  if (missing) return t.skip(missing);
  const { r, clock, fallback } = rig();
  fallback.set('50021', EXEMPT_PID);
  const syn = await scapy.build(spec(6, 50021, 'S'));
  const addr = netAddr(6);
  r.onPacket(syn, addr);
  clock.t += 500;
  const out = r.tick();
  assert.equal(out.length, 1);
  assert.deepEqual(out[0]!.packet, syn, 'the original packet');
  assert.deepEqual(out[0]!.addr, addr, 'with its original (outbound) address');
  assert.equal(decodeAddress(out[0]!.addr).outbound, true);
});

test('a held SYN times out: the TCP table names the selected app → reflected', async (t) => {
  if (missing) return t.skip(missing);
  const { r, clock, fallback } = rig();
  fallback.set('50022', SELECTED_PID);
  r.onPacket(await scapy.build(spec(4, 50022, 'S')), netAddr(4));
  clock.t += 500;
  await expectToListener(r.tick(), 4, 50022, 'S');
});

test('with no selected apps, an unknown SYN that times out passes', async (t) => {
  if (missing) return t.skip(missing);
  const { r, clock } = rig({ unknown: { action: 'pass' } });
  const syn = await scapy.build(spec(4, 50023, 'S'));
  r.onPacket(syn, netAddr(4));
  clock.t += 500;
  const out = r.tick();
  assert.equal(out.length, 1);
  assert.deepEqual(out[0]!.packet, syn);
});

test('a retransmitted SYN replaces the held copy and keeps the first deadline', async (t) => {
  if (missing) return t.skip(missing);
  const { r, clock } = rig();
  const syn = await scapy.build(spec(4, 50024, 'S'));
  r.onPacket(syn, netAddr(4));
  clock.t += 300;
  r.onPacket(syn, netAddr(4));
  assert.equal(r.pending.heldCount, 1);
  clock.t += 200;
  r.tick();
  assert.equal(r.pending.heldCount, 0, 'deadline counted from the first copy');
});

test('never reflected: own PID, exempt PID, loopback and own-address destinations', async (t) => {
  if (missing) return t.skip(missing);
  const { r, classified } = rig();
  for (const [sport, pid] of [[50030, OWN_PID], [50031, EXEMPT_PID]] as const) {
    r.onConnect(tuple(4, sport), pid);
    const syn = await scapy.build(spec(4, sport, 'S'));
    const out = r.onPacket(syn, netAddr(4));
    assert.equal(out.length, 1);
    assert.deepEqual(out[0]!.packet, syn, `pid ${pid} passes unchanged`);
    assert.equal(decodeAddress(out[0]!.addr).outbound, true);
  }
  assert.deepEqual(classified, [EXEMPT_PID], 'own PID is not even classified');
  for (const dst of ['127.0.0.1', '198.18.0.11']) {
    const syn = await scapy.build(spec(4, 50032, 'S', { dst }));
    const out = r.onPacket(syn, netAddr(4));
    assert.deepEqual(out.map((o) => o.packet), [syn], `${dst} passes without waiting for a PID`);
  }
  const syn6 = await scapy.build(spec(6, 50033, 'S', { dst: '::1' }));
  assert.deepEqual(r.onPacket(syn6, netAddr(6)).map((o) => o.packet), [syn6]);
  assert.equal(r.pending.heldCount, 0);
  assert.equal(r.nat.size, 0);
});

test('the classifier picks the listener by group (DNS-learned port)', async (t) => {
  if (missing) return t.skip(missing);
  const { r } = rig();
  r.onConnect(tuple(4, 50040, 853), 555);
  const out = r.onPacket(await scapy.build(spec(4, 50040, 'S', { dport: 853 })), netAddr(4));
  const s = await scapy.check(out[0]!.packet);
  assert.equal(s.dport, DNS_PORT);
  assert.ok(s.tcp_chksum_ok);
});

test('fail closed: NAT key conflict, unknown group, source not the listener address, garbage', async (t) => {
  if (missing) return t.skip(missing);
  const { r } = rig();
  r.onConnect(tuple(4, 50050), SELECTED_PID);
  await expectToListener(r.onPacket(await scapy.build(spec(4, 50050, 'S')), netAddr(4)), 4, 50050, 'S');
  // Same local port towards another server while the first entry is open.
  r.onConnect(tuple(4, 50050, 443, FAM[4].other), SELECTED_PID);
  assert.deepEqual(r.onPacket(await scapy.build(spec(4, 50050, 'S', { dst: FAM[4].other })), netAddr(4)), []);
  assert.equal(r.stats.dropped['nat-conflict'], 1);
  // The app's source address is not the listener's (another interface): cannot be injected.
  r.onConnect({ ...tuple(4, 50051), localAddress: '198.18.0.99' }, SELECTED_PID);
  assert.deepEqual(r.onPacket(await scapy.build(spec(4, 50051, 'S', { src: '198.18.0.99' })), netAddr(4)), []);
  assert.equal(r.stats.dropped['source-not-listener-address'], 1);
  // A group without a listener.
  r.onConnect(tuple(4, 50052), 777);
  assert.deepEqual(r.onPacket(await scapy.build(spec(4, 50052, 'S')), netAddr(4)), []);
  assert.equal(r.stats.dropped['no-listener'], 1);
  // Unparseable packet.
  assert.deepEqual(r.onPacket(Buffer.from([0x45, 0, 0]), netAddr(4)), []);
  assert.equal(r.stats.dropped['truncated-ip'], 1);
});

test('FlowIdentity: the accepted socket maps to origDst, group and the app process', async (t) => {
  if (missing) return t.skip(missing);
  const { r } = rig();
  r.onConnect(tuple(4, 50060), SELECTED_PID);
  r.onPacket(await scapy.build(spec(4, 50060, 'S')), netAddr(4));
  const asked: string[] = [];
  const id = new WindowsFlowIdentity({
    lookup: (f, la, pa, pp) => r.lookupAccepted(f, la, pa, pp),
    imagePath: (pid) => (pid === SELECTED_PID ? 'C:\\Program Files\\Zen\\zen.exe' : undefined),
    ownPid: OWN_PID,
    tcpOwner: (...a) => {
      asked.push(JSON.stringify(a));
      return undefined;
    },
  });
  // What the listener's accepted socket shows: local = listener, remote = server address : app port.
  const flow = id.identifyEndpoints({ address: `::ffff:${FAM[4].app}`, port: PROXY_PORT }, { address: FAM[4].server, port: 50060 });
  assert.deepEqual(flow.origDst, { address: FAM[4].server, port: 443, family: 4 });
  assert.equal(flow.group, 'proxy');
  assert.deepEqual(await flow.process(), { pid: SELECTED_PID, exe: 'C:\\Program Files\\Zen\\zen.exe', name: 'zen.exe' });
  assert.deepEqual(asked, [], 'PID from the NAT entry, no table lookup');
  // A peer with no entry is refused.
  assert.throws(() => id.identifyEndpoints({ address: FAM[4].app, port: PROXY_PORT }, { address: FAM[4].other, port: 50060 }), NotReflectedError);
  assert.throws(() => id.identifyEndpoints({ address: FAM[4].app, port: PROXY_PORT }, { address: FAM[4].server, port: 59999 }), NotReflectedError);
});

test('FlowIdentity: without a PID in the entry, the TCP table owner is used', async (t) => {
  if (missing) return t.skip(missing);
  const clock = { t: 0 };
  // Reflected on timeout by a captured destination (classifier said reflect without a PID).
  const r2 = new Reflector({
    ownPid: OWN_PID,
    listeners: { 4: { address: FAM[4].app, ports: new Map([['proxy', PROXY_PORT]]) } },
    localAddresses: () => new Set(),
    classify: () => ({ action: 'reflect', group: 'proxy' }),
    now: () => clock.t,
  });
  r2.onPacket(await scapy.build(spec(4, 50061, 'S')), netAddr(4));
  clock.t += 10_000;
  assert.equal(r2.tick().length, 1);
  const id = new WindowsFlowIdentity({
    lookup: (f, la, pa, pp) => r2.lookupAccepted(f, la, pa, pp),
    imagePath: (pid) => (pid === 4242 ? 'C:\\Apps\\a.exe' : undefined),
    ownPid: OWN_PID,
    tcpOwner: (fam, la, lp, remote) => (fam === 4 && la === FAM[4].app && lp === 50061 && remote?.address === FAM[4].server && remote.port === 443 ? 4242 : undefined),
  });
  const flow = id.identifyEndpoints({ address: FAM[4].app, port: PROXY_PORT }, { address: FAM[4].server, port: 50061 });
  assert.deepEqual(await flow.process(), { pid: 4242, exe: 'C:\\Apps\\a.exe', name: 'a.exe' });
});

test('FlowIdentity.processOf: the client is the table row not owned by us, whichever way round', async () => {
  // Rows of one loopback connection: client 127.0.0.1:50100 (pid 4242) ↔ our proxy 127.0.0.1:1080 (us).
  const rows = [
    { la: '127.0.0.1', lp: 50100, ra: '127.0.0.1', rp: 1080, pid: 4242 },
    { la: '127.0.0.1', lp: 1080, ra: '127.0.0.1', rp: 50100, pid: OWN_PID },
  ];
  const id = new WindowsFlowIdentity({
    lookup: () => undefined,
    imagePath: (pid) => (pid === 4242 ? 'C:\\Apps\\curl.exe' : undefined),
    ownPid: OWN_PID,
    tcpOwner: (_f, la, lp, remote) => rows.find((r) => r.la === la && r.lp === lp && r.ra === remote?.address && r.rp === remote.port)?.pid,
  });
  const ours = { address: '127.0.0.1', port: 1080, family: 4 as const };
  const client = { address: '::ffff:127.0.0.1', port: 50100, family: 4 as const };
  const want = { pid: 4242, exe: 'C:\\Apps\\curl.exe', name: 'curl.exe' };
  assert.deepEqual(await id.processOf(ours, client), want);
  assert.deepEqual(await id.processOf(client, ours), want);
  assert.equal(await id.processOf(ours, { ...client, port: 50101 }), undefined);
});
