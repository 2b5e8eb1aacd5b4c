// The real FFI path under Wine: the Windows build of Node runs switchyard's koffi bindings (bundled
// from src/ by esbuild, koffi's win32 binary) against
//  - stub fwpuclnt.dll / WinDivert.dll built here with mingw (tools/windows/stubs), which log every
//    call and replay captured packets: transaction order, abort on an injected error, the reflect loop;
//  - Wine's own DLLs: WFP answers 0x6E4 and the backend refuses with a clear message; the TCP table,
//    process image path and token answer for real.
// Needs wine64 and .tools/win (tools/windows/wine-setup.sh); skips naming what is missing.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { toWindivertAddr } from '../../src/sys/windows/addr.ts';
import { decodeAddress } from '../../src/sys/windows/windivert.ts';
import { WINDIVERT_BITS, WINDIVERT_ADDRESS, WINDIVERT_DATA_SOCKET } from '../../src/sys/windows/types.ts';
import koffi from 'koffi';
import { Scapy, scapyMissing } from './helpers/scapy.ts';
import { ROOT, WINE, WINESERVER, NODE_EXE, KOFFI_WIN, PREFIX, wineToolsMissing } from './helpers/wine-paths.ts';

const MINGW = 'x86_64-w64-mingw32-gcc';

function missing(): string | undefined {
  const wine = wineToolsMissing();
  if (wine) return wine;
  if (spawnSync(MINGW, ['--version']).status !== 0) return `needs ${MINGW}`;
  return scapyMissing();
}
const why = missing();

let dir = '';
let app = '';
let prefix = '';
let scapy: Scapy;

/**
 * A stub DLL built from tools/windows/stubs/<source> with mingw, cached in .tools/win/stubs and rebuilt
 * when the source is newer (a mingw build of a windows.h file takes seconds on a busy machine).
 */
function stub(source: string): string {
  const src = join(ROOT, 'tools/windows/stubs', source);
  const dll = join(ROOT, '.tools/win/stubs', source.replace(/\.c$/, '.dll'));
  if (!existsSync(dll) || statSync(dll).mtimeMs < statSync(src).mtimeMs) {
    mkdirSync(join(ROOT, '.tools/win/stubs'), { recursive: true });
    execFileSync(MINGW, ['-shared', '-O1', '-o', `${dll}.tmp`, src]);
    renameSync(`${dll}.tmp`, dll);
  }
  return dll;
}

/** Linux path → the Z: path Wine maps it to. */
const winPath = (p: string) => `Z:${p.replaceAll('/', '\\')}`;

before(() => {
  if (why) return;
  dir = mkdtempSync(join(tmpdir(), 'sy-wine-'));
  app = join(dir, 'app');
  prefix = PREFIX;
  mkdirSync(join(app, 'node_modules/@koromix'), { recursive: true });
  mkdirSync(join(app, 'windivert'));
  cpSync(join(ROOT, 'node_modules/koffi'), join(app, 'node_modules/koffi'), { recursive: true });
  cpSync(KOFFI_WIN, join(app, 'node_modules/@koromix/koffi-win32-x64'), { recursive: true });
  copyFileSync(NODE_EXE, join(app, 'node.exe'));
  copyFileSync(stub('fwpuclnt_stub.c'), join(app, 'fwpuclnt.dll'));
  copyFileSync(stub('windivert_stub.c'), join(app, 'windivert/WinDivert.dll'));
  writeFileSync(join(app, 'windivert/WinDivert64.sys'), ''); // only its presence is checked
  execFileSync(join(ROOT, 'node_modules/esbuild/bin/esbuild'), [
    join(ROOT, 'tools/windows/wine-driver.ts'),
    '--bundle',
    '--platform=node',
    '--format=esm',
    '--target=node20',
    '--external:koffi',
    `--outfile=${join(app, 'driver.mjs')}`,
    '--log-level=warning',
  ]);
  scapy = new Scapy();
});

