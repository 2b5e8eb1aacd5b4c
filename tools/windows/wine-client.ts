// The Windows-side helper of test/windows/wine-daemon.test.ts, run by node.exe under Wine (bundled
// with esbuild, koffi external). Two modes, each writing JSON to the file named by argv[3]:
//   hold <out> <mixedPort> <httpPort> <stopFile>  opens a SOCKS5 flow through the daemon's mixed inbound to
//        an HTTP server on Linux, writes {ready} once the first bytes came back, and keeps the flow
//        open until <stopFile> exists (so `switchyard conns` sees a live flow of THIS process);
//   checks <out>  the named-pipe identity pieces (a pipe instance we create, a Node client, the client's
//        PID from GetNamedPipeClientProcessId, the token facts of a PID and their permission class)
//        and `dns system on/off` through the real registry (advapi32) and DnsFlushResolverCache.
import { existsSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { mkdtempSync } from 'node:fs';
import { connectPipe, createPipeInstance, closeHandle, pipeClientPid } from '../../src/sys/windows/kernel32.ts';
import { currentTokenFacts, processTokenFacts, regReadKey } from '../../src/sys/windows/advapi32.ts';
import { classifyWindowsToken } from '../../src/control/identity-windows.ts';
import { nrptSystemDns } from '../../src/redirect/windows/system-dns.ts';
import { NRPT_LOCAL } from '../../src/redirect/windows/nrpt.ts';
import { NRPT_RULE_GUID } from '../../src/ids.ts';

const [mode, outFile] = [process.argv[2], process.argv[3]!];
const write = (v: unknown) => writeFileSync(outFile, JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? x.toString() : Buffer.isBuffer(x) ? x.toString('hex') : x), 2));
const err = (e: unknown) => ({ code: (e as { code?: string }).code, message: (e as Error).message });

async function hold(mixedPort: number, httpPort: number, stopFile: string): Promise<void> {
  const s = connect(mixedPort, '127.0.0.1');
  s.on('error', (e) => write({ error: err(e) }));
  await new Promise<void>((r) => s.once('connect', () => r()));
  // RFC 1928: greeting (no auth), then CONNECT to 127.0.0.1:httpPort.
  s.write(Buffer.from([5, 1, 0]));
  const req = Buffer.from([5, 1, 0, 1, 127, 0, 0, 1, httpPort >> 8, httpPort & 0xff]);
  let stage = 0;
  let got = Buffer.alloc(0);
  s.on('data', (d: Buffer) => {
    got = Buffer.concat([got, d]);
    if (stage === 0 && got.length >= 2) {
      got = got.subarray(2);
      stage = 1;
      s.write(req);
    }
    if (stage === 1 && got.length >= 10) {
      const rep = got[1];
      got = got.subarray(10);
      stage = 2;
      if (rep !== 0) write({ error: { message: `SOCKS reply ${rep}` } });
      else s.write(`GET /slow HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
    }
    if (stage === 2 && got.includes('first-chunk')) {
      stage = 3;
      write({ ready: true, pid: process.pid, localPort: s.localPort, execPath: process.execPath });
    }
  });
  while (!existsSync(stopFile)) await new Promise((r) => setTimeout(r, 100));
  s.destroy();
}

async function checks(): Promise<unknown> {
  const out: Record<string, unknown> = { pid: process.pid };
  // Pipe identity: a server instance we own, a Node client in this same process.
  const name = `\\\\.\\pipe\\switchyard-wine-test-${process.pid}`;
  try {
    const h = createPipeInstance(name);
    const c = connect(name);
    await new Promise<void>((r, j) => {
      c.once('connect', () => r());
      c.once('error', j);
    });
    connectPipe(h);
    out['pipeClientPid'] = pipeClientPid(h);
    c.destroy();
    closeHandle(h);
  } catch (e) {
    out['pipeError'] = err(e);
  }
  try {
    const own = currentTokenFacts();
    const viaPid = processTokenFacts(process.pid);
    out['token'] = own;
    out['tokenViaPidSame'] = JSON.stringify(own) === JSON.stringify(viaPid);
    out['class'] = classifyWindowsToken(viaPid!, process.pid, { mode: 'service', daemonSid: 'S-1-5-18', readUsers: [] });
  } catch (e) {
    out['tokenError'] = err(e);
  }
  // dns system on/off against Wine's registry.
  try {
    const key = `${NRPT_LOCAL}\\${NRPT_RULE_GUID}`;
    const snap = () => JSON.stringify(regReadKey(key));
    const parentBefore = JSON.stringify(regReadKey(NRPT_LOCAL));
    const before = snap();
    const sys = nrptSystemDns(mkdtempSync(join(tmpdir(), 'sy-nrpt-')));
    const on = sys.on('127.0.0.1');
    const during = regReadKey(key);
    const off = sys.off();
    out['nrpt'] = { on, during, off, restored: snap() === before && JSON.stringify(regReadKey(NRPT_LOCAL)) === parentBefore, before };
  } catch (e) {
    out['nrptError'] = err(e);
  }
  return out;
}

if (mode === 'hold') {
  hold(Number(process.argv[4]), Number(process.argv[5]), process.argv[6]!).then(
    () => process.exit(0),
    (e) => {
      write({ error: err(e) });
      process.exit(1);
    },
  );
} else {
  checks().then(
    (r) => {
      write(r);
      process.exit(0);
    },
    (e) => {
      write({ crashed: err(e) });
      process.exit(1);
    },
  );
}
