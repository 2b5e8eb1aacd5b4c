// The Windows-side driver of test/windows/wine-pipe.test.ts, run by node.exe under Wine (bundled with
// esbuild, koffi external). It serves the control pipe exactly as the daemon does (ControlServer +
// windowsPipeListener: our own instances served by one worker thread with synchronous calls in
// PIPE_NOWAIT mode, the client's token by impersonation) and writes what it saw as JSON.
//   main <outFile>                    every check below; spawns child node.exe clients;
//   client <endpoint> <outFile> M...  calls methods M through ControlClient, writes {pid, out}.
import { spawn } from 'node:child_process';
import { appendFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { ControlClient } from '../../src/control/client.ts';
import { ControlServer } from '../../src/control/server.ts';
import { MethodRegistry } from '../../src/control/registry.ts';
import { windowsPipeListener, type WindowsPipeState } from '../../src/control/identity-windows.ts';
import { openPipe, PipeServer, type PipeStream } from '../../src/sys/windows/pipe-host.ts';
import { closeHandle, createPipeInstance } from '../../src/sys/windows/kernel32.ts';
import { currentTokenFacts, processTokenFacts, processUserSid, type TokenFacts } from '../../src/sys/windows/advapi32.ts';
import { isSwitchyardError } from '../../src/errors.ts';
import { encodeFrame, FrameDecoder, parseBody } from '../../src/control/frame.ts';
import type { Logger } from '../../src/log.ts';

const [mode, ...args] = process.argv.slice(2);
const write = (file: string, v: unknown) => writeFileSync(file, JSON.stringify(v, null, 1));
const codeOf = (e: unknown) => (isSwitchyardError(e) ? e.code : String(e));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function client(endpoint: string, outFile: string, methods: string[]): Promise<void> {
  const out: unknown[] = [];
  try {
    const c = await ControlClient.connect(endpoint, { timeoutMs: 15_000 });
    for (const m of methods) {
      try {
        out.push({ ok: true, result: await c.call(m) });
      } catch (e) {
        out.push({ ok: false, code: codeOf(e) });
      }
    }
    c.close();
  } catch (e) {
    out.push({ ok: false, code: codeOf(e), message: (e as Error).message });
  }
  write(outFile, { pid: process.pid, out });
}

/** node.exe running this script as a client; resolves with what it wrote. */
function child(endpoint: string, tag: string, methods: string[], onPid: (pid: number) => void = () => {}): Promise<{ pid: number; spawnedPid: number; out: any[] }> {
  // Diagnostics only: SY_NO_CHILD=1 skips the child processes (to tell Wine's spawn from the pipe).
  if (process.env['SY_NO_CHILD'] === '1') return Promise.resolve({ pid: -1, spawnedPid: -1, out: [] });
  const file = `${process.env['SY_OUT_DIR']}\\${tag}.json`;
  const p = spawn(process.execPath, [process.argv[1]!, 'client', endpoint, file, ...methods], { stdio: 'ignore' });
  onPid(p.pid!);
  return new Promise((resolve) => {
    p.on('exit', () => {
      const r = existsSync(file) ? JSON.parse(readFileSync(file, 'utf8')) : { pid: -1, out: [{ ok: false, code: 'no output' }] };
      resolve({ ...r, spawnedPid: p.pid! });
    });
  });
}

/** Raw bytes on an opened pipe: what comes back, and when the server closed it. */
function raw(stream: PipeStream) {
  const dec = new FrameDecoder();
  const replies: any[] = [];
  stream.on('data', (b: Buffer) => {
    for (const body of dec.push(b)) replies.push(parseBody(body));
  });
  stream.on('error', () => {});
  const closed = new Promise<void>((r) => stream.once('close', () => r()));
  return {
    replies,
    closed,
    destroy: async () => {
      stream.destroy();
      await closed;
    },
    send: (b: Buffer) => new Promise<void>((res) => stream.write(b, () => res())),
    async next(n: number): Promise<any[]> {
      const end = Date.now() + 10_000;
      while (replies.length < n && Date.now() < end) await sleep(20);
      return replies.slice(0, n);
    },
  };
}

const req = (id: number, method: string, params: unknown = null) => encodeFrame({ v: 1, id, method, params });

const r: Record<string, unknown> = { pid: process.pid };
/** Where the driver is, appended to progress.txt next to the result: a run that hangs shows its last step. */
let lastStep = 'start';
const step = (name: string) => {
  lastStep = name;
  appendFileSync(`${process.env['SY_OUT_DIR'] ?? '.'}\\progress.txt`, `${new Date().toISOString()} ${name}\n`);
};
async function main(outFile: string): Promise<void> {
  const name = `\\\\.\\pipe\\switchyard-wine-pipe-${process.pid}`;
  const injected = new Map<number, TokenFacts>();
  let state: WindowsPipeState | undefined;
  const registry = new MethodRegistry()
    // ownerSid: the flow-owner lookup (processUserSid, as Windows flows get their owner) run on the
    // caller's PID while it is connected, to compare with the SID the pipe's impersonation reported.
    .register({ name: 'whoami', permission: 'read', summary: 'the caller', handler: (_p, ctx) => ({ ...ctx.caller, ownerSid: processUserSid(ctx.caller.pid) ?? null }) })
    .register({ name: 'change.me', permission: 'change', summary: 'a state change', handler: () => 'changed' })
    .register({ name: 'echo', permission: 'read', summary: 'params back', handler: (p) => ({ length: JSON.stringify(p).length }) })
    .register({ name: 'big', permission: 'read', summary: 'a 900 kB reply', handler: () => ({ text: 'y'.repeat(900_000) }) })
    .register({
      name: 'stream',
      permission: 'read',
      summary: 'many partial replies (a --watch stream), paced by the client reading them',
      handler: async (_p, ctx) => {
        for (let i = 0; i < 200; i++) await ctx.send({ i, pad: 'z'.repeat(8000) });
        return { parts: 200 };
      },
    });
  const pipeErrors: string[] = [];
  r['pipeErrors'] = pipeErrors;
  const log = { warn: (o: unknown, m?: string) => pipeErrors.push(`${m}: ${String((o as { err?: Error }).err?.message ?? JSON.stringify(o))}`) } as unknown as Logger;
  const make = (readUsers: string[] = []) =>
    new ControlServer({
      endpoint: name,
      mode: 'service',
      registry,
      log: new Proxy(log, { get: (t, k) => (k in t ? (t as any)[k] : k === 'child' ? () => log : () => {}) }),
      listenPipe: windowsPipeListener(
        { mode: 'service', group: 'switchyard', readUsers, identifyTimeoutMs: 1500, tokenOverride: (f, pid) => injected.get(pid) ?? f },
        (s) => (state = s),
      ),
    });

  step('1');
  // 1. Squatting: someone created the name first → the daemon refuses to start (and shares nothing).
  const squatter = createPipeInstance(name);
  try {
    await make().listen();
    r['squat'] = 'listened';
  } catch (e) {
    r['squat'] = codeOf(e);
  }
  closeHandle(squatter);

  const server = make();
  await server.listen();
  r['state'] = state;
  step('2');
  // 2. A second daemon on the same name.
  try {
    await make().listen();
    r['second'] = 'listened';
  } catch (e) {
    r['second'] = codeOf(e);
  }

  step('3');
  // 3. A client in another process: its PID and class, and the token by impersonation vs by PID.
  const own = currentTokenFacts();
  const c1 = await child(name, 'c1', ['whoami', 'change.me']);
  r['child'] = c1;
  r['ownSid'] = own.sid;
  r['childTokenByPid'] = processTokenFacts(c1.pid) ?? null; // gone by now: null expected
  // Not asserted: an exited process stays queryable while a handle to it is open (node's own, here).
  r['childSidByPid'] = processUserSid(c1.pid) ?? null;
  r['ownSidByPid'] = processUserSid(process.pid) ?? null;
  step('4');
  // 4. Injected facts (Wine runs everything as one elevated user): an ordinary user reads, cannot change.
  const plain: TokenFacts = { sid: 'S-1-5-21-1-2-3-1001', elevated: false, groups: [{ sid: 'S-1-5-32-545', attributes: 7 }] };
  r['plain'] = await child(name, 'c2', ['whoami', 'change.me'], (pid) => injected.set(pid, plain));
  // An unelevated administrator (Administrators deny-only): read only.
  const filtered: TokenFacts = { sid: 'S-1-5-21-1-2-3-1002', elevated: false, groups: [{ sid: 'S-1-5-32-544', attributes: 0x10 }] };
  r['filtered'] = await child(name, 'c3', ['whoami', 'change.me'], (pid) => injected.set(pid, filtered));

  step('5');
  // 5. Hostile frames on one connection, then a good call on it.
  {
    const s = raw(await openPipe(name));
    const frames = [
      Buffer.from([0, 0, 0, 0]),
      lenFrame('not json'),
      lenFrame('\xff\xfe'),
      encodeFrame({ v: 2, id: 3, method: 'whoami', params: null }),
      req(4, 'nope'),
      encodeFrame({ v: 1, id: 5, method: 'whoami', params: null, x: 1 }),
      req(6, 'echo', { big: 'x'.repeat(300_000) }),
      req(7, 'whoami'),
    ];
    for (const f of frames) await s.send(f);
    const got = await s.next(frames.length);
    await s.destroy();
    r['hostile'] = got.map((x: any) => (x.ok ? { id: x.id, ok: true, ...(x.result?.length !== undefined ? { length: x.result.length } : { pid: x.result?.pid }) } : { id: x.id, code: x.error.code }));
  }
  {
    // An announced length over 1 MiB: answered, then closed.
    const s = raw(await openPipe(name));
    const h = Buffer.alloc(4);
    h.writeUInt32BE((1 << 20) + 1);
    await s.send(h);
    const [rep] = await s.next(1);
    const closed = await Promise.race([s.closed.then(() => true), sleep(5000).then(() => false)]);
    r['oversize'] = { code: rep?.error?.code, closed };
  }

  step('5b');
  // 5b. A 900 kB reply (many partial writes into a 64 KiB pipe buffer) and a stream of 200 partial
  //     replies, with a second request sent while the stream is still being written.
  {
    const c = await ControlClient.connect(name, { timeoutMs: 30_000 });
    const big = (await c.call('big')) as { text: string };
    let parts = 0;
    let inOrder = true;
    const streamed = c.call('stream', null, {
      onPartial: (p) => {
        if ((p as { i: number }).i !== parts) inOrder = false;
        parts++;
      },
    });
    const who = c.call('whoami');
    const [done, w] = await Promise.all([streamed, who]);
    c.close();
    r['bigLength'] = big.text.length;
    r['stream'] = { parts, inOrder, done, whoamiAfter: (w as { pid: number }).pid === process.pid };
  }

  step('6');
  // 6. Many connections at once (4 instances listen; the rest retry while all are busy).
  const many = await Promise.all(
    Array.from({ length: 40 }, async () => {
      try {
        const c = await ControlClient.connect(name, { timeoutMs: 15_000 });
        const w = (await c.call('whoami')) as { pid: number };
        c.close();
        return w.pid === process.pid ? 'ok' : `pid ${w.pid}`;
      } catch (e) {
        return `${codeOf(e)}: ${(e as Error).message}`;
      }
    }),
  );
  r['many'] = many.filter((x) => x === 'ok').length;
  // The server notices each hang-up through its pending read; give it time (no timing claim).
  for (let i = 0; i < 100 && server.connections > 0; i++) await sleep(50);
  r['connectionsAfterMany'] = server.connections;
  r['manyOther'] = many.filter((x) => x !== 'ok');

  step('7');
  // 7. A client that connects and never writes: closed by the server after identifyTimeoutMs; the
  //    server keeps answering; no operation is left outstanding for it.
  {
    const t0 = Date.now();
    const silent = raw(await openPipe(name));
    const closedIn = await Promise.race([silent.closed.then(() => Date.now() - t0), sleep(8000).then(() => -1)]);
    r['silentClosedAfterMs'] = closedIn;
    r['connectionsAfterSilent'] = server.connections;
    const c = await ControlClient.connect(name);
    r['afterSilent'] = ((await c.call('whoami')) as { pid: number }).pid === process.pid;
    c.close();
  }
  step('8');
  // 8. Connect and hang up at once.
  for (let i = 0; i < 5; i++) (await openPipe(name)).destroy();
  await sleep(300);
  {
    const c = await ControlClient.connect(name);
    r['afterHangups'] = ((await c.call('whoami')) as { pid: number }).pid === process.pid;
    c.close();
  }
  await sleep(300);
  r['connectionsAtEnd'] = server.connections;

  step('9');
  // 9. read_users set and not listing the caller: connects (Authenticated Users in the DACL), read refused.
  await server.close();
  step('9 closed');
  await sleep(300);
  try {
    await ControlClient.connect(name, { timeoutMs: 2000 });
    r['afterClose'] = 'connected';
  } catch (e) {
    r['afterClose'] = codeOf(e);
  }
  step('9 after-close client');
  const ru = make(['S-1-5-21-9-9-9-4242']);
  await ru.listen();
  step('9 listening again');
  r['readUsersState'] = state;
  r['readUsers'] = await child(name, 'c4', ['whoami'], (pid) => injected.set(pid, plain));
  step('9 child done');
  await ru.close();

  step('10');
  // 10. The worker dies (a throw in its loop, as a bug would): its connection is closed, it is restarted
  //     after the backoff, and the restart can take the name again (the dead worker closed its
  //     instances, so FILE_FLAG_FIRST_PIPE_INSTANCE succeeds); a new client is served.
  {
    const events: string[] = [];
    const echo = new PipeServer({
      name: `${name}-restart`,
      sddl: (r['state'] as WindowsPipeState).sddl,
      restartDelayMs: () => 200,
      onConnection: (s) => s.on('data', (d: Buffer) => s.write(d)),
      onRestart: (e, deaths) => events.push(`restart ${deaths}: ${e.message}`),
      onFailed: (e) => events.push(`failed: ${e.message}`),
      onWarning: (e) => events.push(`warn: ${e.message}`),
    });
    await echo.listen();
    const roundTrip = async () => {
      const c = raw(await openPipe(`${name}-restart`));
      await c.send(encodeFrame({ v: 1, id: 1, method: 'x', params: null }));
      const [got] = await c.next(1);
      return { got, c };
    };
    const first = await roundTrip();
    echo.crashWorkerForTest();
    const firstClosed = await Promise.race([first.c.closed.then(() => true), sleep(8000).then(() => false)]);
    for (let i = 0; i < 100 && !(echo.restarts === 1 && echo.serving); i++) await sleep(50);
    const second = await roundTrip().catch((e) => ({ got: codeOf(e), c: undefined }));
    await second.c?.destroy();
    await echo.close();
    r['restart'] = { firstEcho: first.got?.id === 1, firstClosed, restarts: echo.restarts, secondEcho: (second.got as { id?: number })?.id === 1, second: second.got, events };
  }
  step('done');
  write(outFile, r);
}

function lenFrame(text: string): Buffer {
  const b = Buffer.from(text, 'latin1');
  const f = Buffer.alloc(4 + b.length);
  f.writeUInt32BE(b.length, 0);
  b.copy(f, 4);
  return f;
}

if (mode === 'client') {
  client(args[0]!, args[1]!, args.slice(2)).then(() => process.exit(0));
} else {
  const out = args[0]!;
  // Tells a normal Node exit (the code is logged) from the process vanishing (nothing logged).
  process.on('exit', (code) => step(`exit ${code}`));
  // A run that is stuck (not crashed) says where, before the test's 90 s kill; a blocked main thread
  // would not get here, and the test then reports the last step from progress.txt. Not unref'd: an
  // event loop that ran empty while main() still waits would otherwise end the process silently.
  setTimeout(() => {
    write(out, { ...r, crashed: `watchdog: no end 75 s after start; last step ${lastStep}` });
    process.exit(3);
  }, 75_000);
  main(out).then(
    () => process.exit(0),
    (e) => {
      write(out, { ...r, crashed: String((e as Error).stack ?? e) });
      process.exit(1);
    },
  );
}
