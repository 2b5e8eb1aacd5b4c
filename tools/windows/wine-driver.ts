// Runs inside the Windows build of Node under Wine (bundled by tools/windows/wine-test.sh with
// esbuild, koffi left external so the win32 koffi.node is used). Each scenario exercises the REAL
// koffi bindings of src/sys/windows against either the test stubs (tools/windows/stubs, which log
// every call) or Wine's own DLLs, and writes its result as JSON to the file named by argv[3]
// (under Wine, Node's stdout must be a file anyway).
import { appendFileSync, writeFileSync } from 'node:fs';
import { createServer, connect, type AddressInfo } from 'node:net';
import { WfpEngine } from '../../src/sys/windows/wfp.ts';
import { isElevated, currentUserSid } from '../../src/sys/windows/advapi32.ts';
import { processImagePath, currentPid } from '../../src/sys/windows/kernel32.ts';
import { bestInterface, tcpOwnerPid, tcpTable, unicastAddresses } from '../../src/sys/windows/iphlpapi.ts';
import { windivertLibrary } from '../../src/sys/windows/windivert.ts';
import { WindowsBackend } from '../../src/redirect/windows/backend.ts';
import { buildWfpPlan } from '../../src/redirect/windows/filter-plan.ts';
import { Reflector } from '../../src/redirect/windows/reflector.ts';
import { Diverter } from '../../src/redirect/windows/diverter.ts';
import { testConfig } from '../../test/windows/helpers/config.ts';
import { chooseListenAddresses } from '../../src/redirect/windows/listen-address.ts';
import { systemReflection } from '../../src/redirect/windows/reflection.ts';
import { compilePolicy } from '../../src/policy/engine/policy.ts';
import { buildPlan } from '../../src/redirect/plan.ts';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';

const [scenario, outFile] = [process.argv[2], process.argv[3]!];

function errInfo(e: unknown) {
  const x = e as { code?: string; message?: string; call?: string; errno?: number };
  return { code: x.code, message: x.message, call: x.call, errno: x.errno };
}

async function wfp(): Promise<unknown> {
  const plan = buildWfpPlan(testConfig(), { seenPaths: ['C:\\Program Files\\Zen\\zen.exe'], selfExe: process.execPath });
  let elevated: boolean | string;
  try {
    elevated = isElevated();
  } catch (e) {
    elevated = String(e);
  }
  // Wine's token answers for real; the backend's elevation check is what it is on Windows, but the
  // scenario is about the WFP calls, so it runs whatever Wine says.
  const backend = new WindowsBackend({ openSession: (dynamic) => WfpEngine.open({ dynamic, name: 'switchyard' }), isElevated: () => true });
  const result: Record<string, unknown> = { elevated, persistent: plan.persistent.length, dynamic: plan.dynamic.length };
  try {
    await backend.apply(plan);
    result['apply'] = 'ok';
    result['status'] = backend.status();
  } catch (e) {
    result['apply'] = errInfo(e);
    result['status'] = backend.status();
    return result;
  }
  try {
    await backend.down(plan.provider.key, plan.sublayer.key);
    result['down'] = 'ok';
  } catch (e) {
    result['down'] = errInfo(e);
  }
  return result;
}

async function reflect(): Promise<unknown> {
  const lib = windivertLibrary(process.env['SY_WINDIVERT_DIR'] ?? null);
  const app = '198.18.0.10';
  const r = new Reflector({
    ownPid: currentPid(),
    listeners: { 4: { address: app, ports: new Map([['proxy', 47001]]) }, 6: { address: '2001:db8::10', ports: new Map([['proxy', 47001]]) } },
    localAddresses: () => new Set([app]),
    classify: (pid) => (pid === 4242 ? { action: 'reflect', group: 'proxy' } : { action: 'pass' }),
    now: () => Date.now(),
  });
  const errors: string[] = [];
  const d = new Diverter(lib, r, { onError: (e) => errors.push(String(e)) });
  d.start();
  const want = Number(process.env['SY_EXPECT_SENDS'] ?? '0');
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline && r.stats.reflectedToListener + r.stats.reflectedToApp + r.stats.passed < want) {
    await new Promise((res) => setTimeout(res, 20));
  }
  d.stop();
  return { stats: r.stats, nat: [...r.nat.entries()].map((e) => ({ ...e })), errors };
}

/** Progress marks to a side file, so a scenario that hangs under Wine shows where. */
function mark(step: string): void {
  appendFileSync(`${outFile}.progress`, `${Date.now()} ${step}\n`);
}

