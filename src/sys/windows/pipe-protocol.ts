// Messages between the main thread and the pipe worker (src/sys/windows/pipe-worker.ts). Types only,
// plus the wake-word layout: no koffi here, so both sides and the Linux tests can import it.
//
// Main → worker: on a MessagePort the worker drains synchronously (receiveMessageOnPort) at every turn
// of its loop; after each message the main thread bumps WAKE_INDEX of a SharedArrayBuffer and notifies
// it, which ends the worker's idle Atomics.wait at once.
// Worker → main: parentPort messages, handled on the main thread's event loop.
import type { TokenFacts } from './advapi32.ts';

/** Int32 index in the shared wake buffer: incremented (and notified) for every message sent. */
export const WAKE_INDEX = 0;
/** Bytes per ReadFile and at most per WriteFile; also the pipe's in and out buffer sizes. */
export const PIPE_IO_BYTES = 64 * 1024;

export interface ServerInit {
  kind: 'server';
  /** `\\.\pipe\name`. */
  name: string;
  /** The pipe's security descriptor as SDDL (src/control/identity-windows.ts pipeSddl). */
  sddl: string;
  /** Instances kept listening for clients. */
  listeners: number;
  /** A client must send its first bytes within this time, or it is closed unidentified. */
  identifyTimeoutMs: number;
  /** Connected but not yet identified, at most; beyond that a new client is closed at once. */
  maxUnidentified: number;
  /** Longest idle sleep between two polls (the latency of a new client or request when idle). */
  maxIdleMs: number;
}

export interface ClientInit {
  kind: 'client';
  name: string;
  /** How long to keep retrying while every instance is busy. */
  timeoutMs: number;
  maxIdleMs: number;
}

export type WorkerInit = (ServerInit | ClientInit) & { wake: SharedArrayBuffer };

export type ToWorker =
  | { t: 'write'; id: number; seq: number; data: Uint8Array }
  | { t: 'pause'; id: number }
  | { t: 'resume'; id: number }
  /** Close once everything queued is written (the bytes stay readable by the peer). */
  | { t: 'end'; id: number }
  /** Close now, dropping what is queued. */
  | { t: 'destroy'; id: number }
  /** Close every handle and end the worker. */
  | { t: 'stop' }
  /** Tests: throw inside the worker's loop, as a bug would (it must close its handles and die). */
  | { t: 'crash' };

/** A failed Win32 call, as OsCallError carries it. */
export interface CallFailure {
  call: string;
  errno: number | undefined;
  message: string;
}

export type FromWorker =
  /** Server: the first instance exists and is ours alone. */
  | { t: 'listening' }
  /** Client: the pipe is open; its connection id. */
  | { t: 'open'; id: number }
  /** Start failed (nothing is left open); the worker ends. */
  | { t: 'fatal'; error: CallFailure }
  /**
   * Server: a client sent its first bytes. `pid` from GetNamedPipeClientProcessId at connect; `facts`
   * from its token by impersonation, or `identityError` when that failed (the caller must refuse).
   * Always before that connection's first `data`.
   */
  | { t: 'conn'; id: number; pid: number; facts?: TokenFacts; identityError?: CallFailure }
  | { t: 'data'; id: number; data: Uint8Array }
  /** Write `seq` is entirely in the pipe. */
  | { t: 'written'; id: number; seq: number }
  /** The connection's handle is closed (peer hung up, error, end or destroy). */
  | { t: 'closed'; id: number; error?: CallFailure }
  /** Server: a client closed without being handed over (silent, too many waiting, gone at once). */
  | { t: 'dropped'; pid: number; reason: string }
  /** Server: something to log that stops nothing (an instance could not be replaced, ...). */
  | { t: 'warn'; error: CallFailure }
  /** The worker closed everything and returns. */
  | { t: 'stopped' };
