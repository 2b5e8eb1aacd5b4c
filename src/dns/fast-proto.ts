// The messages between the main thread (fast-path.ts) and the UDP fast path's worker
// (fast-worker.ts), and the layout of the counters they share.

/** Indices into the shared Float64Array of counters the worker writes and the main thread reads. */
export const STAT = {
  hits: 0,
  forwarded: 1,
  rateLimited: 2,
  dropped: 3,
  batches: 4,
  datagrams: 5,
  entries: 6,
  /** Datagrams dropped because the main thread had MAX_QUEUED of them waiting already. */
  overflow: 7,
  /** Times the worker took over reading from the main thread, and handed it back. */
  toWorker: 8,
  toMain: 9,
} as const;
export const STAT_COUNT = 10;

/** Int32 slots of the shared control array. */
export const CONTROL = {
  /** Non-zero asks the worker to stop. */
  stop: 0,
  /** Datagrams posted to the main thread and not yet taken up by it. */
  queued: 1,
  /**
   * Messages posted to the worker, counted after each postMessage: the worker reads its mailbox
   * only when this moved (receiveMessageOnPort costs a lock even when empty).
   */
  posted: 2,
  /** Who reads the socket: MODE.main (the main thread's dgram socket) or MODE.worker. */
  mode: 3,
  /** Datagrams the main thread read itself (the worker watches it for a stalled main thread). */
  mainReads: 4,
} as const;
export const CONTROL_COUNT = 5;

/**
 * Values of CONTROL.mode. The main thread moves main → worker when the load rises (it stops its
 * own reading first); the worker moves worker → main when it falls (it stops reading first, then
 * tells the main thread), and main → worker itself when datagrams wait while the main thread has
 * read nothing for STALL_MS (a blocked event loop): it then reads at once and tells the main
 * thread, which stops its reading when it gets the message. Until then both may read; each
 * datagram is still read, and answered, once.
 */
export const MODE = { main: 0, worker: 1 } as const;

/**
 * Load thresholds of the switch between the two readers (fast-handover.ts, fast-worker.ts). The main
 * thread hands over when one turn of its event loop reads BURST datagrams (a queue is building) or
 * a window of WINDOW_MS sees more than TO_WORKER_PER_S. The worker hands back when nothing arrived
 * for IDLE_MS, or after a window of BACK_WINDOW_MS below TO_MAIN_PER_S in which no read found more
 * than 2 datagrams queued. Short windows: a client that follows a burst with a few sequential
 * queries (a miss each) should not pay the thread hop for long.
 */
export const SWITCH = { BURST: 8, WINDOW_MS: 50, TO_WORKER_PER_S: 20_000, IDLE_MS: 10, BACK_WINDOW_MS: 5, TO_MAIN_PER_S: 5_000, STALL_MS: 50 } as const;

/**
 * At most this many datagrams wait for the main thread; beyond, the worker drops them (as a full
 * socket buffer would on the dgram path): a flood of misses cannot grow the message queue.
 */
export const MAX_QUEUED = 4096;

export interface FastWorkerData {
  fd: number;
  batch: number;
  maxEntries: number;
  /** Queries per second per client (0 = no limit), as [dns] rate_limit. */
  rateLimit: number;
  /** SharedArrayBuffer of STAT_COUNT float64 counters. */
  stats: SharedArrayBuffer;
  /** SharedArrayBuffer of CONTROL_COUNT int32 (CONTROL). */
  control: SharedArrayBuffer;
  /** The worker hands reading back to the main thread when the load is low (else it always reads). */
  handBack: boolean;
}

export type ToWorker =
  | {
      t: 'put';
      key: string;
      keyBytes: Uint8Array;
      hash: number;
      bytes: Uint8Array;
      ttlOffsets: Uint16Array;
      ttls: Uint32Array;
      optStart: number;
      storedAt: number;
      /** The worker may answer from this entry while Date.now() < until. */
      until: number;
    }
  | { t: 'del'; key: string; hash: number }
  | { t: 'clear' }
  | { t: 'crash' };

export type ToMain =
  | { t: 'ready' }
  /** Queries the worker did not answer, with their senders, packed (fast-worker.ts `pack`). */
  | { t: 'q'; buf: ArrayBuffer }
  /** Keys of replica entries that answered hits since the last report (for the main LRU). */
  | { t: 'touch'; keys: string[] }
  /** The worker stopped reading (low load): the main thread's dgram socket reads from now on. */
  | { t: 'main' }
  /** The worker took over reading from a stalled main thread: stop the dgram socket's reading. */
  | { t: 'worker' };
