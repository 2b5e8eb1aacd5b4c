// The Linux UDP fast path, main-thread side. A UDP listener whose socket is made with libc and read
// by a worker thread (fast-worker.ts) with recvmmsg/sendmmsg: cache hits are answered there from a
// replica of the answer cache, many per system call; everything else comes here and goes through
// Forwarder.handle unchanged, answered with sendto on the same socket.
//
// The replica is fed by the forwarder (HitReplica): an entry is offered when it is cached or
// served here, with the time until which no binding hook has to run for it; drops and clears
// follow. If the worker dies it is restarted (its replica starts empty and refills as hits come
// through here); after MAX_DEATHS deaths within DEATH_WINDOW_MS the listener gives up the fast
// path and binds a Node dgram socket on the same address instead. Either way it is logged: DNS
// never silently stops.
import { Worker } from 'node:worker_threads';
import { DnsError } from './errors.ts';
import { closeFd, openUdp, sendTo, shutdownUdp } from '../sys/linux/udp-batch.ts';
import type { Prepared } from './cache.ts';
import { CONTROL, CONTROL_COUNT, STAT, STAT_COUNT } from './fast-proto.ts';
import type { FastWorkerData, ToMain, ToWorker } from './fast-proto.ts';
import type { DnsLog, HitReplica } from './forwarder.ts';

export type FastHandler = (msg: Buffer, client: string, udp: boolean, limited: boolean) => Buffer | null | Promise<Buffer | null>;

export interface FastPathOptions {
  /** Cache size ([dns] cache max_entries): bounds the replica too. */
  maxEntries: number;
  /** [dns] rate_limit: the worker applies it to every UDP query it reads. */
  rateLimit: number;
  /** Datagrams per recvmmsg/sendmmsg call. */
  batch?: number;
  /** How long the worker blocks in recvmmsg before it looks at its mailbox again. */
  recvTimeoutMs?: number;
  /** How long start() waits for the worker to load. */
  startTimeoutMs?: number;
}

export interface FastPathStats {
  listeners: number;
  hits: number;
  forwarded: number;
  rateLimited: number;
  dropped: number;
  batches: number;
  datagrams: number;
  replicaEntries: number;
  /** Datagrams the worker dropped because the main thread was MAX_QUEUED behind. */
  overflow: number;
  restarts: number;
  fallbacks: number;
}

const MAX_DEATHS = 3;
const DEATH_WINDOW_MS = 60_000;
// Source of the worker: .ts under tsx or Node's type stripping, .js in the tsc build.
const WORKER_URL = new URL(import.meta.url.endsWith('.ts') ? './fast-worker.ts' : './fast-worker.js', import.meta.url);

/**
 * A Worker running fast-worker. From TypeScript sources under tsx (tests, benchmarks), a worker
 * does not inherit tsx's loader on Node 20 even with `--import tsx` in execArgv: a small
 * bootstrap registers it in the worker first. The tsc build runs the .js directly.
 */
function newWorker(data: FastWorkerData): Worker {
  if (WORKER_URL.pathname.endsWith('.ts')) {
    let api: string | null = null;
    try {
      api = import.meta.resolve('tsx/esm/api');
    } catch {
      api = null; // no tsx: Node's own type stripping (22.18+, 24) loads .ts
    }
    if (api !== null) {
      const boot = `import(${JSON.stringify(api)}).then((m) => { m.register(); return import(${JSON.stringify(WORKER_URL.href)}); })`;
      return new Worker(boot, { eval: true, workerData: data });
    }
  }
  return new Worker(WORKER_URL, { workerData: data });
}

/** The forwarder's HitReplica: fans entries out to every fast listener (IPv4 and IPv6). */
export class FastReplicas implements HitReplica {
  readonly #listeners = new Set<FastUdp>();
  /** Bumped whenever a replica may have lost entries (clear, worker restart): entries are offered again. */
  #gen = 0;
  #restarts = 0;
  #fallbacks = 0;
  #gone: FastPathStats = { listeners: 0, hits: 0, forwarded: 0, rateLimited: 0, dropped: 0, batches: 0, datagrams: 0, replicaEntries: 0, overflow: 0, restarts: 0, fallbacks: 0 };

