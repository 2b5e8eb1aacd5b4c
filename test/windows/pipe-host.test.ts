// PipeStream (src/sys/windows/pipe-stream.ts), the main thread's half of a pipe connection, against a
// recorded link: the messages it sends the worker and how it reacts to the worker's; and PipeServer's
// restarts of a worker that dies, with stand-in workers. The two halves
// together, with the real worker and Wine's kernel32, are wine-pipe.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { PipeServer, PipeStream, pipeRestartDelayMs, type SpawnPipeWorker } from '../../src/sys/windows/pipe-host.ts';
import type { FromWorker, ToWorker } from '../../src/sys/windows/pipe-protocol.ts';

function recorded() {
  const sent: ToWorker[] = [];
  const link = { send: (m: ToWorker) => sent.push(m) };
  let gone = 0;
  // The constructor's link type is internal; PipeStream only calls send().
  const s = new PipeStream(link as unknown as ConstructorParameters<typeof PipeStream>[0], 7, () => gone++);
  return { s, sent, gone: () => gone };
}

const tick = () => new Promise((r) => setImmediate(r));

test('a write completes only when the worker reports it in the pipe; the bytes are a copy the caller may reuse', async () => {
  const { s, sent } = recorded();
  const buf = Buffer.from('hello');
  let done = false;
  s.write(buf, () => (done = true));
  buf.fill(0);
  await tick();
  assert.equal(sent.length, 1);
  const w = sent[0] as Extract<ToWorker, { t: 'write' }>;
  assert.equal(w.t, 'write');
  assert.equal(w.id, 7);
  assert.equal(Buffer.from(w.data).toString(), 'hello');
  assert.equal(done, false, 'not before the worker says so');
  s.deliver({ t: 'written', id: 7, seq: w.seq });
  await tick();
  assert.equal(done, true);
  s.destroy();
});

test('back-pressure: write() returns false past the high-water mark and drain follows the worker\'s acknowledgements', async () => {
  const { s, sent } = recorded();
  const big = Buffer.alloc(20_000, 1);
  assert.equal(s.write(big), false, '20 kB over a 16 kB high-water mark');
  const drained = once(s, 'drain');
  await tick();
  for (const m of sent) if (m.t === 'write') s.deliver({ t: 'written', id: 7, seq: m.seq });
  await drained;
  s.destroy();
});

test('reading: data is pushed; a full readable side pauses the worker and reading resumes it', async () => {
  const { s, sent } = recorded();
  const chunk = new Uint8Array(20_000);
  s.deliver({ t: 'data', id: 7, data: chunk }); // nobody reads: over the 16 kB mark
  assert.deepEqual(sent.at(-1), { t: 'pause', id: 7 });
  const got: Buffer[] = [];
  s.on('data', (b: Buffer) => got.push(b));
  await tick();
  assert.deepEqual(sent.at(-1), { t: 'resume', id: 7 });
  assert.equal(Buffer.concat(got).length, 20_000);
  s.destroy();
});

test('the peer hangs up: end, then close, the connection released once; a write still pending fails', async () => {
  const { s, sent, gone } = recorded();
  let ended = false;
  s.on('data', () => {});
  s.on('end', () => (ended = true));
  const closed = new Promise((r) => s.once('close', r));
  s.deliver({ t: 'closed', id: 7 });
  await closed;
  assert.equal(ended, true);
  assert.equal(s.destroyed, true);
  assert.equal(gone(), 1);
  assert.equal(sent.filter((m) => m.t === 'destroy').length, 0, 'no destroy for a handle the worker closed');

  const p = recorded();
  let writeErr: Error | null | undefined;
  p.s.on('data', () => {});
  p.s.on('error', () => {}); // the failed write is also emitted, as net.Socket does (EPIPE)
  p.s.write(Buffer.from('x'), (e) => (writeErr = e));
  const pclosed = new Promise((r) => p.s.once('close', r));
  p.s.deliver({ t: 'closed', id: 7 });
  await pclosed;
  assert.ok(writeErr instanceof Error, 'the unacknowledged write failed');
  assert.equal(p.gone(), 1);
});

test('end(data): the worker is told to close only after the last write is acknowledged; destroy() tells it to close now', async () => {
  const a = recorded();
  a.s.on('error', () => {});
  a.s.end(Buffer.from('bye'));
  await tick();
  const w = a.sent.find((m) => m.t === 'write') as Extract<ToWorker, { t: 'write' }>;
  assert.equal(a.sent.some((m) => m.t === 'end'), false);
  a.s.deliver({ t: 'written', id: 7, seq: w.seq });
  await tick();
  assert.deepEqual(a.sent.at(-1), { t: 'end', id: 7 });

  const b = recorded();
  b.s.destroy();
  await tick();
  assert.deepEqual(b.sent, [{ t: 'destroy', id: 7 }]);
  assert.equal(b.gone(), 1);
});

test('a worker-side error closes the stream with that OsCallError; setTimeout fires after silence like a socket', async () => {
  const { s } = recorded();
  s.on('data', () => {});
  const err = once(s, 'error');
  s.deliver({ t: 'closed', id: 7, error: { call: 'ReadFile', errno: 6, message: 'ReadFile failed (errno 6)' } });
  const [e] = (await err) as [Error & { code?: string; errno?: number }];
  assert.equal(e.code, 'SY_ERR_WIN_CALL');
  assert.equal(e.errno, 6);
  assert.match(e.message, /ReadFile failed/);

  const t = recorded();
  const keep = setTimeout(() => {}, 10_000); // the idle timer is unref'd, like a socket's
  const fired = new Promise<void>((r) => t.s.setTimeout(30, r));
  await fired;
  clearTimeout(keep);
  t.s.destroy();
});

