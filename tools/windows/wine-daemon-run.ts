// The Linux side of test/windows/wine-daemon.test.ts: runs (normally inside a private PID + network
// namespace the test made — only loopback exists there) the whole daemon under Wine and probes it
// from Linux, then writes everything it saw as JSON to argv[2].
//   1. dnsmasq (the upstream) and an HTTP server on 127.0.0.1 — Linux processes;
//   2. `node.exe bin\switchyard.js up --config ...` (the tsc build in dist/, Windows Node, Wine's DLLs);
//   3. dig and curl --socks5 from Linux against the daemon's loopback ports (Wine's sockets are host
//      sockets);
//   4. a Windows client (wine-client.mjs hold) keeps a SOCKS flow open while `switchyard conns` and
//      `status` — more node.exe processes — ask the daemon over the named pipe; then the checks mode
//      (pipe PID, token, NRPT through the registry) and `switchyard stop` over the pipe;
//   5. `up` again with `[enforce] enabled = true`: it must refuse (WFP 0x6E4) and leave no listener.
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createServer as createHttp } from 'node:http';
import { createServer, connect, type AddressInfo } from 'node:net';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const outFile = process.argv[2]!;
const APP = process.env['SY_APP']!;
const WINE = '/usr/lib/wine/wine64';
const winPath = (p: string) => `Z:${p.replaceAll('/', '\\')}`;
const result: Record<string, unknown> = {};
const t0 = Date.now();
const mark = (k: string) => ((result['timeline'] as Record<string, number>)[k] = Date.now() - t0);
result['timeline'] = {};

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const p = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return p;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(what: string, fn: () => boolean | Promise<boolean>, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await fn()) return;
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${what}`);
}

function listening(port: number): Promise<boolean> {
  return new Promise((r) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => (s.destroy(), r(true)));
    s.once('error', () => r(false));
  });
}

const env = (stateDir: string) => ({
  ...process.env,
  WINEDEBUG: '-all',
  NODE_SKIP_PLATFORM_CHECK: '1',
  SWITCHYARD_STATE_DIR: winPath(stateDir),
  SWITCHYARD_MODE: 'service',
});

/** node.exe under Wine with output to a file (pipes fail under Wine); resolves with its exit code. */
function wine(args: string[], name: string, stateDir: string, timeoutMs = 30_000): Promise<{ code: number | null; out: string }> {
  const txt = join(APP, `${name}.txt`);
  const cmd = `cd "${APP}" && exec "${WINE}" node.exe ${args.map((a) => `'${a}'`).join(' ')} > ${name}.txt 2>&1`;
  const p = spawn('bash', ['-c', cmd], { env: env(stateDir), stdio: 'ignore' });
  return new Promise((resolve) => {
    const timer = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, out: existsSync(txt) ? readFileSync(txt, 'utf8') : '' });
    });
  });
}

function jsonOf(text: string): unknown {
  const i = text.indexOf('{');
  try {
    return JSON.parse(text.slice(i));
  } catch {
    return { unparsed: text.slice(0, 2000) };
  }
}

async function main(): Promise<void> {
  const state = join(APP, 'state');
  mkdirSync(state, { recursive: true });
  const [upPort, dnsPort, mixedPort] = [await freePort(), await freePort(), await freePort()];
  const dnsmasq = spawn('dnsmasq', ['-k', '--no-resolv', '--no-hosts', '--bind-interfaces', '--listen-address=127.0.0.1', `--port=${upPort}`, '--address=/wine.test/198.18.0.77', '--pid-file='], { stdio: 'ignore' });
  // The HTTP server: /small answers at once; /slow sends a first chunk and holds the response open.
  const held: import('node:http').ServerResponse[] = [];
  const http = createHttp((req, res) => {
    if (req.url === '/slow') {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('first-chunk\n');
      held.push(res);
    } else res.end('hello from linux\n');
  });
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
  const httpPort = (http.address() as AddressInfo).port;
  const config = (enforce: boolean) => `version = 1
default = "direct"

[dns]
listen = ["127.0.0.1:${dnsPort}"]
upstreams = ["udp://127.0.0.1:${upPort}"]

[inbound]
mixed = "127.0.0.1:${mixedPort}"

[enforce]
enabled = ${enforce}
windivert_path = '${winPath(join(APP, 'windivert'))}'

