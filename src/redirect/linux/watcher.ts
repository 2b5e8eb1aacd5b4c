// Process watcher: moves processes that match app rules into their groups as they exec.
//   1. fanotify exec permission events (FAN_OPEN_EXEC_PERM) on a worker thread: the kernel holds each
//      exec of a file on a marked filesystem until the worker has placed the process and answered,
//      so a matched program's first instruction already runs in its group — no window. Marks cover
//      every filesystem of this mount namespace that can hold programs (exec-mounts.ts), re-checked
//      at every rescan tick for new mounts.
//   2. When fanotify is unavailable (no CONFIG_FANOTIFY_ACCESS_PERMISSIONS, no CAP_SYS_ADMIN, or
//      disabled): the netlink proc connector on a worker thread (exec events; placement in the worker).
//   3. A /proc rescan at start and every `rescanMs` (default 1000 ms) as a backstop: events lost to
//      an overrun, processes started before the watcher, programs on filesystems that are not marked,
//      or neither event source at all.
// Window: zero with fanotify. With the connector, between exec and placement the process runs outside
// its group for one event delivery + readlink + write (measured: see docs/linux.md); when events are
// lost, up to one rescan interval. Connections opened in the window are reset after the move
// (onPlaced → SOCK_DESTROY) so they come back through the front door.
import { EventEmitter } from 'node:events';
import { Worker } from 'node:worker_threads';
import { spawn } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { compileRules, groupFor, type CompiledRule, type WatchRule } from './app-match.ts';
import { rescanAll, type Placement, type PlacerConfig } from './placer.ts';
import { dynamicLoaders, readExecMounts, reachablePath } from './exec-mounts.ts';
import { closeFd, fanotifyInit, ignoreFile, markFilesystem } from '../../sys/linux/fanotify.ts';
import type { WatchStart, WatcherMode } from '../types.ts';

export type PlacedVia = 'fanotify' | 'netlink' | 'rescan';

export interface WatcherOptions {
  rules: WatchRule[];
  placer: PlacerConfig;
  rescanMs?: number;
  /** Use fanotify exec permission events (default true; falls back to the connector when unavailable). */
  fanotify?: boolean;
  /** Use the netlink proc connector when fanotify is off or unavailable (default true). */
  netlink?: boolean;
  /**
   * Called for every placement (worker or rescan), e.g. to reset the process's TCP sockets.
   * `latencyNs`: netlink — exec to placed; fanotify — how long the worker held the exec.
   */
  onPlaced?: (p: Placement & { latencyNs?: number; via: PlacedVia }) => void | Promise<void>;
  /**
   * Open the proc connector in this network namespace (e.g. `/proc/1/ns/net`) although the daemon
   * runs in another one: the worker thread enters it with setns() only to create the socket. For
   * tests that run the daemon in a namespace of their own; events then cover every process of the
   * pid namespace, so their rules must name unique programs. (fanotify needs no such thing: its
   * marks belong to filesystems, not to network namespaces.)
   */
  connectorNetns?: string;
}

export type { WatchStart as WatcherStart } from '../types.ts';

/**
 * The connector only delivers events in the initial network namespace. true/false when
 * /proc/1/ns/net is readable; null when it is not (hardened /proc): then start() finds out by
 * probing (it execs `true` and waits for the event).
 */
export function inInitialNetNamespace(): boolean | null {
  try {
    return statSync('/proc/self/ns/net').ino === statSync('/proc/1/ns/net').ino;
  } catch {
    return null;
  }
}

/** Size of the ring of recent exec tgids the workers keep in shared memory (for the probe). */
export const RING = 64;
/** Slots of the fanotify worker's shared Int32Array (= SLOT in fanotify-worker.ts). */
const FAN_SLOT = { stop: 0, ringPos: 1, answered: 2, closed: 3, holdUs: 4, beat: 5, ring: 6 } as const;
/** The fanotify worker's loop must advance within this many ms (it polls every 200 ms), or it is replaced. */
const STALL_MS = 3000;

