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
import type { Worker } from 'node:worker_threads';
import { statSync } from 'node:fs';
import { compileRules, type CompiledRule, type WatchRule } from './app-match.ts';
import { rescanAll, type Placement, type PlacerConfig } from './placer.ts';
import { FanotifyWatch } from './fanotify-watch.ts';
import { RING, probeExec, spawnWatchWorker } from './watch-threads.ts';
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

export { RING };

export class ProcessWatcher extends EventEmitter {
  readonly #opts: WatcherOptions;
  readonly #rules: CompiledRule[];
  #worker: Worker | null = null;
  #fan: FanotifyWatch | null = null;
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
      ...(fan ? { marked: fan.marks.marked, ...(fan.marks.unmarked.length ? { unmarked: fan.marks.unmarked } : {}) } : {}),
    };
  }

  /** Proc connector; null when it runs, else why not. */
  async #startConnector(): Promise<string | null> {
    if (this.#opts.netlink === false) return 'proc connector disabled';
    if (this.#opts.connectorNetns === undefined && inInitialNetNamespace() === false) return 'not in the initial network namespace (the proc connector sends nothing here)';
    try {
      await this.#startWorker();
      if (await probeExec(this.#stop, 2)) return null;
      await this.#stopConnector();
      return 'the proc connector delivered no exec event for a probe process (not the initial network namespace?)';
    } catch (err) {
      await this.#stopConnector();
      return (err as Error).message;
    }
  }

  #tick(): void {
    this.#fan?.markMounts();
    this.rescan();
  }

  /** The fanotify source (fanotify-watch.ts); false when a probe exec was not held. */
  async #startFanotify(): Promise<boolean> {
    const fan: FanotifyWatch = new FanotifyWatch({
      rules: this.#opts.rules,
      compiled: this.#rules,
      placer: this.#opts.placer,
      onPlaced: (p) => {
        this.latenciesNs.push(p.latencyNs);
        this.#placed({ ...p, via: 'fanotify' });
      },
      onOverrun: (message) => {
        this.emit('overrun', message);
        this.rescan();
      },
      onError: (err) => this.emit('error', err),
      onDied: (message) => this.#fanotifyDied(fan, message),
    });
    this.#fan = fan;
    return fan.start();
  }

  /**
   * The fanotify source is gone (its fd is closed: no exec waits on it): fall back to the connector
   * (or rescans). While start() still runs, start() decides what comes next.
   */
  #fanotifyDied(fan: FanotifyWatch, message: string): void {
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
    await fan.stop();
  }

  #startWorker(): Promise<void> {
    Atomics.store(new Int32Array(this.#stop), 0, 0);
    const workerData = { rules: this.#opts.rules, placer: this.#opts.placer, stop: this.#stop, ...(this.#opts.connectorNetns ? { connectorNetns: this.#opts.connectorNetns } : {}) };
    const w = spawnWatchWorker('watcher-worker', workerData);
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
    return this.#fan?.answered ?? 0;
  }

  /** Total µs the fanotify worker spent deciding and answering (modulo 2^32; for benchmarks). */
  get holdUs(): number {
    return this.#fan?.holdUs ?? 0;
  }

  /** Marked superblocks and the ones left out (fanotify mode), for status. */
  get marks(): { marked: number; unmarked: string[] } | null {
    return this.#fan?.marks ?? null;
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
