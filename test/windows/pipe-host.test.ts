// PipeStream (src/sys/windows/pipe-host.ts), the main thread's half of a pipe connection, against a
// recorded link: the messages it sends the worker and how it reacts to the worker's. The two halves
// together, with the real worker and Wine's kernel32, are wine-pipe.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { PipeStream } from '../../src/sys/windows/pipe-host.ts';
import type { ToWorker } from '../../src/sys/windows/pipe-protocol.ts';

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
