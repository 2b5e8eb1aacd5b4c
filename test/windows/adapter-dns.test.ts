// The Windows system-resolver path under Wine: node.exe runs the real koffi binding
// (adapterDnsServers → GetAdaptersAddresses without GAA_FLAG_SKIP_DNS_SERVER, walking the
// IP_ADAPTER_DNS_SERVER_ADDRESS_XP lists), the selection, and the forwarder with no upstream set.
//
// Wine builds every adapter's DNS server list from the Unix side's /etc/resolv.conf, so the test
// runs in private mount, network and PID namespaces with its own resolv.conf bind-mounted over
// /etc/resolv.conf: `nameserver 127.0.0.1` (a loopback stub: an unbound that answers win.test with
// 198.18.50.99 and counts its queries) and `nameserver 198.18.0.53` (an unbound on the veth end's
// second address answering 198.18.50.1). The forwarder must use the second only.
//
// What this proves: the struct walk and the call work against a real (Wine's) GetAdaptersAddresses,
// and the forwarder uses what it reads. What it does not: Windows' own per-adapter lists (Wine gives
// every adapter the same resolv.conf servers), DHCP- or RA-provided servers, adapter ordering, and
// NRPT interplay — see docs/windows.md.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeUnboundConf } from '../dns/helpers.ts';
import { ROOT, WINE, WINESERVER, NODE_EXE, KOFFI_WIN, PREFIX, wineToolsMissing } from './helpers/wine-paths.ts';

const has = (cmd: string): boolean => spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;

function missing(): string | undefined {
  const wine = wineToolsMissing();
  if (wine) return wine;
  if (process.getuid?.() !== 0) return 'needs root (private mount/network namespaces for resolv.conf and addresses)';
  for (const c of ['unshare', 'ip', 'unbound', 'mount']) if (!has(c)) return `needs ${c}`;
  return undefined;
}
const why = missing();

let dir = '';
let app = '';
const wineserverKill = () => spawnSync(WINESERVER, ['-k'], { env: { ...process.env, WINEPREFIX: PREFIX }, stdio: 'ignore', timeout: 30_000 });

before(() => {
  if (why) return;
  dir = mkdtempSync(join(tmpdir(), 'sy-wine-dns-'));
  app = join(dir, 'app');
  mkdirSync(join(app, 'node_modules/@koromix'), { recursive: true });
  cpSync(join(ROOT, 'node_modules/koffi'), join(app, 'node_modules/koffi'), { recursive: true });
  cpSync(KOFFI_WIN, join(app, 'node_modules/@koromix/koffi-win32-x64'), { recursive: true });
  copyFileSync(NODE_EXE, join(app, 'node.exe'));
  execFileSync(join(ROOT, 'node_modules/esbuild/bin/esbuild'), [
    join(ROOT, 'tools/windows/wine-dns-driver.ts'),
    '--bundle',
    '--platform=node',
    '--format=esm',
    '--target=node20',
    '--external:koffi',
    // CommonJS dependencies (socks, dns-packet) require Node built-ins: give the ESM bundle a require.
    "--banner:js=import { createRequire as __syCreateRequire } from 'node:module'; const require = __syCreateRequire(import.meta.url);",
    `--outfile=${join(app, 'driver.mjs')}`,
    '--log-level=warning',
  ]);
});

after(() => {
  if (dir) {
    wineserverKill();
    rmSync(dir, { recursive: true, force: true });
  }
});

/** Config of an unbound on `address`:53 answering win.test with `answer` (started by the script below); its log. */
async function unboundConf(name: string, address: string, answer: string): Promise<string> {
  const c = await writeUnboundConf({ dir, name, host: address, port: 53, access: ['0.0.0.0/0 allow'], localData: [`win.test. 300 IN A ${answer}`] });
  return c.log;
}

const queriesIn = (log: string): string[] => (existsSync(log) ? [...readFileSync(log, 'utf8').matchAll(/info: (\S+) (\S+) A IN$/gm)].map((m) => `${m[1]} ${m[2]!.toLowerCase()}`) : []);

