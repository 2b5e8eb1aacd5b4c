// The Linux UDP fast path, main-thread side: one fast UDP listener (FastUdp). Its socket is made
// with libc and shared by two readers: a Node dgram socket on the main thread (it adopts the
// descriptor) and a worker thread (fast-worker.ts) reading it with recvmmsg/sendmmsg. Exactly one
// of them reads at a time: the main thread at low load, the worker when queries queue up
// (fast-handover.ts). Under the worker, cache hits are answered there from a replica of the answer
// cache, many per system call; everything else is passed back here and goes through
// Forwarder.handle, answered with sendto on the same socket.
//
// The replica is fed by the forwarder (HitReplica, fast-replicas.ts): an entry is offered when it
// is cached or served here, with the time until which no binding hook has to run for it; drops
// and clears follow. If the worker dies the main thread reads while it is restarted (its replica
// starts empty and refills as hits come through here); after too many deaths (fast-spawn.ts
// newDeathBudget) the listener stays on its dgram socket. Either way it is logged: DNS never silently
// stops.
import { createSocket } from 'node:dgram';
import type { RemoteInfo, Socket as UdpSocket } from 'node:dgram';
import type { Worker } from 'node:worker_threads';
import { DnsError } from './errors.ts';
import { closeFd, openUdp, sendTo, shutdownUdp } from '../sys/linux/udp-batch.ts';
import { ReaderSwitch } from './fast-handover.ts';
import { CONTROL, CONTROL_COUNT, STAT, STAT_COUNT } from './fast-proto.ts';
import { recvControl } from './fast-recv.ts';
import type { RecvControl } from './fast-recv.ts';
import { DEATH_WINDOW_MS, newDeathBudget, startWorker } from './fast-spawn.ts';
import { literalLookup } from './literal-lookup.ts';
import type { FastWorkerData, ToWorker } from './fast-proto.ts';
import type { FastReplicas } from './fast-replicas.ts';
import type { DnsLog } from './forwarder.ts';

export type FastHandler = (msg: Buffer, client: string, udp: boolean, limited: boolean) => Buffer | null | Promise<Buffer | null>;

export interface FastPathOptions {
  /** Cache size ([dns] cache max_entries): bounds the replica too. */
  maxEntries: number;
  /** [dns] rate_limit: the worker applies it to every UDP query it reads. */
  rateLimit: number;
  /** Datagrams per recvmmsg/sendmmsg call. */
  batch?: number;
  /** SO_RCVTIMEO of the socket (a blocking reader's wake-up; the worker polls, 100 ms at most). */
  recvTimeoutMs?: number;
  /** How long start() waits for the worker to load. */
  startTimeoutMs?: number;
  /**
   * Default true: at low load the main thread reads the socket itself (no thread hop for a miss)
   * and the worker takes over when queries queue up. false: the worker always reads (tests of
   * the worker's own behaviour).
   */
  mainAtLowLoad?: boolean;
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
  /** Hand-overs of reading between the main thread (low load) and the worker. */
  toWorker: number;
  toMain: number;
  restarts: number;
  fallbacks: number;
}

/**
 * One fast UDP listener: the socket (made with libc, then shared with a Node dgram socket that
 * owns and closes it), its worker, and which of the two reads it (ReaderSwitch).
 */
export class FastUdp {
  readonly port: number;
  readonly #host: string;
  #fd: number;
  readonly #sock: UdpSocket;
  readonly #switch: ReaderSwitch;
  #fellBack = false;
  readonly #handler: FastHandler;
  readonly #log: DnsLog;
  readonly #opts: FastPathOptions;
  readonly #replicas: FastReplicas;
  #worker: Worker | null = null;
  readonly #stats = new SharedArrayBuffer(8 * STAT_COUNT);
  readonly #counts = new Float64Array(this.#stats);
  #control = new SharedArrayBuffer(4 * CONTROL_COUNT);
  #controlView = new Int32Array(this.#control);
  readonly #deaths = newDeathBudget();
  #closing = false;
  #started = false;
  #ready = false;
  #exited: Promise<void> = Promise.resolve();