let persistentServer = false;
const wineserver = (arg: string) => spawnSync(WINESERVER, [arg], { env: { ...process.env, WINEPREFIX: prefix }, stdio: 'ignore', timeout: 30_000 });

after(() => {
  scapy?.close();
  if (prefix) spawnSync(WINESERVER, ['-k'], { env: { ...process.env, WINEPREFIX: prefix }, stdio: 'ignore', timeout: 30_000 });
  if (dir) rmSync(dir, { recursive: true, force: true });
});

interface Run {
  result: Record<string, unknown>;
  log: string[];
}

/**
 * One scenario in node.exe under Wine; stdout/stderr go to files (pipes fail under Wine). A run that
 * produces nothing within 45 s is retried once: on a loaded machine Wine itself has been seen to
 * stall before the script's first line (the progress file shows how far a run got).
 */
function wine(scenario: string, env: Record<string, string>, name: string, opts: { isolated?: boolean } = {}): Run {
  const attempts: string[] = [];
  if (opts.isolated) {
    // Its own wineserver inside the namespaces: none of ours may be running outside them.
    wineserver('-k');
    persistentServer = false;
  } else if (!persistentServer) {
    // One persistent wineserver for the other scenarios (else each run pays for a server start).
    wineserver('-p');
    persistentServer = true;
  }
  for (let attempt = 1; attempt <= 2; attempt++) {
    const tag = `${name}-${attempt}`;
    const out = join(app, `${tag}.json`);
    const log = join(app, `${tag}.log`);
    const cmd = `cd "${app}" && exec "${WINE}" node.exe driver.mjs ${scenario} ${tag}.json > ${tag}.txt 2>&1`;
    // The namespace gets lo and a veth pair whose end sy0 = 198.18.0.10/24 (no dummy module here) with the default route, so
    // the routing and adapter queries have something to answer with (no packet is ever sent).
    const net = 'ip link set lo up && ip link add sy0 type veth peer name sy1 && ip addr add 198.18.0.10/24 dev sy0 && ip link set sy0 up && ip link set sy1 up && ip route add default dev sy0';
    const argv = opts.isolated ? ['unshare', '--net', '--pid', '--fork', '--mount-proc', 'bash', '-c', `${net} && ${cmd}`] : ['bash', '-c', cmd];
    const r = spawnSync(argv[0]!, argv.slice(1), {
      env: {
        ...process.env,
        WINEPREFIX: prefix,
        WINEDEBUG: '-all',
        NODE_SKIP_PLATFORM_CHECK: '1',
        SY_STUB_LOG: winPath(log),
        ...env,
      },
      timeout: 45_000,
    });
    if (existsSync(out)) {
      return {
        result: JSON.parse(readFileSync(out, 'utf8')) as Record<string, unknown>,
        log: existsSync(log) ? readFileSync(log, 'utf8').split(/\r?\n/).filter(Boolean) : [],
      };
    }
    const read = (f: string) => (existsSync(join(app, f)) ? readFileSync(join(app, f), 'utf8').slice(0, 2000) : '(none)');
    attempts.push(`attempt ${attempt}: exit ${r.status}, signal ${r.signal}; progress: ${read(`${tag}.json.progress`)}; console: ${read(`${tag}.txt`)}`);
  }
  assert.fail(`scenario ${scenario} wrote no result:\n${attempts.join('\n')}`);
}

const callsOf = (log: string[]) => log.map((l) => l.split(' ')[0]!);

