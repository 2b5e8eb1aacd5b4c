// The main thread's side of the pipe worker (src/sys/windows/pipe-worker.ts): a PipeServer that
// starts one worker for all its instances and hands out each identified connection as a PipeStream
// (pipe-stream.ts), and openPipe, a client connection with a worker of its own (pipe-link.ts).
import type { TokenFacts } from './advapi32.ts';
import type { FromWorker, ServerInit } from './pipe-protocol.ts';
import { DeathWindow } from '../../death-window.ts';
import { WorkerLink, callError, type PipeLink, type SpawnPipeWorker } from './pipe-link.ts';
import { PipeStream } from './pipe-stream.ts';

export { PipeStream } from './pipe-stream.ts';
export type { PipeLink, SpawnPipeWorker } from './pipe-link.ts';

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
