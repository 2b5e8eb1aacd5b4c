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
} as const;
export const STAT_COUNT = 8;

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
} as const;
export const CONTROL_COUNT = 3;

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
  | { t: 'touch'; keys: string[] };
