// The main thread's side of the pipe worker (src/sys/windows/pipe-worker.ts): a PipeServer that
// starts one worker for all its instances and hands out each identified connection as a PipeStream,
// and openPipe, a client connection with a worker of its own. A PipeStream is a Node Duplex with
// `setTimeout` like net.Socket, so src/control serves and calls it exactly like a Unix socket.
//
// Flow control both ways: a write's callback runs when the worker reports the bytes in the pipe (so
// `write()` returns false and 'drain' follows as with a socket: a client that does not read slows
// only its own stream); when the readable side is full the worker stops reading that connection.
import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads';
import { Duplex } from 'node:stream';
import { OsCallError } from '../../errors.ts';
import type { TokenFacts } from './advapi32.ts';
import { WAKE_INDEX, type CallFailure, type ClientInit, type FromWorker, type ServerInit, type ToWorker } from './pipe-protocol.ts';
import { DeathWindow } from '../../death-window.ts';
import { startSiblingWorker } from '../../worker-thread.ts';

/** The pipe worker (src/worker-thread.ts: also from the TypeScript sources). */
function startWorker(options: ConstructorParameters<typeof Worker>[1]): Worker {
  return startSiblingWorker(import.meta.url, 'pipe-worker', options);
}

export function callError(f: CallFailure): OsCallError {
  const e = new OsCallError('SY_ERR_WIN_CALL', f.call, f.errno);
  e.message = f.message;
  return e;
}

/** One worker and the two ways to talk to it. */
class WorkerLink {
  readonly worker: Worker;
  readonly #port: MessagePort;
  readonly #wake: Int32Array;
  #gone = false;

  constructor(init: ServerInit | ClientInit, onMessage: (m: FromWorker) => void, onExit: (err?: Error) => void) {
    const wake = new SharedArrayBuffer(4);
    const { port1, port2 } = new MessageChannel();
    this.#port = port1;
    this.#wake = new Int32Array(wake);
    this.worker = startWorker({
      workerData: { switchyardPipe: { ...init, wake }, port: port2 },
      transferList: [port2],
    });
    this.worker.on('message', onMessage);
    this.worker.on('error', (err) => onExit(err));
    this.worker.on('exit', (code) => {
      this.#gone = true;
      onExit(code === 0 ? undefined : new Error(`pipe worker exited with code ${code}`));
    });
  }