[[rule]]
name = "wine-apps"
egress = "direct"
apps = ["node.exe"]
`;
  mkdirSync(join(APP, 'windivert'), { recursive: true });
  writeFileSync(join(APP, 'windivert/WinDivert.dll'), ''); // presence only: WFP refuses first
  writeFileSync(join(APP, 'windivert/WinDivert64.sys'), '');
  writeFileSync(join(APP, 'config.toml'), config(false));
  writeFileSync(join(APP, 'enforce.toml'), config(true));

  let daemon: ChildProcess | undefined;
  // One persistent wineserver for every Wine process of the run: a server that exits between two
  // processes makes the next start fail now and then (seen as an empty output and exit code 1).
  spawnSync('/usr/lib/wine/wineserver', ['-p'], { env: env(state), stdio: 'ignore', timeout: 20_000 });
  try {
    await until('dnsmasq', () => spawnSync('dig', ['+short', '+time=1', '+tries=1', '-p', String(upPort), '@127.0.0.1', 'wine.test']).stdout?.toString().trim() === '198.18.0.77', 10_000);
    mark('peers');
    const up = wine(['bin\\switchyard.js', 'up', '--config', winPath(join(APP, 'config.toml'))], 'up', state, 60_000);
    daemon = undefined;
    void up.then((r) => (result['upExit'] = { code: r.code, tail: r.out.slice(-3000) }));
    await until('the daemon under Wine', async () => (await listening(mixedPort)) && (await listening(dnsPort)), 30_000);
    mark('daemon up');

    const dig = spawnSync('dig', ['+short', '+time=2', '+tries=2', '-p', String(dnsPort), '@127.0.0.1', 'wine.test']);
    result['dig'] = dig.stdout.toString().trim();
    // Not spawnSync: the HTTP server answering curl lives in this process's event loop.
    const curl = await new Promise<{ out: string; err: string }>((res) =>
      execFile('curl', ['-sS', '--max-time', '15', '--socks5', `127.0.0.1:${mixedPort}`, `http://127.0.0.1:${httpPort}/small`], (_e, out, err) => res({ out, err })),
    );
    result['curl'] = curl.out;
    if (curl.err) result['curlErr'] = curl.err.slice(-1500);
    mark('dig+curl');

    const stop = join(APP, 'stop-hold');
    const hold = wine(['client.mjs', 'hold', 'hold.json', String(mixedPort), String(httpPort), winPath(stop)], 'hold', state, 40_000);
    await until('the held flow', () => existsSync(join(APP, 'hold.json')), 20_000);
    result['hold'] = JSON.parse(readFileSync(join(APP, 'hold.json'), 'utf8'));
    mark('flow held');
    const [conns, status] = await Promise.all([
      wine(['bin\\switchyard.js', 'conns', '--format', 'json'], 'conns', state),
      wine(['bin\\switchyard.js', 'status', '--format', 'json'], 'status', state),
    ]);
    result['conns'] = { code: conns.code, json: jsonOf(conns.out) };
    result['status'] = { code: status.code, json: jsonOf(status.out) };
    mark('conns+status');
    writeFileSync(stop, '');
    await hold;
    for (const r of held) r.end();

    const checks = await wine(['client.mjs', 'checks', 'checks.json'], 'checks', state);
    result['checks'] = existsSync(join(APP, 'checks.json')) ? JSON.parse(readFileSync(join(APP, 'checks.json'), 'utf8')) : { code: checks.code, out: checks.out };
    mark('checks');

    const stopped = await wine(['bin\\switchyard.js', 'stop'], 'stop', state);
    result['stop'] = { code: stopped.code, out: stopped.out.slice(-1000) };
    await up;
    result['closedAfterStop'] = !(await listening(mixedPort)) && !(await listening(dnsPort));
    mark('stopped');

    // A fresh state directory: in the first one the store's active revision (enforce off) would run
    // and the changed file would only become a pending revision.
    const enfState = join(APP, 'state-enforce');
    mkdirSync(enfState, { recursive: true });
    const enf = await wine(['bin\\switchyard.js', 'up', '--config', winPath(join(APP, 'enforce.toml'))], 'enforce', enfState, 40_000);
    result['enforce'] = { code: enf.code, out: enf.out.slice(-4000), closed: !(await listening(mixedPort)) && !(await listening(dnsPort)) };
    mark('enforce refused');
  } catch (e) {
    result['error'] = String(e);
  } finally {
    daemon?.kill('SIGKILL');
    dnsmasq.kill();
    spawnSync('/usr/lib/wine/wineserver', ['-k'], { env: env(state), stdio: 'ignore', timeout: 20_000 });
    http.closeAllConnections();
    http.close();
    writeFileSync(outFile, JSON.stringify(result, null, 2));
  }
}

void main().then(() => process.exit(0));
