// Starting a fast listener's worker thread (fast-worker.ts): loading it (also from TypeScript
// sources), waiting for its 'ready', and the budget of deaths after which a listener stops
// restarting it. What a listener does with the worker's messages, and on its death, is
// fast-path.ts's business.
import { Worker } from 'node:worker_threads';
import { DnsError } from './errors.ts';
import type { FastWorkerData, ToMain } from './fast-proto.ts';
import { DeathWindow } from '../death-window.ts';
import { startSiblingWorker } from '../worker-thread.ts';

/** A Worker running fast-worker (src/worker-thread.ts: also from the TypeScript sources). */
function newWorker(data: FastWorkerData): Worker {
  return startSiblingWorker(import.meta.url, 'fast-worker', { workerData: data });
}

/** What a started worker tells its listener; each call names the worker (a restart makes a new one). */
export interface WorkerEvents {
  /** Any message but 'ready'. */
  message(w: Worker, m: Exclude<ToMain, { t: 'ready' }>): void;
  /** It said it is ready (called just before `ready` resolves). */
  ready(w: Worker): void;
  /** It exited, ready or not, with the last error it raised (null if none). */
  exit(w: Worker, code: number, lastErr: unknown): void;
}

export interface StartedWorker {
  worker: Worker;
  /** Resolves when it says it is ready; rejects if it exits first or is not ready within the timeout. */
  ready: Promise<void>;
  /** Resolves once it has exited. */
  exited: Promise<void>;
}

/** Starts a worker with `data`; `on` hears its messages and its exit. */
export function startWorker(data: FastWorkerData, readyTimeoutMs: number, on: WorkerEvents): StartedWorker {
  const w = newWorker(data);
  let lastErr: unknown = null;
  let isReady = false;
  const exited = new Promise<void>((resolve) => w.once('exit', () => resolve()));
  const ready = new Promise<void>((resolve, reject) => {
    // The timeout only rejects: the caller stops the worker (it may still be loading).
    const timer = setTimeout(() => reject(new DnsError('SY_ERR_DNS_FAST_PATH', `fast path worker not ready after ${readyTimeoutMs} ms`)), readyTimeoutMs);
    w.on('message', (m: ToMain) => {
      if (m.t !== 'ready') return on.message(w, m);
      isReady = true;
      clearTimeout(timer);
      on.ready(w);
      resolve();
    });
    w.on('error', (err) => {
      lastErr = err;
    });
    w.once('exit', (code) => {
      clearTimeout(timer);
      if (!isReady) reject(new DnsError('SY_ERR_DNS_FAST_PATH', `fast path worker exited before it was ready (code ${code}): ${String((lastErr as Error)?.message ?? lastErr)}`, lastErr));
      on.exit(w, code, lastErr);
    });
  });
  return { worker: w, ready, exited };
}

const MAX_DEATHS = 3;
export const DEATH_WINDOW_MS = 60_000;

/**
 * The deaths of one listener's workers: after MAX_DEATHS within DEATH_WINDOW_MS the listener
 * stops restarting them and stays on its dgram socket (a worker that keeps dying would otherwise
 * cost a restart, and its lost replica, every few seconds).
 */
export const newDeathBudget = (): DeathWindow => new DeathWindow(MAX_DEATHS, DEATH_WINDOW_MS);
