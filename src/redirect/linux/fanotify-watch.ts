// The fanotify exec source of the process watcher (watcher.ts): the fanotify group, its worker
// thread (fanotify-worker.ts) that places each held exec and answers, the filesystem marks, and the
// watchdog that releases every held exec when the worker stops advancing. watcher.ts decides
// whether this source is used and what takes over when it dies (onDied).
//
// Order matters for the host: the group is created without marks, the worker starts reading, and
// only then are filesystems marked — no exec ever waits on a reader that does not exist yet.
import type { Worker } from 'node:worker_threads';
import { readFileSync } from 'node:fs';
import { groupFor, type CompiledRule, type WatchRule } from './app-match.ts';
import type { Placement, PlacerConfig } from './placer.ts';
import { dynamicLoaders, readExecMounts, reachablePath } from './exec-mounts.ts';
import { closeFd, fanotifyInit, ignoreFile, markFilesystem } from '../../sys/linux/fanotify.ts';
import { RING, probeExec, spawnWatchWorker } from './watch-threads.ts';

/** Slots of the worker's shared Int32Array (= SLOT in fanotify-worker.ts). */
const FAN_SLOT = { stop: 0, ringPos: 1, answered: 2, closed: 3, holdUs: 4, beat: 5, ring: 6 } as const;
/** The worker's loop must advance within this many ms (it polls every 200 ms), or it is replaced. */
const STALL_MS = 3000;

export interface FanotifyWatchOptions {
  /** For the worker (it compiles them itself). */
  rules: WatchRule[];
  /** The same rules compiled: the loaders a rule names keep their exec events. */
  compiled: CompiledRule[];
  placer: PlacerConfig;
  onPlaced(p: Placement & { latencyNs: number }): void;
  /** The worker's queue overran: events were lost (the caller rescans). */
  onOverrun(message: string | undefined): void;
  onError(err: Error): void;
  /**
   * The worker exited or gave up (a 'fatal' message: it closed the fd before saying so), or the
   * watchdog found it stuck. The fd is closed by then — that releases every exec waiting on it.
   * May be called more than once (fatal, then exit).
   */
  onDied(message: string): void;
}

