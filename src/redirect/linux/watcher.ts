// Process watcher: moves processes that match app rules into their groups as they exec.
//   1. netlink proc connector on a worker thread (exec events; placement in the worker);
//   2. a /proc rescan at start and every `rescanMs` (default 1000 ms) as a backstop: events lost
//      to an overrun, processes started before the watcher, or no connector at all (not in the
//      initial network namespace).
// Window: between exec and placement the process runs outside its group. With the connector it is
// one event delivery + readlink + write (measured: see docs/linux.md); when events are lost, up to
// one rescan interval. Connections opened in the window are reset after the move (onPlaced →
// SOCK_DESTROY) so they come back through the front door.
import { EventEmitter } from 'node:events';
import { Worker } from 'node:worker_threads';
import { spawn } from 'node:child_process';
import { statSync } from 'node:fs';
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { compileRules, type CompiledRule, type WatchRule } from './app-match.ts';
import { rescanAll, type Placement, type PlacerConfig } from './placer.ts';
import type { WatchStart } from '../types.ts';

export interface WatcherOptions {
  rules: WatchRule[];
  placer: PlacerConfig;
  rescanMs?: number;
  /** Use the netlink proc connector (default true; falls back to rescans when unavailable). */
  netlink?: boolean;
  /** Called for every placement (worker or rescan), e.g. to reset the process's TCP sockets. */
  onPlaced?: (p: Placement & { latencyNs?: number; via: 'netlink' | 'rescan' }) => void | Promise<void>;
  /**
   * Open the proc connector in this network namespace (e.g. `/proc/1/ns/net`) although the daemon
   * runs in another one: the worker thread enters it with setns() only to create the socket. For
   * tests that run the daemon in a namespace of their own; events then cover every process of the
   * pid namespace, so their rules must name unique programs.
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

/** Size of the ring of recent exec tgids the worker keeps in shared memory (for the probe). */
export const RING = 64;

export class ProcessWatcher extends EventEmitter {
  readonly #opts: WatcherOptions;
  readonly #rules: CompiledRule[];
  #worker: Worker | null = null;
  /** [0]: stop flag; [1]: ring position; [2..]: tgids of the most recent exec events. */
  #stop = new SharedArrayBuffer(4 * (2 + RING));
  #timer: NodeJS.Timeout | null = null;
  readonly latenciesNs: number[] = [];

  constructor(opts: WatcherOptions) {
    super();
    this.#opts = opts;
    this.#rules = compileRules(opts.rules);
  }

  async start(): Promise<WatchStart> {
    let netlink = false;
    let reason: string | undefined;
    if (this.#opts.netlink === false) reason = 'disabled';
    else if (this.#opts.connectorNetns === undefined && inInitialNetNamespace() === false) reason = 'not in the initial network namespace (the proc connector sends nothing here)';
    else {
      try {
        await this.#startWorker();
        if (await this.#probe()) netlink = true;
        else {
          reason = 'the proc connector delivered no exec event for a probe process (not the initial network namespace?)';
          await this.stop();
        }
      } catch (err) {
        reason = (err as Error).message;
        await this.stop();
      }
    }
    const initial = this.rescan().length;
    this.#timer = setInterval(() => this.rescan(), this.#opts.rescanMs ?? 1000);
    this.#timer.unref();
    return { netlink, initial, ...(reason === undefined ? {} : { reason }) };
  }

  #startWorker(): Promise<void> {
    const self = fileURLToPath(import.meta.url);
    const url = new URL(`./watcher-worker${extname(self)}`, import.meta.url);
    const workerData = { rules: this.#opts.rules, placer: this.#opts.placer, stop: this.#stop, ...(this.#opts.connectorNetns ? { connectorNetns: this.#opts.connectorNetns } : {}) };
    // Production runs the tsc build (.js). Under tsx (development, tests) a worker does not inherit
    // the loader hooks, so a tiny bootstrap registers tsx in the worker before importing the file.
    const w =
      extname(self) === '.ts'
        ? new Worker(`import('tsx/esm/api').then((m) => { m.register(); return import(${JSON.stringify(url.href)}); })`, { eval: true, workerData })
        : new Worker(url, { workerData });
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

  /** Execs `true` and waits for its exec event to show up in the worker's ring of recent execs. */
  async #probe(timeoutMs = 1000): Promise<boolean> {
    const shared = new Int32Array(this.#stop);
    const child = spawn('true', [], { stdio: 'ignore' });
    child.on('error', () => {});
    const pid = child.pid;
    if (pid === undefined) return false;
    const end = Date.now() + timeoutMs;
    while (Date.now() < end) {
      for (let i = 0; i < RING; i++) if (Atomics.load(shared, 2 + i) === pid) return true;
      await new Promise((r) => setTimeout(r, 10));
    }
    return false;
  }

  #placed(p: Placement & { latencyNs?: number; via: 'netlink' | 'rescan' }): void {
    this.emit('placed', p);
    const r = this.#opts.onPlaced?.(p);
    if (r instanceof Promise) r.catch((err: unknown) => this.emit('error', err));
  }

  rescan(): Placement[] {
    const placed = rescanAll(this.#rules, this.#opts.placer);
    for (const p of placed) this.#placed({ ...p, via: 'rescan' });
    return placed;
  }

  async stop(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
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