  send(m: ToWorker): void {
    if (this.#gone) return;
    this.#port.postMessage(m, m.t === 'write' ? [m.data.buffer as ArrayBuffer] : []);
    Atomics.add(this.#wake, WAKE_INDEX, 1);
    Atomics.notify(this.#wake, WAKE_INDEX);
  }

  close(): void {
    this.#port.close();
  }
}

const PIPE_STREAM_HWM = 16 * 1024;

/**
 * One connection through a worker. Emits 'data', 'end', 'close' like a socket; `destroyed` once closed.
 */
export class PipeStream extends Duplex {
  readonly #link: Pick<PipeLink, 'send'>;
  readonly #id: number;
  #seq = 0;
  readonly #writes = new Map<number, (err?: Error | null) => void>();
  #paused = false;
  #workerClosed = false;
  #idleMs = 0;
  #idleCb: (() => void) | undefined;
  #idleTimer: NodeJS.Timeout | undefined;
  #onGone: (() => void) | undefined;

  /** @internal — made by PipeServer and openPipe. */
  constructor(link: Pick<PipeLink, 'send'>, id: number, onGone?: () => void) {
    // 16 KiB both ways, stated: Node 22 raised the stream default to 64 KiB, and the pipe's
    // back-pressure (a quarter of its 64 KiB buffer per WriteFile) should not differ by Node version.
    super({ allowHalfOpen: false, highWaterMark: PIPE_STREAM_HWM });
    this.#link = link;
    this.#id = id;
    this.#onGone = onGone;
    this.once('end', () => this.destroy());
  }

  /** @internal — a message from the worker for this connection. */
  deliver(m: FromWorker): void {
    switch (m.t) {
      case 'data':
        this.#touch();
        if (!this.push(Buffer.from(m.data.buffer, m.data.byteOffset, m.data.byteLength)) && !this.#paused) {
          this.#paused = true;
          this.#link.send({ t: 'pause', id: this.#id });
        }
        break;
      case 'written': {
        this.#touch();
        const cb = this.#writes.get(m.seq);
        this.#writes.delete(m.seq);
        cb?.();
        break;
      }
      case 'closed':
        this.#workerClosed = true;
        this.#failWrites(m.error ? callError(m.error) : null);
        if (m.error) this.destroy(callError(m.error));
        else this.push(null); // 'end', then destroy (see the constructor)
        break;
      default:
        break;
    }
  }

  setTimeout(ms: number, cb?: () => void): this {
    this.#idleMs = ms;
    if (cb) this.#idleCb = cb;
    this.#touch();
    return this;
  }

  #touch(): void {
    if (this.#idleTimer) clearTimeout(this.#idleTimer);
    this.#idleTimer = undefined;
    if (this.#idleMs > 0 && !this.destroyed) {
      this.#idleTimer = setTimeout(() => {
        this.emit('timeout');
        this.#idleCb?.();
      }, this.#idleMs);
      this.#idleTimer.unref();
    }
  }

  #failWrites(err: Error | null): void {
    const pending = [...this.#writes.values()];
    this.#writes.clear();
    const e = err ?? new OsCallError('SY_ERR_WIN_CALL', 'WriteFile', 109, 'the pipe was closed');
    for (const cb of pending) cb(e);
  }

  override _read(): void {
    if (this.#paused && !this.#workerClosed) {
      this.#paused = false;
      this.#link.send({ t: 'resume', id: this.#id });
    }
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (this.#workerClosed) return cb(new OsCallError('SY_ERR_WIN_CALL', 'WriteFile', 109, 'the pipe was closed'));
    if (chunk.length === 0) return cb();
    const seq = ++this.#seq;
    this.#writes.set(seq, cb);
    // A copy of our own, transferred to the worker (the caller may reuse `chunk`).
    const data = new Uint8Array(chunk.length);
    data.set(chunk);
    this.#link.send({ t: 'write', id: this.#id, seq, data });
  }

  override _final(cb: (err?: Error | null) => void): void {
    // A pipe has no half-close: once everything is written, the connection is over. The worker
    // closes the handle after its queue is written; the bytes stay readable by the peer.
    if (!this.#workerClosed) this.#link.send({ t: 'end', id: this.#id });
    cb();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    if (this.#idleTimer) clearTimeout(this.#idleTimer);
    // After end(), the worker closes the handle once the queue is written; otherwise close now.
    if (!this.#workerClosed && !this.writableFinished) this.#link.send({ t: 'destroy', id: this.#id });
    this.#failWrites(err);
    const gone = this.#onGone;
    this.#onGone = undefined;
    gone?.();
    cb(err);
  }
}

// ---------------------------------------------------------------- server

export interface PipeServerOptions {
  /** `\\.\pipe\name`. */
  name: string;
  /** The pipe's security descriptor as SDDL. */
  sddl: string;
  /** Instances kept listening (default 4). */
  listeners?: number;
  /** Default 10 s. */
  identifyTimeoutMs?: number;
  /** Default 128. */
  maxUnidentified?: number;
  /** Longest idle poll interval (default 20 ms). */
  maxIdleMs?: number;
  /**
   * A client sent its first bytes: its PID and either its token facts or why they could not be read
   * (then the caller must refuse it). Its first data follows on the stream.
   */
  onConnection: (stream: PipeStream, pid: number, facts: TokenFacts | Error) => void;
  /** Something to log that stops nothing. */
  onWarning?: (err: Error) => void;
  /** A client closed before it was handed over. */
  onDropped?: (pid: number, reason: string) => void;
  /** The worker died after listening; a new one starts in `delayMs` (the `deaths`-th death in the window). */
  onRestart?: (err: Error, deaths: number, delayMs: number) => void;
  /** Too many deaths within the window: no more restarts, no pipe. */
  onFailed?: (err: Error, deaths: number) => void;
  /** Default PIPE_MAX_DEATHS. */
  maxDeaths?: number;
  /** Default PIPE_DEATH_WINDOW_MS. */
  deathWindowMs?: number;
  /** Default pipeRestartDelayMs. */
  restartDelayMs?: (deathsInWindow: number) => number;
  /** Tests: starts a stand-in for the worker (default: the real worker thread). */
  spawn?: SpawnPipeWorker;
}

/** What PipeServer needs of a worker: WorkerLink, or a stand-in in the Linux tests. */
export interface PipeLink {
  send(m: ToWorker): void;
  close(): void;
}

/** Starts a worker; `onExit` runs once when it ends (with an error unless it exited cleanly). */
export type SpawnPipeWorker = (init: ServerInit, onMessage: (m: FromWorker) => void, onExit: (err?: Error) => void) => PipeLink;

const spawnWorker: SpawnPipeWorker = (init, onMessage, onExit) => new WorkerLink(init, onMessage, onExit);

/** Worker deaths tolerated within DEATH_WINDOW_MS; one more and the server gives up (onFailed). */
export const PIPE_MAX_DEATHS = 5;
export const PIPE_DEATH_WINDOW_MS = 60_000;
/** Delay before the n-th restart within the window: 100 ms, doubling, at most 5 s. */
export function pipeRestartDelayMs(deathsInWindow: number): number {
  return Math.min(5000, 100 * 2 ** Math.max(0, deathsInWindow - 1));
}

/**
 * A pipe server on instances its worker creates: the first with FILE_FLAG_FIRST_PIPE_INSTANCE (a name
 * that exists — another daemon or a squatter — refuses the start), all with PIPE_REJECT_REMOTE_CLIENTS
 * and the given DACL; at least one instance stays open from listen() to close() while the worker lives.
 *
 * A worker that ends without being asked to (a throw in its loop, a 'fatal' after listening) is a
 * death: its connections are closed and a new worker is started after a backoff (pipeRestartDelayMs);
 * a restart that cannot listen again is a death too. More than maxDeaths deaths within
 * deathWindowMs: the server stops trying and reports onFailed (the daemon then has no control pipe).
 */
export class PipeServer {
  readonly #opts: PipeServerOptions;
  readonly #init: ServerInit;
  #link: PipeLink | undefined;
  readonly #streams = new Map<number, PipeStream>();
  #stopped: Promise<void> = Promise.resolve();
  #closing = false;
  readonly #deaths: DeathWindow;
  #restartTimer: NodeJS.Timeout | undefined;
  #restarts = 0;
  #failed = false;
  /** The current worker reported 'listening' and has not ended. */
  #listening = false;

  constructor(opts: PipeServerOptions) {
    this.#opts = opts;
    this.#deaths = new DeathWindow(opts.maxDeaths ?? PIPE_MAX_DEATHS, opts.deathWindowMs ?? PIPE_DEATH_WINDOW_MS);
    this.#init = {
      kind: 'server',
      name: opts.name,
      sddl: opts.sddl,
      listeners: opts.listeners ?? 4,
      identifyTimeoutMs: opts.identifyTimeoutMs ?? 10_000,
      maxUnidentified: opts.maxUnidentified ?? 128,
      maxIdleMs: opts.maxIdleMs ?? 20,
    };
  }

  get connections(): number {
    return this.#streams.size;
  }

  /** Workers started again after a death. */
  get restarts(): number {
    return this.#restarts;
  }

  /** True while a worker listens (false during a restart's backoff, after giving up, after close()). */
  get serving(): boolean {
    return this.#listening && !this.#failed && !this.#closing;
  }

  /** Starts the first worker; rejects when it cannot listen (that is not retried: the caller decides). */
  listen(): Promise<void> {
    return this.#start();
  }

  #start(): Promise<void> {
    const o = this.#opts;
    return new Promise((resolve, reject) => {
      let started = false;
      let stoppedResolve: () => void = () => {};
      this.#stopped = new Promise((r) => (stoppedResolve = r));
      const link = (o.spawn ?? spawnWorker)(
        this.#init,
        (m) => {
          switch (m.t) {
            case 'listening':
              started = true;
              if (this.#link === link) this.#listening = true;
              resolve();
              return;
            case 'fatal':
              if (!started) reject(callError(m.error));
              else o.onWarning?.(callError(m.error));
              return;
            case 'conn': {
              const s = new PipeStream(link, m.id, () => this.#streams.delete(m.id));
              this.#streams.set(m.id, s);
              o.onConnection(s, m.pid, m.facts ?? callError(m.identityError ?? { call: 'ImpersonateNamedPipeClient', errno: undefined, message: 'no token' }));
              return;
            }
            case 'data':
            case 'written':
            case 'closed':
              this.#streams.get(m.id)?.deliver(m);
              return;
            case 'dropped':
              o.onDropped?.(m.pid, m.reason);
              return;
            case 'warn':
              o.onWarning?.(callError(m.error));
              return;
            default:
              return;
          }
        },
        (err) => {
          for (const s of this.#streams.values()) s.destroy();
          this.#streams.clear();
          if (this.#link === link) {
            this.#link = undefined;
            this.#listening = false;
          }
          link.close();
          stoppedResolve();
          if (!started) reject(err ?? new Error('the pipe worker ended before listening'));
          else if (!this.#closing) this.#died(err ?? new Error('the pipe worker ended without being asked to'));
        },
      );
      this.#link = link;
    });
  }

  /** The worker ended on its own: restart it after a backoff, or give up after too many deaths. */
  #died(err: Error): void {
    const deaths = this.#deaths.record();
    if (this.#deaths.spent) {
      this.#failed = true;
      this.#opts.onFailed?.(err, deaths);
      return;
    }
    const delay = this.#opts.restartDelayMs?.(deaths) ?? pipeRestartDelayMs(deaths);
    this.#opts.onRestart?.(err, deaths, delay);
    this.#restartTimer = setTimeout(() => {
      this.#restartTimer = undefined;
      if (this.#closing) return;
      this.#restarts++;
      // A restart that cannot listen (the name taken meanwhile, ...) counts as another death.
      this.#start().catch((e: unknown) => {
        if (!this.#closing) this.#died(e instanceof Error ? e : new Error(String(e)));
      });
    }, delay);
    this.#restartTimer.unref?.();
  }

  /** Tests: makes the worker throw in its loop, as a bug would (a death, then a restart). */
  crashWorkerForTest(): void {
    this.#link?.send({ t: 'crash' });
  }

  /** Closes every instance and connection; resolves when the worker has ended. */
  async close(): Promise<void> {
    this.#closing = true;
    if (this.#restartTimer) clearTimeout(this.#restartTimer);
    this.#restartTimer = undefined;
    const link = this.#link;
    for (const s of [...this.#streams.values()]) s.destroy();
    if (link) {
      link.send({ t: 'stop' });
      await this.#stopped;
      link.close();
    }
  }
}

// ---------------------------------------------------------------- client

/**
 * Opens a pipe as a client (see pipe-worker.ts `connect` for the access asked and why). Rejects with
 * the OsCallError of CreateFileW (errno 2: no such pipe, 5: access denied, 231: all instances busy
 * for `timeoutMs`).
 */
export function openPipe(name: string, timeoutMs = 5000): Promise<PipeStream> {
  return new Promise((resolve, reject) => {
    let stream: PipeStream | undefined;
    let link: WorkerLink | undefined = undefined;
    link = new WorkerLink(
      { kind: 'client', name, timeoutMs, maxIdleMs: 20 },
      (m) => {
        if (m.t === 'open') {
          // The connection's worker ends with the connection.
          stream = new PipeStream(link!, m.id, () => link!.send({ t: 'stop' }));
          resolve(stream);
        } else if (m.t === 'fatal') {
          if (stream === undefined) reject(callError(m.error));
        } else if (m.t === 'data' || m.t === 'written' || m.t === 'closed') stream?.deliver(m);
      },
      (err) => {
        link?.close();
        if (stream === undefined) reject(err ?? new Error('the pipe worker ended before the pipe opened'));
        else if (!stream.destroyed) stream.destroy(err);
      },
    );
  });
}
