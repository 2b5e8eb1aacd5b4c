// The main thread's handle on one pipe worker thread (src/sys/windows/pipe-worker.ts): messages over a
// MessagePort, plus a shared counter the worker's idle Atomics.wait watches so a queued write wakes it.
import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads';
import { OsCallError } from '../../errors.ts';
import { WAKE_INDEX, type CallFailure, type ClientInit, type FromWorker, type ServerInit, type ToWorker } from './pipe-protocol.ts';
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
export class WorkerLink {
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

/** What PipeServer needs of a worker: WorkerLink, or a stand-in in the Linux tests. */
export interface PipeLink {
  send(m: ToWorker): void;
  close(): void;
}

/** Starts a worker; `onExit` runs once when it ends (with an error unless it exited cleanly). */
export type SpawnPipeWorker = (init: ServerInit, onMessage: (m: FromWorker) => void, onExit: (err?: Error) => void) => PipeLink;