test('stub fwpuclnt under Wine: apply runs one persistent and one dynamic transaction, then read-back; down removes all', (t) => {
  if (why) return t.skip(why);
  const { result, log } = wine('wfp', { WINEDLLOVERRIDES: 'fwpuclnt=n' }, 'wfp-ok');
  assert.equal(result['apply'], 'ok', JSON.stringify(result));
  assert.equal(result['down'], 'ok');
  const calls = callsOf(log);
  // Persistent session: open, begin, provider, sublayer, enumerate both layers, filters…, commit.
  assert.deepEqual(calls.slice(0, 4), ['FwpmEngineOpen0', 'FwpmTransactionBegin0', 'FwpmProviderAdd0', 'FwpmSubLayerAdd0']);
  assert.match(log[0]!, /session=1 dynamic=0/);
  const commits = log.flatMap((l, i) => (l.startsWith('FwpmTransactionCommit0') ? [i] : []));
  assert.equal(commits.length, 3, 'persistent apply, dynamic apply, down');
  const firstAdds = log.slice(0, commits[0]).filter((l) => l.startsWith('FwpmFilterAdd0'));
  assert.equal(firstAdds.length, result['persistent']);
  assert.ok(firstAdds.every((l) => / flags=1 /.test(l)), 'persistent filters carry FWPM_FILTER_FLAG_PERSISTENT');
  const dynOpen = log.findIndex((l) => /FwpmEngineOpen0 session=2 dynamic=1/.test(l));
  assert.ok(dynOpen > commits[0]!, 'the dynamic session opens after the persistent commit');
  const dynAdds = log.slice(dynOpen, commits[1]).filter((l) => l.startsWith('FwpmFilterAdd0'));
  assert.equal(dynAdds.length, result['dynamic']);
  assert.ok(dynAdds.every((l) => / flags=0 /.test(l) && / session=2 /.test(l)));
  // Kill-switch (block 0x1001, weight 4) and the permit (0x1002, weight 8) share the sublayer; the
  // permit names the apps and TCP (3971ef2b = IP_PROTOCOL, uint8).
  assert.ok(firstAdds.some((l) => /weight=4 action=0x1001 .*kill-switch: selected apps \(IPv4\)/.test(l)));
  assert.ok(dynAdds.some((l) => /weight=8 action=0x1002 .*d78e1e87\/0\/0xc,d78e1e87\/0\/0xc,3971ef2b\/0\/0x1\] name=switchyard: selected apps, TCP \(IPv4\)/.test(l)));
  // Read-back after the dynamic commit: both layers enumerated with our provider key.
  const readBack = log.slice(commits[1]!).filter((l) => l.startsWith('FwpmFilterCreateEnumHandle0'));
  assert.ok(readBack.length >= 2 && readBack.every((l) => /provider=6c2f9b1e-53a9-4d4b-9f2e-7377697463a1/.test(l)));
  // down: the dynamic session closes first, then one transaction deletes filters, sublayer, provider.
  const downPart = log.slice(log.findIndex((l) => /FwpmEngineClose0 session=2/.test(l)));
  const order = callsOf(downPart).filter((c) => /Delete|Commit|Begin/.test(c));
  assert.equal(order[0], 'FwpmTransactionBegin0');
  assert.deepEqual(order.slice(-3), ['FwpmSubLayerDeleteByKey0', 'FwpmProviderDeleteByKey0', 'FwpmTransactionCommit0']);
  assert.equal(order.filter((c) => c === 'FwpmFilterDeleteByKey0').length, Number(result['persistent']), 'the persistent filters are found by provider and deleted');
});

test('stub fwpuclnt under Wine: an error in the 5th FwpmFilterAdd0 aborts the transaction; no commit, engine closed', (t) => {
  if (why) return t.skip(why);
  const { result, log } = wine('wfp', { WINEDLLOVERRIDES: 'fwpuclnt=n', SY_STUB_FAIL: 'FwpmFilterAdd0#5' }, 'wfp-fail');
  const apply = result['apply'] as { code: string; call: string; message: string };
  assert.equal(apply.code, 'SY_ERR_WIN_WFP');
  assert.equal(apply.call, 'FwpmFilterAdd0');
  assert.match(apply.message, /0x80320009/);
  const calls = callsOf(log);
  const failed = log.findIndex((l) => l.includes('injected failure'));
  assert.ok(failed > 0);
  assert.equal(calls[failed + 1], 'FwpmTransactionAbort0', 'abort right after the failing call');
  assert.ok(!calls.includes('FwpmTransactionCommit0'), 'nothing committed');
  assert.ok(!log.some((l) => /dynamic=1/.test(l)), 'the dynamic session was never opened');
  assert.equal(calls.at(-1), 'FwpmEngineClose0');
  assert.equal(log.filter((l) => /^FwpmFilterAdd0 session=/.test(l)).length, 5, 'four adds went through, the fifth failed');
});