async function identity(): Promise<unknown> {
  mark('start');
  const server = createServer((s) => s.on('error', () => {}));
  await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
  mark('listening');
  const port = (server.address() as AddressInfo).port;
  const client = connect(port, '127.0.0.1');
  await new Promise<void>((res) => client.on('connect', res));
  mark('connected');
  const local = client.localPort!;
  const out: Record<string, unknown> = { pid: process.pid, clientPort: local, serverPort: port };
  try {
    out['owner'] = tcpOwnerPid(4, '127.0.0.1', local, { address: '127.0.0.1', port });
    mark('tcp table');
    out['rows'] = tcpTable(4).filter((r) => r.localPort === local || r.localPort === port);
    out['exe'] = processImagePath(process.pid);
    mark('image path');
    const adapters = unicastAddresses();
    out['adapters'] = adapters;
    // A routing-table query; nothing is sent. The test runs this scenario in a namespace it made,
    // with a veth end on 198.18.0.10/24 holding the default route.
    const best = bestInterface(process.env['SY_BEST_TARGET'] ?? '127.0.0.1');
    out['best'] = best;
    out['listen'] = chooseListenAddresses(adapters, { 4: best });
    mark('adapters');
    out['execPath'] = process.execPath;
  } catch (e) {
    out['error'] = errInfo(e);
  }
  try {
    out['elevated'] = isElevated();
    out['sid'] = currentUserSid();
    mark('token');
  } catch (e) {
    out['tokenError'] = errInfo(e);
  }
  client.destroy();
  server.close();
  return out;
}

/**
 * The production reflection (reflection.ts's systemReflection: Wine's iphlpapi for the listener
 * address and NotifyIpInterfaceChange, kernel32 for image paths, the Diverter over the stub
 * WinDivert.dll) with a live policy selecting `node.exe`: a child node.exe is the selected app (a
 * real Windows PID whose image path Wine knows), its CONNECT event is written into the stub's replay
 * (SY_REPLAY_TEMPLATE, PID at SY_PID_HEX_OFFSET) before the handles open; a real listener is bound on
 * the chosen address and the held SYN must be reflected to it; the NAT lookup answers for it.
 */
async function reflection(): Promise<unknown> {
  const out: Record<string, unknown> = { ownPid: process.pid };
  const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 30000)'], { stdio: 'ignore' });
  await new Promise((res) => setTimeout(res, 300));
  const appPid = child.pid!;
  out['appPid'] = appPid;
  mark('child');
  try {
    const config = testConfig({ rules: [{ index: 0, name: null, domains: [], apps: [{ kind: 'name', value: 'node.exe' }], cidrs: [], ports: [], network: null, origin: {}, egress: 'proxy' }] });
    const cfg = { ...config, enforce: { ...config.enforce, windivertPath: process.env['SY_WINDIVERT_DIR'] ?? null } };
    const policy = compilePolicy(cfg);
    const errors: string[] = [];
    const refl = await systemReflection(() => policy, (m) => errors.push(m));
    const hosts = refl.listenHosts();
    out['hosts'] = hosts;
    mark('listen hosts');
    if (!hosts.host4) return { ...out, error: 'no IPv4 listener address' };
    const server = createServer((s) => s.on('error', () => {}));
    await new Promise<void>((res) => server.listen(0, hosts.host4!, res));
    const port = (server.address() as AddressInfo).port;
    out['listener'] = { address: (server.address() as AddressInfo).address, port };
    const hexOffset = Number(process.env['SY_PID_HEX_OFFSET']);
    const pidHex = Buffer.alloc(4);
    pidHex.writeUInt32LE(appPid);
    const replay = readFileSync(process.env['SY_REPLAY_TEMPLATE']!, 'utf8').replace(/^S ([0-9a-f]+)$/gm, (_m, h: string) => `S ${h.slice(0, hexOffset)}${pidHex.toString('hex')}${h.slice(hexOffset + 8)}`);
    writeFileSync(process.env['SY_REPLAY_OUT']!, replay);
    const plan = buildPlan({ config: cfg, ports: { groups: { proxy: port }, captured: null, dns: null } });
    await refl.start(plan, cfg);
    mark('started');
    const r = refl.reflector!;
    const deadline = Date.now() + 15_000;
    while (Date.now() < deadline && r.stats.reflectedToListener + r.stats.passed + r.stats.blocked < 1) await new Promise((res) => setTimeout(res, 20));
    out['stats'] = r.stats;
    const e = refl.lookup(4, hosts.host4, '198.19.7.7', 50001);
    out['lookup'] = e ? { pid: e.pid, group: e.group, origDst: e.origDst, listenerPort: e.listenerPort } : null;
    out['exe'] = processImagePath(appPid);
    await refl.stop();
    refl.close();
    out['errors'] = errors;
    server.close();
  } catch (e) {
    out['error'] = errInfo(e);
  } finally {
    child.kill();
  }
  return out;
}

const scenarios: Record<string, () => Promise<unknown>> = { wfp, reflect, identity, reflection };
const run = scenarios[scenario ?? ''];
if (!run) {
  writeFileSync(outFile, JSON.stringify({ error: `unknown scenario ${scenario}` }));
  process.exit(2);
}
mark(`scenario ${scenario}`);
run().then(
  (r) => {
    mark('done');
    writeFileSync(outFile, JSON.stringify(r, (_k, v) => (typeof v === 'bigint' ? v.toString() : v), 2));
    process.exit(0);
  },
  (e) => {
    writeFileSync(outFile, JSON.stringify({ crashed: errInfo(e), stack: (e as Error).stack }));
    process.exit(1);
  },
);
