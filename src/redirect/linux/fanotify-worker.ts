// Worker thread of the fanotify watcher: answers every exec permission event of the marked
// filesystems. For each: the new image's path (readlink of the event fd), the watch rules, the pid
// written into its group's cgroup.procs when it matches — then ALWAYS FAN_ALLOW and close the
// event fd. The exec resumes only after the answer, so the new program starts inside its group.
//
// Safety rules (every exec on the host waits on this loop):
//   - never deny, never exec anything, never wait on the main thread (it may be the one exec'ing);
//   - the answer is written in `finally`: an exception while deciding still allows the exec;
//   - any failure of the loop itself closes the fanotify fd, which makes the kernel allow every
//     pending and future event; the main thread then falls back to the proc connector.
// The fd is closed here (not by the main thread) so that it is never closed while in use; the
// shared flag [3] tells the main thread it was, in case the worker is terminated instead.
import { parentPort, workerData } from 'node:worker_threads';
import { hrtime } from 'node:process';
import { FAN_OPEN_EXEC_PERM, FAN_Q_OVERFLOW, FanotifyReader, closeFd, setThreadNice, type FanEvent } from '../../sys/linux/fanotify.ts';
import { compileRules, type WatchRule } from './app-match.ts';
import { placeAs, type PlacerConfig } from './placer.ts';

const RING = 64; // = RING in watch-threads.ts
/**
 * Shared Int32Array slots (= FAN_SLOT in fanotify-watch.ts): stop, ring position, events answered, fd
 * closed, total µs spent deciding and answering (a counter modulo 2^32, for benchmarks),
 * heartbeat (one per loop turn: the main thread's watchdog), ring.
 */
const SLOT = { stop: 0, ringPos: 1, answered: 2, closed: 3, holdUs: 4, beat: 5, ring: 6 } as const;
/** The worker's nice value: every exec on the host waits until this thread runs (-10 = ahead of ordinary work). */
const NICE = -10;

interface Data {
  fd: number;
  rules: WatchRule[];
  placer: PlacerConfig;
  shared: SharedArrayBuffer;
}

const data = workerData as Data;
const port = parentPort!;
const shared = new Int32Array(data.shared);
const rules = compileRules(data.rules);
const reader = new FanotifyReader(data.fd);
const PERM = BigInt(FAN_OPEN_EXEC_PERM);
const OVERFLOW = BigInt(FAN_Q_OVERFLOW);
const events: FanEvent[] = [];
let fatal: string | null = null;

const raised = setThreadNice(NICE);
port.postMessage({ type: 'ready', raised });

function answer(ev: FanEvent): void {
  const t0 = hrtime.bigint();
  try {
    if ((ev.mask & PERM) !== 0n && ev.pid > 0) {
      const pos = Atomics.add(shared, SLOT.ringPos, 1) % RING;
      Atomics.store(shared, SLOT.ring + pos, ev.pid);
      const exe = reader.pathOf(ev.fd);
      const p = exe === null ? null : placeAs(ev.pid, exe, rules, data.placer);
      if (p) port.postMessage({ type: 'placed', ...p, latencyNs: Number(hrtime.bigint() - t0) });
    }
  } catch {
    // deciding failed: the exec is still allowed below; the rescan backstop may place it later
  } finally {
    if ((ev.mask & PERM) !== 0n) reader.allow(ev.fd);
    reader.closeEventFd(ev.fd);
    Atomics.add(shared, SLOT.answered, 1);
    Atomics.add(shared, SLOT.holdUs, Number((hrtime.bigint() - t0) / 1000n));
  }
}

while (Atomics.load(shared, SLOT.stop) === 0 && fatal === null) {
  Atomics.add(shared, SLOT.beat, 1);
  events.length = 0;
  try {
    reader.next(200, events);
  } catch (err) {
    // A read error or a malformed buffer: answer what was parsed, then give up (closing the fd
    // below releases anything left unanswered).
    fatal = (err as Error).message;
  }
  for (const ev of events) {
    if (ev.fd < 0) {
      if ((ev.mask & OVERFLOW) !== 0n) port.postMessage({ type: 'overrun', message: 'fanotify queue overflow (overflowed execs were allowed unseen)' });
      continue;
    }
    answer(ev);
  }
}
closeFd(data.fd);
Atomics.store(shared, SLOT.closed, 1);
port.postMessage(fatal === null ? { type: 'stopped' } : { type: 'fatal', message: fatal });