test("Wine's own fwpuclnt: FwpmEngineOpen0 says 0x6E4 and enforcement is refused with a clear message", (t) => {
  if (why) return t.skip(why);
  const { result } = wine('wfp', { WINEDLLOVERRIDES: 'fwpuclnt=b' }, 'wfp-wine');
  const apply = result['apply'] as { code: string; errno: number; message: string };
  assert.equal(apply.code, 'SY_ERR_WIN_WFP_UNSUPPORTED');
  assert.equal(apply.errno, 0x6e4);
  assert.match(apply.message, /0x6E4: the Windows Filtering Platform is not available/);
  assert.deepEqual((result['status'] as { enabled: boolean }).enabled, false);
});

test("Wine's own iphlpapi/kernel32/advapi32: a live TCP flow maps to this PID and node.exe", (t) => {
  if (why) return t.skip(why);
  // Wine's GetExtendedTcpTable finds socket owners by scanning /proc/<pid>/fd of every process it can
  // see; on a busy host that takes from seconds to minutes. In a private PID and network namespace
  // (root only) it sees just its own processes and sockets.
  const isolated = process.getuid?.() === 0 && spawnSync('unshare', ['--net', '--pid', '--fork', '--mount-proc', 'true']).status === 0;
  if (!isolated) t.diagnostic('not root: running without a private namespace (can be slow on a busy host)');
  const { result } = wine('identity', isolated ? { SY_BEST_TARGET: '198.18.0.1' } : {}, 'identity', { isolated });
  assert.equal(result['error'], undefined, JSON.stringify(result['error']));
  assert.equal(result['owner'], result['pid'], 'GetExtendedTcpTable owner of the client socket is us');
  assert.equal(result['exe'], result['execPath'], 'QueryFullProcessImageNameW');
  assert.match(String(result['exe']), /node\.exe$/);
  assert.equal(typeof result['elevated'], 'boolean');
  assert.match(String(result['sid']), /^S-1-5-/);
  // GetAdaptersAddresses walked through its linked lists (IP_ADAPTER_ADDRESSES_LH prefix, unicast
  // entries, SOCKADDR_IN/IN6), and GetBestInterfaceEx answering with an interface index.
  const adapters = result['adapters'] as { ifIndex: number; family: number; address: string }[];
  assert.ok(Array.isArray(adapters) && adapters.length > 0, JSON.stringify(adapters));
  assert.ok(adapters.some((a) => a.family === 4 && a.address === '127.0.0.1'), JSON.stringify(adapters));
  assert.equal(typeof result['best'], 'number');
  if (isolated) {
    // The listener address choice (listen-address.ts) on Wine's real answers: sy0's address.
    assert.ok(adapters.some((a) => a.address === '198.18.0.10' && a.ifIndex === result['best']), JSON.stringify(adapters));
    assert.deepEqual(result['listen'], { 4: { address: '198.18.0.10', ifIndex: result['best'] } });
  }
});

function netAddr(family: 4 | 6): string {
  const b = Buffer.alloc(80);
  let w = 2 ** WINDIVERT_BITS.Outbound.shift + 2 ** WINDIVERT_BITS.TCPChecksum.shift;
  if (family === 6) w += 2 ** WINDIVERT_BITS.IPv6.shift;
  b.writeUInt32LE(w, 8);
  b.writeUInt32LE(9, 16); // IfIdx
  return b.toString('hex');
}