/** Superblocks (kernel s_dev, hex as fdinfo prints it) that the fanotify fd holds a mark on. */
function markedDevs(fd: number): Set<string> {
  const out = new Set<string>();
  try {
    for (const m of readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8').matchAll(/^fanotify sdev:([0-9a-f]+) /gm)) out.add(m[1]!);
  } catch {
    // unreadable: everything is (re)marked, which is harmless
  }
  return out;
}

/** `major:minor` → the kernel's internal s_dev (MKDEV: major << 20 | minor) in hex. */
function kernelDev(dev: string): string {
  const [maj, min] = dev.split(':').map(Number) as [number, number];
  return (maj * 2 ** 20 + min).toString(16);
}

export class FanotifyWatch {
  readonly #opts: FanotifyWatchOptions;
  readonly #fd: number;
  readonly #shared: SharedArrayBuffer;
  #worker: Worker | null = null;
  /** Superblocks whose mark failed or whose mount point is hidden, with why (for status). */
  #unmarked: string[] = [];
  #marked = 0;
  /** ELF interpreters whose exec events are suppressed (none that a rule could match). */
  readonly #loaders: string[];
  /** Watchdog: the worker's last heartbeat seen, and since when it has not moved. */
  #beat = -1;
  #beatSince = Date.now();
  #watchdog: NodeJS.Timeout | null = null;

  /** Creates the fanotify group (no marks yet); throws when fanotify is unavailable. */
  constructor(opts: FanotifyWatchOptions) {
    this.#opts = opts;
    this.#fd = fanotifyInit();
    this.#loaders = dynamicLoaders().filter((p) => groupFor(opts.compiled, p) === null);
    this.#shared = new SharedArrayBuffer(4 * (FAN_SLOT.ring + RING));
  }

  /**
   * Starts the worker, the watchdog and the marks; true when a probe exec was held and answered.
   * Throws when the worker cannot start or no filesystem could be marked (the caller stops this).
   */
  async start(): Promise<boolean> {
    const w = spawnWatchWorker('fanotify-worker', { fd: this.#fd, rules: this.#opts.rules, placer: this.#opts.placer, shared: this.#shared });
    this.#worker = w;
    await new Promise<void>((resolve, reject) => {
      w.on('message', (m: { type: string; message?: string } & Placement & { latencyNs: number }) => {
        if (m.type === 'ready') resolve();
        else if (m.type === 'placed') this.#opts.onPlaced({ pid: m.pid, group: m.group, exe: m.exe, from: m.from, latencyNs: m.latencyNs });
        else if (m.type === 'overrun') this.#opts.onOverrun(m.message);
        else if (m.type === 'fatal') this.#died(`fanotify worker: ${m.message}`, false);
      });
      w.on('error', (err) => {
        this.#opts.onError(err);
        reject(err);
      });
      w.on('exit', () => {
        this.#died('fanotify worker exited', true);
        reject(new Error('fanotify worker exited'));
      });
    });
    this.#startWatchdog();
    this.markMounts();
    if (this.#marked === 0) throw new Error(`no filesystem could be marked (${this.#unmarked.join('; ')})`);
    return probeExec(this.#shared, FAN_SLOT.ring);
  }

  /**
   * A worker whose loop stops advancing (stuck in a kernel call, a bug) would hold every exec on
   * the host: it is terminated, and if that does not help the fd is closed, which allows them all.
   */
  #startWatchdog(): void {
    const slots = new Int32Array(this.#shared);
    this.#watchdog = setInterval(() => {
      const b = Atomics.load(slots, FAN_SLOT.beat);
      if (b !== this.#beat) {
        this.#beat = b;
        this.#beatSince = Date.now();
      } else if (Date.now() - this.#beatSince > 2 * STALL_MS) {
        // terminate() cannot interrupt a native call: if the worker is stuck inside one, close the
        // fd from here (a later write of the stuck thread then fails harmlessly or hits a reused
        // number — a lesser evil than every exec on the host waiting).
        this.#closeFdOnce();
        this.#died('fanotify worker stuck; its fd was closed', false);
      } else if (Date.now() - this.#beatSince > STALL_MS && this.#worker) void this.#worker.terminate();
    }, 500);
    this.#watchdog.unref();
  }

  /** Marks every program-holding filesystem that holds no mark yet (new mounts, re-created ones). */
  markMounts(): void {
    const have = markedDevs(this.#fd);
    const unmarked: string[] = [];
    for (const m of readExecMounts()) {
      if (have.has(kernelDev(m.dev))) continue;
      const path = reachablePath(m);
      if (path === null) {
        unmarked.push(`${m.mountPoint} (${m.fsType} ${m.dev}): hidden under another mount`);
        continue;
      }
      try {
        markFilesystem(this.#fd, path);
        have.add(kernelDev(m.dev));
      } catch (err) {
        unmarked.push(`${m.mountPoint} (${m.fsType}): ${(err as Error).message}`);
      }
    }
    this.#marked = have.size;
    this.#unmarked = unmarked;
    // Unless a rule names one, the dynamic loaders generate no events (one round trip per exec, not
    // two). Re-done every tick: an upgraded loader is a new inode without the ignore mark.
    for (const ld of this.#loaders) {
      try {
        ignoreFile(this.#fd, ld);
      } catch {
        // gone or unmarkable: its events are simply answered
      }
    }
  }

  /** The worker is gone (`exited`) or gave up: make sure the fd is closed, stop the watchdog, tell. */
  #died(message: string, exited: boolean): void {
    if (exited) this.#closeFdOnce();
    this.#stopWatchdog();
    this.#opts.onDied(message);
  }

  /** Closes the fd unless the worker (or an earlier call) did: the `closed` slot says which. */
  #closeFdOnce(): void {
    const slots = new Int32Array(this.#shared);
    if (Atomics.load(slots, FAN_SLOT.closed) !== 0) return;
    Atomics.store(slots, FAN_SLOT.closed, 1);
    closeFd(this.#fd);
  }

  #stopWatchdog(): void {
    if (this.#watchdog) clearInterval(this.#watchdog);
    this.#watchdog = null;
  }

  /** Stops the worker (terminated after 2 s) and closes the fd: no exec is held afterwards. */
  async stop(): Promise<void> {
    this.#stopWatchdog();
    const w = this.#worker;
    Atomics.store(new Int32Array(this.#shared), FAN_SLOT.stop, 1);
    if (w) {
      w.removeAllListeners('message');
      w.removeAllListeners('exit');
      await new Promise<void>((resolve) => {
        const t = setTimeout(() => void w.terminate().then(() => resolve()), 2000);
        w.once('exit', () => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    // The worker closes the fd on its way out; if it was terminated before that, close it here.
    this.#closeFdOnce();
  }

  /** The worker thread (tests terminate it to simulate a crash). */
  get worker(): Worker | null {
    return this.#worker;
  }

  /** Permission events the worker has answered so far. */
  get answered(): number {
    return Atomics.load(new Int32Array(this.#shared), FAN_SLOT.answered);
  }

  /** Total µs the worker spent deciding and answering (modulo 2^32; for benchmarks). */
  get holdUs(): number {
    return Atomics.load(new Int32Array(this.#shared), FAN_SLOT.holdUs) >>> 0;
  }

  /** Marked superblocks and the ones left out, for status. */
  get marks(): { marked: number; unmarked: string[] } {
    return { marked: this.#marked, unmarked: [...this.#unmarked] };
  }
}