interface Fan {
  fd: number;
  shared: SharedArrayBuffer;
  worker: Worker | null;
  /** Superblocks whose mark failed or whose mount point is hidden, with why (for status). */
  unmarked: string[];
  marked: number;
  /** ELF interpreters whose exec events are suppressed (none that a rule could match). */
  loaders: string[];
  /** Watchdog: the worker's last heartbeat seen, and since when it has not moved. */
  beat: number;
  beatSince: number;
  watchdog: NodeJS.Timeout | null;
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

export class ProcessWatcher extends EventEmitter {
  readonly #opts: WatcherOptions;
  readonly #rules: CompiledRule[];
  #worker: Worker | null = null;
  #fan: Fan | null = null;
  /** [0]: stop flag; [1]: ring position; [2..]: tgids of the most recent exec events. */
  #stop = new SharedArrayBuffer(4 * (2 + RING));
  #timer: NodeJS.Timeout | null = null;
  readonly latenciesNs: number[] = [];
  /** Which exec event source is in use now (it can drop to netlink/rescan if fanotify fails). */
  mode: WatcherMode = 'rescan';
  reason: string | undefined;

  constructor(opts: WatcherOptions) {
    super();
    this.#opts = opts;
    this.#rules = compileRules(opts.rules);
  }

  async start(): Promise<WatchStart> {
    const why: string[] = [];
    if (this.#opts.fanotify === false) why.push('fanotify disabled');
    else {
      try {
        if (await this.#startFanotify()) this.mode = 'fanotify';
        else {
          why.push('fanotify: no permission event for a probe exec');
          await this.#stopFanotify();
        }
      } catch (err) {
        why.push(`fanotify: ${(err as Error).message}`);
        await this.#stopFanotify();
      }
    }
    if (this.mode === 'rescan') {
      const r = await this.#startConnector();
      if (r === null) this.mode = 'netlink';
      else why.push(r);
    }
    this.reason = why.length > 0 ? why.join('; ') : undefined;
    const initial = this.rescan().length;
    this.#timer = setInterval(() => this.#tick(), this.#opts.rescanMs ?? 1000);
    this.#timer.unref();
    const fan = this.#fan;
    return {
      netlink: this.mode !== 'rescan',
      mode: this.mode,
      initial,
      ...(this.reason === undefined ? {} : { reason: this.reason }),
      ...(fan ? { marked: fan.marked, ...(fan.unmarked.length ? { unmarked: fan.unmarked } : {}) } : {}),
    };
  }

  /** Proc connector; null when it runs, else why not. */
  async #startConnector(): Promise<string | null> {
    if (this.#opts.netlink === false) return 'proc connector disabled';
    if (this.#opts.connectorNetns === undefined && inInitialNetNamespace() === false) return 'not in the initial network namespace (the proc connector sends nothing here)';
    try {
      await this.#startWorker();
      if (await this.#probe(this.#stop, 2)) return null;
      await this.#stopConnector();
      return 'the proc connector delivered no exec event for a probe process (not the initial network namespace?)';
    } catch (err) {
      await this.#stopConnector();
      return (err as Error).message;
    }
  }

  #tick(): void {
    if (this.#fan) this.#markMounts(this.#fan);
    this.rescan();
  }

  #spawnWorker(name: string, workerData: unknown): Worker {
    const self = fileURLToPath(import.meta.url);
    const url = new URL(`./${name}${extname(self)}`, import.meta.url);
    // Production runs the tsc build (.js). Under tsx (development, tests) a worker does not inherit
    // the loader hooks, so a tiny bootstrap registers tsx in the worker before importing the file.
    return extname(self) === '.ts'
      ? new Worker(`import('tsx/esm/api').then((m) => { m.register(); return import(${JSON.stringify(url.href)}); })`, { eval: true, workerData })
      : new Worker(url, { workerData });
  }

  /**
   * Order matters for the host: the group is created without marks, the worker starts reading, and
   * only then are filesystems marked — no exec ever waits on a reader that does not exist yet.
   */
  async #startFanotify(): Promise<boolean> {
    const fd = fanotifyInit();
    const loaders = dynamicLoaders().filter((p) => groupFor(this.#rules, p) === null);
    const fan: Fan = { fd, shared: new SharedArrayBuffer(4 * (FAN_SLOT.ring + RING)), worker: null, unmarked: [], marked: 0, loaders, beat: -1, beatSince: Date.now(), watchdog: null };
    this.#fan = fan;
    const w = this.#spawnWorker('fanotify-worker', { fd, rules: this.#opts.rules, placer: this.#opts.placer, shared: fan.shared });
    fan.worker = w;
    await new Promise<void>((resolve, reject) => {
      w.on('message', (m: { type: string; message?: string } & Placement & { latencyNs: number }) => {
        if (m.type === 'ready') resolve();
        else if (m.type === 'placed') {
          this.latenciesNs.push(m.latencyNs);
          this.#placed({ pid: m.pid, group: m.group, exe: m.exe, from: m.from, latencyNs: m.latencyNs, via: 'fanotify' });
        } else if (m.type === 'overrun') {
          this.emit('overrun', m.message);
          this.rescan();
        } else if (m.type === 'fatal') this.#fanotifyDied(fan, `fanotify worker: ${m.message}`, false);
      });
      w.on('error', (err) => {
        this.emit('error', err);
        reject(err);
      });
      w.on('exit', () => {
        this.#fanotifyDied(fan, 'fanotify worker exited', true);
        reject(new Error('fanotify worker exited'));
      });
    });
    // Watchdog: a worker whose loop stops advancing (stuck in a kernel call, a bug) would hold every
    // exec on the host; it is terminated and the fd closed, which allows them all.
    fan.watchdog = setInterval(() => {
      const b = Atomics.load(new Int32Array(fan.shared), FAN_SLOT.beat);
      if (b !== fan.beat) {
        fan.beat = b;
        fan.beatSince = Date.now();
      } else if (Date.now() - fan.beatSince > 2 * STALL_MS) {
        // terminate() cannot interrupt a native call: if the worker is stuck inside one, close the
        // fd from here (a later write of the stuck thread then fails harmlessly or hits a reused
        // number — a lesser evil than every exec on the host waiting).
        if (Atomics.load(new Int32Array(fan.shared), FAN_SLOT.closed) === 0) {
          Atomics.store(new Int32Array(fan.shared), FAN_SLOT.closed, 1);
          closeFd(fan.fd);
        }
        this.#fanotifyDied(fan, 'fanotify worker stuck; its fd was closed', false);
      } else if (Date.now() - fan.beatSince > STALL_MS && fan.worker) void fan.worker.terminate();
    }, 500);
    fan.watchdog.unref();
    this.#markMounts(fan);
    if (fan.marked === 0) throw new Error(`no filesystem could be marked (${fan.unmarked.join('; ')})`);
    return this.#probe(fan.shared, FAN_SLOT.ring);
  }

  /** Marks every program-holding filesystem that holds no mark yet (new mounts, re-created ones). */
  #markMounts(fan: Fan): void {
    const have = markedDevs(fan.fd);
    const unmarked: string[] = [];
    for (const m of readExecMounts()) {
      if (have.has(kernelDev(m.dev))) continue;
      const path = reachablePath(m);
      if (path === null) {
        unmarked.push(`${m.mountPoint} (${m.fsType} ${m.dev}): hidden under another mount`);
        continue;
      }
      try {
        markFilesystem(fan.fd, path);
        have.add(kernelDev(m.dev));
      } catch (err) {
        unmarked.push(`${m.mountPoint} (${m.fsType}): ${(err as Error).message}`);
      }
    }
    fan.marked = have.size;
    fan.unmarked = unmarked;
    // Unless a rule names one, the dynamic loaders generate no events (one round trip per exec, not
    // two). Re-done every tick: an upgraded loader is a new inode without the ignore mark.
    for (const ld of fan.loaders) {
      try {
        ignoreFile(fan.fd, ld);
      } catch {
        // gone or unmarkable: its events are simply answered
      }
    }
  }

  /**
   * The fanotify worker is gone (`exited`) or gave up (a 'fatal' message: it closed the fd before
   * saying so): make sure the fd is closed — that releases every exec waiting on it — and fall back
   * to the connector (or rescans).
   */
  #fanotifyDied(fan: Fan, message: string, exited: boolean): void {
    if (exited && Atomics.load(new Int32Array(fan.shared), FAN_SLOT.closed) === 0) {
      Atomics.store(new Int32Array(fan.shared), FAN_SLOT.closed, 1);
      closeFd(fan.fd);
    }
    if (fan.watchdog) clearInterval(fan.watchdog);
    fan.watchdog = null;
    if (this.#fan !== fan) return;
    this.#fan = null;
    if (this.mode !== 'fanotify') return; // still starting: start() decides what comes next
    this.mode = 'rescan';
    this.reason = message;
    this.emit('error', new Error(message));
    void this.#startConnector().then((r) => {
      if (r === null && this.#timer !== null) this.mode = 'netlink';
      else if (r !== null) this.reason = `${message}; ${r}`;
    });
  }

  async #stopFanotify(): Promise<void> {
    const fan = this.#fan;
    if (!fan) return;
    this.#fan = null;
    if (fan.watchdog) clearInterval(fan.watchdog);
    fan.watchdog = null;
    const w = fan.worker;
    const shared = new Int32Array(fan.shared);
    Atomics.store(shared, FAN_SLOT.stop, 1);
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
    if (Atomics.load(shared, FAN_SLOT.closed) === 0) {
      Atomics.store(shared, FAN_SLOT.closed, 1);
      closeFd(fan.fd);
    }
  }

  #startWorker(): Promise<void> {
    Atomics.store(new Int32Array(this.#stop), 0, 0);
    const workerData = { rules: this.#opts.rules, placer: this.#opts.placer, stop: this.#stop, ...(this.#opts.connectorNetns ? { connectorNetns: this.#opts.connectorNetns } : {}) };
    const w = this.#spawnWorker('watcher-worker', workerData);
    this.#worker = w;
    return new Promise((resolve, reject) => {
      w.on('message', (m: { type: string; message?: string } & Placement & { latencyNs: number }) => {
        if (m.type === 'ready') resolve();
        else if (m.type === 'error') reject(new Error(`proc connector: ${m.message}`));
        else if (m.type === 'overrun') {
          this.emit('overrun', m.message);
          this.rescan();
        } else if (m.type === 'placed') {
          this.latenciesNs.push(m.latencyNs);
          this.#placed({ pid: m.pid, group: m.group, exe: m.exe, from: m.from, latencyNs: m.latencyNs, via: 'netlink' });
        }
      });
      w.on('error', (err) => {
        this.emit('error', err);
        reject(err);
      });
      w.on('exit', () => {
        if (this.#worker === w) this.#worker = null;
        reject(new Error('watcher worker exited'));
      });
    });
  }

  /** Execs `true` and waits for its exec event to show up in a worker's ring of recent execs. */
  async #probe(buf: SharedArrayBuffer, ringAt: number, timeoutMs = 2000): Promise<boolean> {
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

  #placed(p: Placement & { latencyNs?: number; via: PlacedVia }): void {
    this.emit('placed', p);
    const r = this.#opts.onPlaced?.(p);
    if (r instanceof Promise) r.catch((err: unknown) => this.emit('error', err));
  }

  rescan(): Placement[] {
    const placed = rescanAll(this.#rules, this.#opts.placer);
    for (const p of placed) this.#placed({ ...p, via: 'rescan' });
    return placed;
  }

  /** For tests: the fanotify worker thread (terminating it simulates a crash of the worker). */
  get fanotifyWorker(): Worker | null {
    return this.#fan?.worker ?? null;
  }

  /** Permission events the fanotify worker has answered so far (0 when not in fanotify mode). */
  get answered(): number {
    return this.#fan ? Atomics.load(new Int32Array(this.#fan.shared), FAN_SLOT.answered) : 0;
  }

  /** Total µs the fanotify worker spent deciding and answering (modulo 2^32; for benchmarks). */
  get holdUs(): number {
    return this.#fan ? Atomics.load(new Int32Array(this.#fan.shared), FAN_SLOT.holdUs) >>> 0 : 0;
  }

  /** Marked superblocks and the ones left out (fanotify mode), for status. */
  get marks(): { marked: number; unmarked: string[] } | null {
    return this.#fan ? { marked: this.#fan.marked, unmarked: [...this.#fan.unmarked] } : null;
  }

  async stop(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    await this.#stopFanotify();
    await this.#stopConnector();
  }

  async #stopConnector(): Promise<void> {
    const w = this.#worker;
    if (!w) return;
    w.removeAllListeners('message');
    Atomics.store(new Int32Array(this.#stop), 0, 1);
    this.#worker = null;
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => void w.terminate().then(() => resolve()), 2000);
      w.once('exit', () => {
        clearTimeout(t);
        resolve();
      });
    });
  }
}