function connectEvent(pid: number, local: string, lport: number, remote: string, rport: number): string {
  const b = Buffer.alloc(80);
  b.writeUInt32LE(3 + 4 * 2 ** 8 + 2 ** WINDIVERT_BITS.Sniffed.shift, 8); // SOCKET layer, CONNECT
  const S = (f: string) => koffi.offsetof(WINDIVERT_ADDRESS, 'u') + koffi.offsetof(WINDIVERT_DATA_SOCKET, f);
  b.writeUInt32LE(pid, S('ProcessId'));
  toWindivertAddr(local).copy(b, S('LocalAddr'));
  toWindivertAddr(remote).copy(b, S('RemoteAddr'));
  b.writeUInt16LE(lport, S('LocalPort'));
  b.writeUInt16LE(rport, S('RemotePort'));
  b.writeUInt8(6, S('Protocol'));
  return b.toString('hex');
}

test('stub WinDivert under Wine: the reflect loop through the real bindings (SYN held, CONNECT, reflect, pass, reply)', async (t) => {
  if (why) return t.skip(why);
  const A = '198.18.0.10';
  const S = '198.19.7.7';
  const syn1 = await scapy.build({ family: 4, src: A, dst: S, sport: 50001, dport: 443, flags: 'S' });
  const syn2 = await scapy.build({ family: 4, src: A, dst: S, sport: 50002, dport: 443, flags: 'S' });
  const synack = await scapy.build({ family: 4, src: A, dst: S, sport: 47001, dport: 50001, flags: 'SA', seq: 9, ack: 1001 });
  const replay = [
    `N ${syn1.toString('hex')} ${netAddr(4)}`, // held: no PID yet
    `S ${connectEvent(4242, A, 50001, S, 443)}`, // selected app → the held SYN is reflected
    `S ${connectEvent(5555, A, 50002, S, 443)}`, // another app
    `N ${syn2.toString('hex')} ${netAddr(4)}`, // its SYN passes unchanged
    `N ${synack.toString('hex')} ${netAddr(4)}`, // the listener's SYN-ACK goes back to the app
  ];
  writeFileSync(join(app, 'replay.txt'), replay.join('\n') + '\n');
  const { result, log } = wine('reflect', { SY_STUB_REPLAY: winPath(join(app, 'replay.txt')), SY_WINDIVERT_DIR: winPath(join(app, 'windivert')), SY_EXPECT_SENDS: '3' }, 'reflect');
  assert.deepEqual(result['errors'], []);
  const opens = log.filter((l) => l.startsWith('WinDivertOpen'));
  assert.deepEqual(
    opens.map((l) => l.replace(/^WinDivertOpen /, '')),
    ['layer=3 priority=0 flags=5 filter=event == CONNECT and tcp', 'layer=0 priority=0 flags=0 filter=outbound and tcp and !loopback'],
    'SOCKET handle (SNIFF|RECV_ONLY) first, then NETWORK',
  );
  const sends = log.filter((l) => l.startsWith('WinDivertSend')).map((l) => {
    const m = /packet=([0-9a-f]+) addr=([0-9a-f]+)/.exec(l)!;
    return { packet: Buffer.from(m[1]!, 'hex'), addr: Buffer.from(m[2]!, 'hex') };
  });
  assert.equal(sends.length, 3, log.join('\n'));
  const [toListener, passed, toApp] = sends as [(typeof sends)[0], (typeof sends)[0], (typeof sends)[0]];
  const s1 = await scapy.check(toListener.packet);
  assert.deepEqual([s1.src, s1.dst, s1.sport, s1.dport, s1.flags, s1.tcp_chksum_ok, s1.ip_chksum_ok], [S, A, 50001, 47001, 'S', true, true]);
  assert.equal(decodeAddress(toListener.addr).outbound, false);
  assert.equal(decodeAddress(toListener.addr).ifIdx, 9);
  assert.deepEqual(passed.packet, syn2);
  assert.equal(decodeAddress(passed.addr).outbound, true);
  const s3 = await scapy.check(toApp.packet);
  assert.deepEqual([s3.src, s3.dst, s3.sport, s3.dport, s3.flags, s3.tcp_chksum_ok, s3.ip_chksum_ok], [S, A, 443, 50001, 'SA', true, true]);
  const nat = result['nat'] as { localPort: number; pid: number; origDst: { port: number } }[];
  assert.deepEqual(nat.map((e) => [e.localPort, e.pid, e.origDst.port]), [[50001, 4242, 443]]);
  assert.ok(log.some((l) => l.startsWith('WinDivertShutdown')) && log.filter((l) => l.startsWith('WinDivertClose')).length === 2, 'both handles closed on stop');
});