// ---------------------------------------------------------------- PipeServer: worker deaths

/** Stand-in workers: each listens at once (or fails to, when `refuse` says so) and can be killed. */
function fakeWorkers(refuse: (n: number) => boolean = () => false) {
  const workers: { msg: (m: FromWorker) => void; exit: (err?: Error) => void; sent: ToWorker[]; closed: boolean }[] = [];
  const spawn: SpawnPipeWorker = (_init, onMessage, onExit) => {
    const w = { msg: onMessage, exit: onExit, sent: [] as ToWorker[], closed: false };
    const n = workers.push(w);
    setImmediate(() => {
      if (refuse(n)) {
        onMessage({ t: 'fatal', error: { call: 'CreateNamedPipeW', errno: 5, message: 'name taken' } });
        onExit();
      } else onMessage({ t: 'listening' });
    });
    return {
      send: (m) => {
        w.sent.push(m);
        if (m.t === 'stop') setImmediate(() => onExit());
      },
      close: () => (w.closed = true),
    };
  };
  return { workers, spawn };
}

const until = async (cond: () => boolean) => {
  for (let i = 0; i < 500 && !cond(); i++) await new Promise((r) => setTimeout(r, 2));
  assert.ok(cond(), 'condition not reached');
};

test('a dead pipe worker is restarted after a backoff; its connections are closed; the new worker serves', async () => {
  const { workers, spawn } = fakeWorkers();
  const restarts: [number, number][] = [];
  const conns: number[] = [];
  const server = new PipeServer({
    name: '\\\\.\\pipe\\t', sddl: 'D:P', spawn, restartDelayMs: () => 1,
    onConnection: (_s, pid) => conns.push(pid),
    onRestart: (_e, deaths, delay) => restarts.push([deaths, delay]),
    onFailed: () => assert.fail('not after one death'),
  });
  await server.listen();
  workers[0]!.msg({ t: 'conn', id: 1, pid: 42, facts: { sid: 'S-1-5-21-1-2-3-1001', elevated: false, groups: [] } });
  assert.equal(server.connections, 1);
  workers[0]!.exit(new Error('pipe worker exited with code 1'));
  assert.equal(server.connections, 0, 'the dead worker\'s connections are closed');
  assert.equal(server.serving, false);
  await until(() => workers.length === 2 && server.serving);
  assert.deepEqual(restarts, [[1, 1]]);
  assert.equal(server.restarts, 1);
  workers[1]!.msg({ t: 'conn', id: 1, pid: 43, facts: { sid: 'S-1-5-21-1-2-3-1001', elevated: false, groups: [] } });
  assert.deepEqual(conns, [42, 43]);
  await server.close();
  assert.deepEqual(workers[1]!.sent.at(-1), { t: 'stop' });
  assert.equal(workers.length, 2, 'a requested stop is not a death');
});

test('a fatal report after listening (the worker then ends cleanly) is a death too', async () => {
  const { workers, spawn } = fakeWorkers();
  const server = new PipeServer({ name: 'n', sddl: 'D:P', spawn, restartDelayMs: () => 1, onConnection: () => {} });
  await server.listen();
  workers[0]!.msg({ t: 'fatal', error: { call: 'ConnectNamedPipe', errno: 6, message: 'bad handle' } });
  workers[0]!.exit();
  await until(() => server.restarts === 1 && server.serving);
  await server.close();
});

test('more deaths than allowed within the window: no more restarts, onFailed once; restarts that cannot listen count', async () => {
  // Worker 1 listens; every restart is refused (the name taken): each refusal is another death.
  const { workers, spawn } = fakeWorkers((n) => n > 1);
  const failed: number[] = [];
  const restarts: number[] = [];
  const server = new PipeServer({
    name: 'n', sddl: 'D:P', spawn, maxDeaths: 3, restartDelayMs: () => 1, onConnection: () => {},
    onRestart: (_e, deaths) => restarts.push(deaths),
    onFailed: (_e, deaths) => failed.push(deaths),
  });
  await server.listen();
  workers[0]!.exit(new Error('boom'));
  await until(() => failed.length === 1);
  assert.deepEqual(restarts, [1, 2, 3]);
  assert.deepEqual(failed, [4]);
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(workers.length, 4, 'one first worker and three restarts, then nothing');
  assert.equal(server.serving, false);
  await server.close();
});

test('deaths older than the window are forgotten; the backoff doubles up to 5 s', async () => {
  assert.deepEqual([1, 2, 3, 4, 5, 6, 7, 8].map(pipeRestartDelayMs), [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
  const { workers, spawn } = fakeWorkers();
  const failed: number[] = [];
  const server = new PipeServer({ name: 'n', sddl: 'D:P', spawn, maxDeaths: 1, deathWindowMs: 5, restartDelayMs: () => 10, onConnection: () => {}, onFailed: (_e, d) => failed.push(d) });
  await server.listen();
  for (let i = 0; i < 3; i++) {
    workers.at(-1)!.exit(new Error('boom'));
    await until(() => workers.length === i + 2 && server.serving);
  }
  assert.deepEqual(failed, [], 'one death per window is within the limit');
  await server.close();
});

test('close() during a restart backoff starts no worker', async () => {
  const { workers, spawn } = fakeWorkers();
  const server = new PipeServer({ name: 'n', sddl: 'D:P', spawn, restartDelayMs: () => 30, onConnection: () => {} });
  await server.listen();
  workers[0]!.exit(new Error('boom'));
  await server.close();
  await new Promise((r) => setTimeout(r, 60));
  assert.equal(workers.length, 1);
});