test("under Wine: the adapters' DNS servers are read through GetAdaptersAddresses and the forwarder asks them, never the loopback stub", async (t) => {
  if (why) return t.skip(why);
  writeFileSync(join(dir, 'resolv.conf'), 'nameserver 127.0.0.1\nnameserver 198.18.0.53\n');
  const stubLog = await unboundConf('stub', '127.0.0.1', '198.18.50.99');
  const realLog = await unboundConf('real', '198.18.0.53', '198.18.50.1');
  const wait = (log: string) => `for i in $(seq 250); do grep -q "start of service" "${log}" 2>/dev/null && break; sleep 0.02; done`;
  const script = [
    'set -e',
    `mount --bind "${join(dir, 'resolv.conf')}" /etc/resolv.conf`,
    'ip link set lo up',
    'ip link add sy0 type veth peer name sy1',
    'ip addr add 198.18.0.10/24 dev sy0 && ip addr add 198.18.0.53/32 dev sy0',
    'ip link set sy0 up && ip link set sy1 up && ip route add default dev sy0',
    `unbound -d -c "${join(dir, 'stub.conf')}" & unbound -d -c "${join(dir, 'real.conf')}" &`,
    wait(stubLog),
    wait(realLog),
    `cd "${app}" && "${WINE}" node.exe driver.mjs result.json > console.txt 2>&1 || true`,
  ].join('\n');
  // Its own wineserver inside the namespaces: none may be running outside them.
  wineserverKill();
  const r = spawnSync('unshare', ['--mount', '--net', '--pid', '--fork', '--mount-proc', '--propagation', 'private', 'bash', '-c', script], {
    env: { ...process.env, WINEPREFIX: PREFIX, WINEDEBUG: '-all', NODE_SKIP_PLATFORM_CHECK: '1' },
    timeout: 90_000,
  });
  const resultFile = join(app, 'result.json');
  const consoleOut = existsSync(join(app, 'console.txt')) ? readFileSync(join(app, 'console.txt'), 'utf8').slice(0, 2000) : '(none)';
  assert.ok(existsSync(resultFile), `no result: exit ${r.status} signal ${r.signal}\n${r.stderr?.toString().slice(0, 2000)}\nconsole: ${consoleOut}`);
  const res = JSON.parse(readFileSync(resultFile, 'utf8')) as Record<string, any>;
  t.diagnostic(JSON.stringify({ adapters: res.adapters, selected: res.selected, upstreams: res.upstreams, answer: res.answer }));
  assert.equal(res.error, undefined, JSON.stringify(res.error));

  // The struct walk: Wine lists both resolv.conf servers on the adapters that are up.
  const adapters = res.adapters as { name: string; up: boolean; loopback: boolean; servers: string[]; addresses: string[] }[];
  const sy0 = adapters.find((a) => a.addresses.includes('198.18.0.10'));
  assert.ok(sy0, `the veth adapter is listed with its address: ${JSON.stringify(adapters)}`);
  assert.ok(sy0.up && !sy0.loopback);
  assert.ok(sy0.servers.includes('127.0.0.1') && sy0.servers.includes('198.18.0.53'), `DNS servers read through IP_ADAPTER_DNS_SERVER_ADDRESS_XP: ${JSON.stringify(sy0.servers)}`);
  assert.ok(adapters.some((a) => a.loopback && a.addresses.includes('127.0.0.1')), 'IfType marks the loopback adapter');
  assert.deepEqual(res.selected, ['udp://198.18.0.53:53'], 'the loopback stub is dropped');
  assert.deepEqual(res.upstreams, ['udp://198.18.0.53:53'], 'the forwarder built its default pool from the adapters');

  // The query went to the adapter server and never to the loopback stub.
  assert.deepEqual(res.answer, { rcode: 0, a: '198.18.50.1' });
  assert.equal(queriesIn(realLog).filter((q) => q.endsWith('win.test.')).length, 1, `real resolver log: ${JSON.stringify(queriesIn(realLog))}`);
  assert.deepEqual(queriesIn(stubLog), [], 'the loopback stub saw nothing');
});
