// What both exec event sources of the process watcher (watcher.ts) share: starting a worker thread
// from a sibling file (also under tsx), and the probe that proves a source really delivers events
// (an exec of `true` whose pid must show up in the worker's ring of recent exec tgids).
import { Worker } from 'node:worker_threads';
import { spawn } from 'node:child_process';
import { startSiblingWorker } from '../../worker-thread.ts';

/** Size of the ring of recent exec tgids the workers keep in shared memory (for the probe). */
export const RING = 64;

/** Starts `./<name>.ts|.js` (next to this file) as a worker thread. */
export function spawnWatchWorker(name: string, workerData: unknown): Worker {
  return startSiblingWorker(import.meta.url, name, { workerData });
}

/** Execs `true` and waits for its exec event to show up in a worker's ring of recent execs. */
export async function probeExec(buf: SharedArrayBuffer, ringAt: number, timeoutMs = 2000): Promise<boolean> {
  const shared = new Int32Array(buf);
  const child = spawn('true', [], { stdio: 'ignore' });
  child.on('error', () => {});
  const pid = child.pid;
  if (pid === undefined) return false;
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    for (let i = 0; i < RING; i++) if (Atomics.load(shared, ringAt + i) === pid) return true;
    await new Promise((r) => setTimeout(r, 10));
  }
  return false;
}