  /** Told of replica entries that answered hits (the forwarder refreshes them in its LRU). */
  onTouch: ((key: string) => void) | null = null;

  get size(): number {
    return this.#listeners.size;
  }

  add(l: FastUdp): void {
    this.#listeners.add(l);
  }

  /** A listener stopped (closed or fell back): keep its counts in the totals. */
  remove(l: FastUdp, fellBack: boolean): void {
    if (!this.#listeners.delete(l)) return;
    const s = l.counters();
    for (const k of ['hits', 'forwarded', 'rateLimited', 'dropped', 'batches', 'datagrams', 'overflow'] as const) this.#gone[k] += s[k];
    if (fellBack) this.#fallbacks++;
  }

  restarted(): void {
    this.#restarts++;
    this.#gen++;
  }

  offer(p: Prepared, until: number): void {
    if (p.replicaGen === this.#gen && p.replicaUntil === until) return;
    if (this.#listeners.size === 0 || p.keyBytes === null) return;
    p.replicaGen = this.#gen;
    p.replicaUntil = until;
    // Copies: p.bytes and keyBytes may be views of larger buffers, which a clone would copy whole.
    const m: ToWorker = {
      t: 'put',
      key: p.key,
      keyBytes: new Uint8Array(p.keyBytes),
      hash: p.hash,
      bytes: new Uint8Array(p.bytes),
      ttlOffsets: p.ttlOffsets,
      ttls: p.ttls,
      optStart: p.optStart,
      storedAt: p.storedAt,
      until,
    };
    for (const l of this.#listeners) l.post(m);
  }

  drop(p: Prepared): void {
    if (p.replicaGen < 0 || p.keyBytes === null) return; // never offered
    const m: ToWorker = { t: 'del', key: p.key, hash: p.hash };
    for (const l of this.#listeners) l.post(m);
  }

  clear(): void {
    this.#gen++;
    for (const l of this.#listeners) l.post({ t: 'clear' });
  }

  stats(): FastPathStats {
    const t: FastPathStats = { ...this.#gone, listeners: this.#listeners.size, replicaEntries: 0, restarts: this.#restarts, fallbacks: this.#fallbacks };
    for (const l of this.#listeners) {
      const s = l.counters();
      for (const k of ['hits', 'forwarded', 'rateLimited', 'dropped', 'batches', 'datagrams', 'overflow'] as const) t[k] += s[k];
      t.replicaEntries += s.replicaEntries;
    }
    return t;
  }
}

/** One fast UDP listener: the socket (owned here), its worker, and the way back to dgram. */
export class FastUdp {
  readonly port: number;
  readonly #host: string;
  #fd: number;
  #worker: Worker | null = null;
  readonly #handler: FastHandler;
  readonly #log: DnsLog;
  readonly #opts: FastPathOptions;
  readonly #replicas: FastReplicas;
  readonly #fallback: () => Promise<void>;
  readonly #stats = new SharedArrayBuffer(8 * STAT_COUNT);
  readonly #counts = new Float64Array(this.#stats);
  #control = new SharedArrayBuffer(4 * CONTROL_COUNT);
  #controlView = new Int32Array(this.#control);
  #deaths: number[] = [];
  #closing = false;
  #started = false;
  #ready = false;
  #exited: Promise<void> = Promise.resolve();

  private constructor(host: string, fd: number, port: number, handler: FastHandler, log: DnsLog, opts: FastPathOptions, replicas: FastReplicas, fallback: () => Promise<void>) {
    this.#host = host;
    this.#fd = fd;
    this.port = port;
    this.#handler = handler;
    this.#log = log;
    this.#opts = opts;
    this.#replicas = replicas;
    this.#fallback = fallback;
  }

  /**
   * Binds `host:port` with libc and starts the worker; resolves once it runs. Throws (having
   * released everything) when any step fails: the caller then uses a dgram socket.
   * `fallback`: binds a dgram socket on host:port (the port now known) if the worker keeps dying.
   */
  static async start(
    host: string,
    port: number,
    handler: FastHandler,
    log: DnsLog,
    opts: FastPathOptions,
    replicas: FastReplicas,
    fallback: (port: number) => Promise<void>,
  ): Promise<FastUdp> {
    const s = openUdp(host, port, { bufferBytes: 1 << 20, recvTimeoutMs: opts.recvTimeoutMs ?? 100 });
    const l = new FastUdp(host, s.fd, s.port, handler, log, opts, replicas, () => fallback(s.port));
    try {
      await l.#spawn(opts.startTimeoutMs ?? 15_000);
    } catch (err) {
      await l.#stopWorker();
      closeFd(s.fd);
      l.#fd = -1;
      throw err;
    }
    l.#started = true;
    replicas.add(l);
    return l;
  }

  /** Starts a worker on the socket; resolves when it reports ready (rejects if it dies first). */
  #spawn(readyTimeoutMs: number): Promise<void> {
    this.#control = new SharedArrayBuffer(4 * CONTROL_COUNT);
    this.#controlView = new Int32Array(this.#control);
    const data: FastWorkerData = {
      fd: this.#fd,
      batch: this.#opts.batch ?? 64,
      maxEntries: Math.max(1, this.#opts.maxEntries),
      rateLimit: this.#opts.rateLimit,
      stats: this.#stats,
      control: this.#control,
    };
    const w = newWorker(data);
    const control = new Int32Array(this.#control);
    this.#worker = w;
    this.#ready = false;
    let lastErr: unknown = null;
    let ready = false;
    this.#exited = new Promise<void>((resolve) => w.once('exit', () => resolve()));
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new DnsError('SY_ERR_DNS_FAST_PATH', `fast path worker not ready after ${readyTimeoutMs} ms`)), readyTimeoutMs);
      w.on('message', (m: ToMain) => {
        if (m.t === 'q') this.#answer(m.buf, control);
        else if (m.t === 'touch') this.#touch(m.keys);
        else if (m.t === 'ready') {
          ready = true;
          if (this.#worker === w) this.#ready = true;
          clearTimeout(timer);
          resolve();
        }
      });
      w.on('error', (err) => {
        lastErr = err;
      });
      w.once('exit', (code) => {
        clearTimeout(timer);
        if (this.#worker === w) {
          this.#worker = null;
          this.#ready = false;
        }
        if (!ready) reject(new DnsError('SY_ERR_DNS_FAST_PATH', `fast path worker exited before it was ready (code ${code}): ${String((lastErr as Error)?.message ?? lastErr)}`, lastErr));
        // Once the listener has started, any exit it did not ask for is a death.
        if (this.#started && !this.#closing && this.#fd >= 0) this.#died(code, lastErr);
      });
    });
  }

  /** The worker stopped while the listener runs: restart it, or after too many deaths, fall back. */
  #died(code: number, err: unknown): void {
    const now = Date.now();
    this.#deaths = this.#deaths.filter((t) => now - t < DEATH_WINDOW_MS);
    this.#deaths.push(now);
    if (this.#deaths.length > MAX_DEATHS) {
      this.#log.error({ err, code, host: this.#host, port: this.port }, `dns: fast path worker died ${this.#deaths.length} times in ${DEATH_WINDOW_MS / 1000} s; answering through a dgram socket instead`);
      this.#replicas.remove(this, true);
      const fd = this.#fd;
      this.#fd = -1;
      closeFd(fd);
      this.#fallback().then(
        () => this.#log.warn({ host: this.#host, port: this.port }, 'dns: udp listener back on a dgram socket'),
        (e: unknown) => this.#log.error({ err: e, host: this.#host, port: this.port }, 'dns: udp listener could not fall back to a dgram socket; UDP DNS is down on this address'),
      );
      return;
    }
    this.#log.error({ err, code, host: this.#host, port: this.port }, 'dns: fast path worker died; restarting it');
    this.#replicas.restarted();
    this.#spawn(this.#opts.startTimeoutMs ?? 15_000).catch((e: unknown) => this.#log.warn({ err: e }, 'dns: fast path worker restart failed'));
  }

  /**
   * Answers the queries the worker passed on, on the same socket. `buf` holds, per query, its
   * length (u16), its sender's sockaddr length (u8), the sockaddr, the query. The client address
   * is not formatted: the worker applied the rate limit, the only use of it.
   */
  #answer(buf: ArrayBuffer, control: Int32Array): void {
    const b = Buffer.from(buf);
    let taken = 0;
    for (let p = 0; p + 3 <= b.length; ) {
      const len = (b[p]! << 8) | b[p + 1]!;
      const nl = b[p + 2]!;
      if (p + 3 + nl + len > b.length) break; // cannot happen: the worker packed it
      const addr = b.subarray(p + 3, p + 3 + nl);
      const msg = b.subarray(p + 3 + nl, p + 3 + nl + len);
      p += 3 + nl + len;
      taken++;
      let r: Buffer | null | Promise<Buffer | null>;
      try {
        r = this.#handler(msg, '', true, true);
      } catch (err) {
        this.#log.error({ err }, 'dns: handler threw');
        continue;
      }
      if (r instanceof Promise) r.then((out) => this.#send(out, addr), (err) => this.#log.error({ err }, 'dns: handler failed'));
      else this.#send(r, addr);
    }
    // Taken up: misses now wait in the forwarder, which bounds them itself (MAX_INFLIGHT).
    Atomics.sub(control, CONTROL.queued, taken);
  }

  #send(out: Buffer | null, addr: Uint8Array): void {
    // fd -1: closed or fallen back; never write to a number the kernel may have reused.
    if (out === null || this.#fd < 0) return;
    if (!sendTo(this.#fd, out, addr)) this.#log.debug({}, 'dns: udp send failed');
  }

  #touch(keys: string[]): void {
    const f = this.#replicas.onTouch;
    if (f) for (const k of keys) f(k);
  }

  post(m: ToWorker): void {
    const w = this.#worker;
    if (w === null) return;
    w.postMessage(m);
    // After the message is queued, so a worker that sees the count also finds the message.
    Atomics.add(this.#controlView, CONTROL.posted, 1);
  }

  counters(): Omit<FastPathStats, 'listeners' | 'restarts' | 'fallbacks'> {
    const c = this.#counts;
    return {
      hits: c[STAT.hits]!,
      forwarded: c[STAT.forwarded]!,
      rateLimited: c[STAT.rateLimited]!,
      dropped: c[STAT.dropped]!,
      batches: c[STAT.batches]!,
      datagrams: c[STAT.datagrams]!,
      replicaEntries: c[STAT.entries]!,
      overflow: c[STAT.overflow]!,
    };
  }

  /** For tests: makes the worker throw, as a bug in it would. */
  crashWorkerForTest(): void {
    this.post({ t: 'crash' });
  }

  /** For tests: ends the worker abruptly. */
  terminateWorkerForTest(): Promise<number> {
    return this.#worker?.terminate() ?? Promise.resolve(0);
  }

  /** True while a worker is running and has said it is ready. */
  get workerReady(): boolean {
    return this.#ready;
  }

  /** True while a worker answers on this listener (false after a fallback to dgram). */
  get active(): boolean {
    return this.#fd >= 0;
  }

  async #stopWorker(): Promise<void> {
    const w = this.#worker;
    if (!w) return;
    Atomics.store(new Int32Array(this.#control), CONTROL.stop, 1);
    if (this.#fd >= 0) shutdownUdp(this.#fd); // wakes recvmmsg
    const t = setTimeout(() => void w.terminate(), 2000);
    await this.#exited;
    clearTimeout(t);
  }

  async close(): Promise<void> {
    if (this.#closing) return;
    this.#closing = true;
    this.#replicas.remove(this, false);
    await this.#stopWorker();
    if (this.#fd >= 0) {
      closeFd(this.#fd);
      this.#fd = -1;
    }
  }
}
