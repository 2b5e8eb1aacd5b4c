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

const scenarios: Record<string, () => Promise<unknown>> = { wfp, reflect, identity };
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