test('stub WinDivert under Wine: the production reflection (systemReflection) — listener address from Wine iphlpapi, live policy selects a real node.exe PID, held SYN reflected to the bound listener, NAT lookup', async (t) => {
  if (why) return t.skip(why);
  if (process.getuid?.() !== 0) return t.skip('needs root (a network namespace with a default route for GetBestInterfaceEx)');
  const A = '198.18.0.10';
  const S = '198.19.7.7';
  const syn = await scapy.build({ family: 4, src: A, dst: S, sport: 50001, dport: 443, flags: 'S' });
  // The CONNECT event's PID is filled in by the driver (the child node.exe's Windows PID).
  const pidOffset = (koffi.offsetof(WINDIVERT_ADDRESS, 'u') + koffi.offsetof(WINDIVERT_DATA_SOCKET, 'ProcessId')) * 2;
  writeFileSync(join(app, 'replay-prod.tmpl'), [`N ${syn.toString('hex')} ${netAddr(4)}`, `S ${connectEvent(0, A, 50001, S, 443)}`].join('\n') + '\n');
  const { result, log } = wine(
    'reflection',
    {
      SY_STUB_REPLAY: winPath(join(app, 'replay-prod.txt')),
      SY_REPLAY_TEMPLATE: winPath(join(app, 'replay-prod.tmpl')),
      SY_REPLAY_OUT: winPath(join(app, 'replay-prod.txt')),
      SY_PID_HEX_OFFSET: String(pidOffset),
      SY_WINDIVERT_DIR: winPath(join(app, 'windivert')),
    },
    'reflection',
    { isolated: true },
  );
  t.diagnostic(JSON.stringify({ hosts: result['hosts'], listener: result['listener'], stats: result['stats'], exe: result['exe'] }));
  assert.equal(result['error'], undefined, JSON.stringify(result));
  assert.deepEqual(result['hosts'], { host4: A, host6: null }, 'the default-route interface address, not 127.0.0.1');
  const listener = result['listener'] as { address: string; port: number };
  assert.equal(listener.address, A);
  assert.match(String(result['exe']), /node\.exe$/i);
  const stats = result['stats'] as { reflectedToListener: number; passed: number; blocked: number };
  assert.equal(stats.reflectedToListener, 1, JSON.stringify(result));
  const sends = log.filter((l) => l.startsWith('WinDivertSend')).map((l) => /packet=([0-9a-f]+) addr=([0-9a-f]+)/.exec(l)!);
  assert.equal(sends.length, 1, log.join('\n'));
  const s1 = await scapy.check(Buffer.from(sends[0]![1]!, 'hex'));
  assert.deepEqual([s1.src, s1.dst, s1.sport, s1.dport, s1.flags, s1.tcp_chksum_ok, s1.ip_chksum_ok], [S, A, 50001, listener.port, 'S', true, true]);
  assert.equal(decodeAddress(Buffer.from(sends[0]![2]!, 'hex')).outbound, false);
  assert.deepEqual(result['lookup'], { pid: result['appPid'], group: 'proxy', origDst: { address: S, port: 443, family: 4 }, listenerPort: listener.port });
  assert.ok(log.filter((l) => l.startsWith('WinDivertClose')).length === 2, 'both handles closed on stop');
});
