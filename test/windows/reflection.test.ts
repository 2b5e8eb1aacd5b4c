// WinDivertReflection (src/redirect/windows/reflection.ts) on its own, with a stub loop and fake
// interfaces: the classifier follows a policy swap (reload), a captured address ends with its hold
// time, a verdict for a group without its own listener goes to the captured listener, a loop that
// cannot open leaves nothing started, and stop empties the NAT lookup. Packets built by scapy.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { WinDivertReflection, CAPTURED_GROUP } from '../../src/redirect/windows/reflection.ts';
import type { Reflector } from '../../src/redirect/windows/reflector.ts';
import { compilePolicy } from '../../src/policy/engine/policy.ts';
import { buildPlan } from '../../src/redirect/plan.ts';
import type { Policy } from '../../src/policy/types.ts';
import { WINDIVERT_BITS } from '../../src/sys/windows/types.ts';
import { OsCallError } from '../../src/errors.ts';
import { testConfig } from './helpers/config.ts';
import { Scapy, scapyMissing } from './helpers/scapy.ts';

const missing = scapyMissing();
let scapy: Scapy;
before(() => {
  if (!missing) scapy = new Scapy();
});
after(() => scapy?.close());

const A = '198.18.0.10';
const S = '198.19.7.7';
const ZEN = 10;
const CURL = 11;

function netAddr(): Buffer {
  const b = Buffer.alloc(80);
  b.writeUInt32LE(2 ** WINDIVERT_BITS.Outbound.shift, 8);
  b.writeUInt32LE(7, 16);
  return b;
}

function rig(o: { mode?: 'selected' | 'all'; failOpen?: boolean } = {}) {
  const clock = { t: 1_000_000 };
  const config = testConfig({ mode: o.mode ?? 'selected' });
  let policy: Policy = compilePolicy(config);
  let reflector: Reflector | null = null;
  const refl = new WinDivertReflection({
    policy: () => policy,
    ownPid: 1,
    imagePath: (pid) => ({ [ZEN]: 'C:\\Apps\\zen.exe', [CURL]: 'C:\\Tools\\curl.exe' })[pid],
    tcpOwner: () => undefined,
    interfaces: { adapters: () => [{ ifIndex: 7, name: 'eth', family: 4, address: A, up: true }], bestInterface: (f) => (f === 4 ? 7 : undefined), watch: () => () => {} },
    openLoop: (r) => ({
      start: () => {
        if (o.failOpen) throw new OsCallError('SY_ERR_WIN_WINDIVERT', 'WinDivertOpen', 5, 'injected');
        reflector = r;
      },
      stop: () => {},
    }),
    now: () => clock.t,
  });
  const plan = buildPlan({ config, ports: { groups: { proxy: 47001 }, captured: 47009, dns: null } });
  const swap = (p: Policy) => (policy = p);
  /** Destination port the reflected SYN went to, or 'pass' / 'none'. */
  const syn = async (pid: number, sport: number, dst = S, dport = 443): Promise<number | 'pass' | 'none'> => {
    reflector!.onConnect({ family: 4, localAddress: A, localPort: sport, remoteAddress: dst, remotePort: dport }, pid);
    const out = reflector!.onPacket(await scapy.build({ family: 4, src: A, dst, sport, dport, flags: 'S' }), netAddr());
    if (out.length === 0) return 'none';
    const c = await scapy.check(out[0]!.packet);
    return c.dst === A && c.src === dst ? c.dport : 'pass';
  };
  return { refl, plan, config, clock, swap, syn, get reflector() {
    return reflector;
  } };
}

test('the classifier follows the live policy: a reload that drops the app rule stops the reflection', async (t) => {
  if (missing) return t.skip(missing);
  const r = rig();
  await r.refl.start(r.plan, r.config);
  assert.equal(await r.syn(ZEN, 50001), 47001, 'zen.exe → proxy listener');
  r.swap(compilePolicy({ ...r.config, rules: r.config.rules.filter((x) => !x.apps.some((a) => a.value === 'zen.exe')).map((x, index) => ({ ...x, index })) }));
  assert.equal(await r.syn(ZEN, 50002), 'pass', 'after the swap zen.exe is not selected');
  await r.refl.stop();
});

test('a captured address is reflected until its hold time ends; direct-only names capture nothing', async (t) => {
  if (missing) return t.skip(missing);
  const r = rig();
  await r.refl.start(r.plan, r.config);
  r.refl.addBindings([
    { ip: '198.19.7.8', family: 4, name: 'www.youtube.com', egresses: ['proxy'], ttlSeconds: 30, holdSeconds: 60 },
    { ip: '198.19.7.9', family: 4, name: 'd.example', egresses: ['direct'], ttlSeconds: 30, holdSeconds: 60 },
  ]);
  assert.equal(await r.syn(CURL, 50010, '198.19.7.8'), 47009, 'captured listener');
  assert.equal(await r.syn(CURL, 50011, '198.19.7.9'), 'pass');
  r.clock.t += 61_000;
  assert.equal(await r.syn(CURL, 50012, '198.19.7.8'), 'pass', 'hold time over');
  assert.equal(r.refl.lookup(4, A, '198.19.7.8', 50010)?.group, CAPTURED_GROUP);
  await r.refl.stop();
  assert.equal(r.refl.lookup(4, A, '198.19.7.8', 50010), undefined, 'no NAT table after stop');
});

test('mode "all": a verdict for a group without its own listener (direct) goes to the captured listener', async (t) => {
  if (missing) return t.skip(missing);
  const r = rig({ mode: 'all' });
  await r.refl.start(r.plan, r.config);
  assert.equal(await r.syn(CURL, 50020), 47009);
  assert.equal(await r.syn(ZEN, 50021), 47001);
  await r.refl.stop();
});

test('a loop that cannot open leaves nothing started (a later start tries again)', async () => {
  const r = rig({ failOpen: true });
  await assert.rejects(r.refl.start(r.plan, r.config), (e: OsCallError) => e.code === 'SY_ERR_WIN_WINDIVERT');
  assert.equal(r.refl.reflector, null);
  await assert.rejects(r.refl.start(r.plan, r.config), (e: OsCallError) => e.code === 'SY_ERR_WIN_WINDIVERT', 'not mistaken for running');
});