  private constructor(host: string, fd: number, port: number, sock: UdpSocket, recv: RecvControl, handler: FastHandler, log: DnsLog, opts: FastPathOptions, replicas: FastReplicas) {
    this.#host = host;
    this.#fd = fd;
    this.port = port;
    this.#sock = sock;
    this.#handler = handler;
    this.#log = log;
    this.#opts = opts;
    this.#replicas = replicas;
    this.#switch = new ReaderSwitch({
      recv,
      counts: this.#counts,
      control: () => this.#controlView,
      mayRead: () => this.#fd >= 0 && !this.#closing,
      mayHandOver: () => this.#ready && !this.#fellBack && !this.#closing && this.#fd >= 0,
      watchLoad: opts.mainAtLowLoad !== false,
    });
  }

  /**
   * Binds `host:port` with libc, shares the socket with a dgram socket (the main thread's reader
   * and, after repeated worker deaths, the only one) and starts the worker; resolves once it
   * runs. Throws (having released everything) when any step fails: the caller then binds a
   * dgram socket of its own.
   */
  static async start(host: string, port: number, handler: FastHandler, log: DnsLog, opts: FastPathOptions, replicas: FastReplicas): Promise<FastUdp> {
    const s = openUdp(host, port, { bufferBytes: 1 << 20, recvTimeoutMs: opts.recvTimeoutMs ?? 100 });
    const six = host.includes(':');
    const sock = createSocket({ type: six ? 'udp6' : 'udp4', lookup: literalLookup(six ? 6 : 4) });
    try {
      // The dgram socket adopts the descriptor (libuv makes it non-blocking; the worker polls).
      await new Promise<void>((resolve, reject) => {
        sock.once('error', reject);
        sock.bind({ fd: s.fd }, () => {
          sock.removeListener('error', reject);
          resolve();
        });
      });
    } catch (err) {
      closeFd(s.fd);
      throw new DnsError('SY_ERR_DNS_FAST_PATH', `cannot share the fast path socket with a dgram socket: ${(err as Error).message}`, err);
    }
    sock.on('error', (err) => log.debug({ err }, 'dns: udp socket error'));
    const recv = recvControl(sock);
    if (recv === null) {
      sock.close();
      throw new DnsError('SY_ERR_DNS_FAST_PATH', 'this Node.js cannot pause a dgram socket\'s reading (internals changed)');
    }
    const l = new FastUdp(host, s.fd, s.port, sock, recv, handler, log, opts, replicas);
    sock.on('message', (msg, rinfo) => l.#onMainMessage(msg, rinfo));
    try {
      await l.#spawn(opts.startTimeoutMs ?? 15_000);
    } catch (err) {
      l.#switch.stopReading();
      await l.#stopWorker();
      l.#fd = -1;
      sock.close();
      throw err;
    }
    l.#started = true;
    replicas.add(l);
    return l;
  }

  /** A datagram the main thread read itself (low load, or no worker): answered here. */
  #onMainMessage(msg: Buffer, rinfo: RemoteInfo): void {
    this.#switch.mainRead();
    let r: Buffer | null | Promise<Buffer | null>;
    try {
      r = this.#handler(msg, rinfo.address, true, false);
    } catch (err) {
      this.#log.error({ err }, 'dns: handler threw');
      return;
    }
    if (r instanceof Promise) r.then((out) => this.#sendDgram(out, rinfo), (err) => this.#log.error({ err }, 'dns: handler failed'));
    else this.#sendDgram(r, rinfo);
  }

  #sendDgram(out: Buffer | null, rinfo: RemoteInfo): void {
    if (out === null || this.#fd < 0) return;
    try {
      this.#sock.send(out, rinfo.port, rinfo.address);
    } catch (err) {
      this.#log.debug({ err }, 'dns: udp send failed');
    }
  }

  /** Starts a worker on the socket; resolves when it reports ready (rejects if it dies first). */
  #spawn(readyTimeoutMs: number): Promise<void> {
    this.#control = new SharedArrayBuffer(4 * CONTROL_COUNT);
    this.#controlView = new Int32Array(this.#control);
    // A new worker starts idle (MODE.main): the dgram socket reads until load hands over.
    this.#switch.startReading();
    const data: FastWorkerData = {
      fd: this.#fd,
      batch: this.#opts.batch ?? 64,
      maxEntries: Math.max(1, this.#opts.maxEntries),
      rateLimit: this.#opts.rateLimit,
      stats: this.#stats,
      control: this.#control,
      handBack: this.#opts.mainAtLowLoad !== false,
    };
    // This worker's own control words: a 'main'/'worker' message is judged by them, not a successor's.
    const control = new Int32Array(this.#control);
    const started = startWorker(data, readyTimeoutMs, {
      message: (w, m) => {
        if (m.t === 'q') this.#answer(m.buf, control);
        else if (m.t === 'touch') this.#touch(m.keys);
        else if (m.t === 'worker') {
          if (this.#worker === w) this.#switch.workerTookOver(control);
        } else if (m.t === 'main') {
          if (this.#worker === w) this.#switch.workerHandedBack(control);
        }
      },
      ready: (w) => {
        if (this.#worker !== w) return;
        this.#ready = true;
        // Without the low-load mode the worker reads from the start.
        if (this.#opts.mainAtLowLoad === false) this.#switch.toWorker();
      },
      exit: (w, code, lastErr) => {
        if (this.#worker === w) {
          this.#worker = null;
          this.#ready = false;
          // Nobody else reads now: the dgram socket does, while a new worker starts (or for good).
          this.#switch.startReading();
        }
        // Once the listener has started, any exit it did not ask for is a death.
        if (this.#started && !this.#closing && this.#fd >= 0) this.#died(code, lastErr);
      },
    });
    this.#worker = started.worker;
    this.#ready = false;
    this.#exited = started.exited;
    return started.ready;
  }

  /** The worker stopped while the listener runs: restart it, or after too many deaths, stay on dgram. */
  #died(code: number, err: unknown): void {
    const deaths = this.#deaths.record();
    if (this.#deaths.spent) {
      this.#log.error({ err, code, host: this.#host, port: this.port }, `dns: fast path worker died ${deaths} times in ${DEATH_WINDOW_MS / 1000} s; answering through a dgram socket instead`);
      this.#replicas.remove(this, true);
      this.#fellBack = true;
      this.#switch.startReading();
      this.#log.warn({ host: this.#host, port: this.port }, 'dns: udp listener back on a dgram socket');
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
      toWorker: c[STAT.toWorker]!,
      toMain: c[STAT.toMain]!,
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
    return this.#fd >= 0 && !this.#fellBack;
  }

  /** Who reads the socket now: 'main' (the dgram socket) or 'worker'. For tests and status. */
  get reader(): 'main' | 'worker' {
    return this.#switch.reading ? 'main' : 'worker';
  }

  async #stopWorker(): Promise<void> {
    const w = this.#worker;
    if (!w) return;
    const control = new Int32Array(this.#control);
    Atomics.store(control, CONTROL.stop, 1);
    Atomics.notify(control, CONTROL.mode); // wakes a worker idle in main mode
    // Wakes its poll at once. Only once the dgram socket stopped reading: a shut-down socket
    // reads as always readable.
    if (this.#fd >= 0 && !this.#switch.reading) shutdownUdp(this.#fd);
    const t = setTimeout(() => void w.terminate(), 2000);
    await this.#exited;
    clearTimeout(t);
  }

  async close(): Promise<void> {
    if (this.#closing) return;
    this.#closing = true;
    this.#replicas.remove(this, false);
    this.#switch.stopReading();
    await this.#stopWorker();
    // The dgram socket owns the descriptor: closing it closes the socket.
    this.#fd = -1;
    this.#sock.close();
  }
}
