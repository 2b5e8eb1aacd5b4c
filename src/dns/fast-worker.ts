// The UDP fast path's worker thread (started by fast-spawn.ts for fast-path.ts). It owns the reading side of one
// UDP listener socket: recvmmsg takes every queued datagram in one call, cache hits are answered
// from a replica of the answer cache by byte copy (the same serveInto as the main thread), and
// all answers of a batch leave in one sendmmsg. Anything else — a miss, a malformed or unusual
// query, a hit whose binding hook must run, an answer that needs TC — is handed to the main thread
// with its sender address, and the main thread answers it on the same socket.
//
// It reads only while CONTROL.mode says so (fast-handover.ts: at low load the main thread reads the
// socket itself); otherwise it sleeps in Atomics.wait until the main thread hands over, and after
// a quiet window (fast-proto.ts SWITCH) it stops reading and hands back.
//
// The loop never returns to this thread's event loop: control messages (replica entries, drops,
// clear) are read with receiveMessageOnPort after every wake-up when the main thread's shared
// `posted` counter moved, and the worker wakes at least every 100 ms (poll timeout, or the
// Atomics.wait timeout). A clear posted before a datagram is read is applied before that datagram
// is answered, so nothing stale leaves after `cache flush` returns.
import { parentPort, receiveMessageOnPort, workerData } from 'node:worker_threads';
import { BatchRing } from '../sys/linux/udp-batch.ts';
import { servedLength, serveInto } from './cache.ts';
import type { Servable } from './cache.ts';
import { newQuickQuery, quickParse, sameKey } from './fast-parse.ts';
import { RateLimiter } from './ratelimit.ts';
import { formatIp } from './wire.ts';
import { CONTROL, MAX_QUEUED, MODE, STAT, SWITCH, type FastWorkerData, type ToMain, type ToWorker } from './fast-proto.ts';

interface Entry extends Servable {
  key: string;
  keyBytes: Uint8Array;
  until: number;
  touched: boolean;
}

const data = workerData as FastWorkerData;
const port = parentPort!;
const stats = new Float64Array(data.stats);
const control = new Int32Array(data.control);
const replica = new Map<number, Entry>();
const limiter = data.rateLimit > 0 ? new RateLimiter(data.rateLimit) : null;
const ring = new BatchRing(data.fd, data.batch);
const mem = ring.mem;
const q = newQuickQuery();
const fwdIdx = new Uint16Array(data.batch);
const TOUCH_EVERY_MS = 1000;
let lastTouch = Date.now();

function apply(m: ToWorker): void {
  switch (m.t) {
    case 'put': {
      if (!replica.has(m.hash) && replica.size >= data.maxEntries) {
        // The main thread's drops keep the sizes equal; this only bounds memory if they did not.
        const first = replica.keys().next();
        if (!first.done) replica.delete(first.value);
      }
      replica.set(m.hash, {
        key: m.key,
        keyBytes: m.keyBytes,
        bytes: m.bytes,
        ttlOffsets: m.ttlOffsets,
        ttls: m.ttls,
        optStart: m.optStart,
        storedAt: m.storedAt,
        until: m.until,
        touched: false,
      });
      break;
    }
    case 'del': {
      const e = replica.get(m.hash);
      if (e !== undefined && e.key === m.key) replica.delete(m.hash);
      break;
    }
    case 'clear':
      replica.clear();
      break;
    case 'crash':
      // For tests of the main thread's recovery: a bug here must not stop DNS.
      throw new Error('fast path worker: crash requested');
  }
}

let seen = 0;

/** Applies every control message posted since the last look (none posted: no mailbox call). */
function drain(): void {
  const posted = Atomics.load(control, CONTROL.posted);
  if (posted === seen) return;
  seen = posted;
  for (;;) {
    const r = receiveMessageOnPort(port);
    if (r === undefined) break;
    apply(r.message as ToWorker);
  }
  stats[STAT.entries] = replica.size;
}

/** The rate limiter's key for datagram i's sender: IPv4 as a number, IPv6 as text. */
function clientKey(i: number): string | number {
  const a = ring.nameOff(i);
  if (ring.nameLen(i) === 16) return mem.readUInt32BE(a + 4);
  return formatIp(mem, a + 8, 16);
}

/**
 * The datagrams in `idx` (`count` of them) packed for the main thread, in one buffer that is
 * transferred, not copied: per datagram, its length (u16), its sender's sockaddr length (u8),
 * the sockaddr, the bytes (fast-path.ts unpacks them).
 */
function pack(idx: Uint16Array, count: number): ArrayBuffer {
  let total = 0;
  for (let k = 0; k < count; k++) total += 3 + ring.nameLen(idx[k]!) + ring.length(idx[k]!);
  const out = new Uint8Array(total);
  let p = 0;
  for (let k = 0; k < count; k++) {
    const i = idx[k]!;
    const len = ring.length(i);
    const nl = ring.nameLen(i);
    out[p] = len >> 8;
    out[p + 1] = len & 0xff;
    out[p + 2] = nl;
    const a = ring.nameOff(i);
    out.set(mem.subarray(a, a + nl), p + 3);
    const d = ring.dataOff(i);
    out.set(mem.subarray(d, d + len), p + 3 + nl);
    p += 3 + nl + len;
  }
  return out.buffer;
}

function reportTouched(now: number): void {
  lastTouch = now;
  const keys: string[] = [];
  for (const e of replica.values()) {
    if (e.touched) {
      e.touched = false;
      keys.push(e.key);
    }
  }
  if (keys.length > 0) port.postMessage({ t: 'touch', keys } satisfies ToMain);
}

// The current low-load window (handBack): datagrams read, and the largest batch.
let winStart = Date.now();
let winCount = 0;
let winMax = 0;

/** At the end of a quiet window, stops reading and tells the main thread to read instead. */
function maybeHandBack(now: number, n: number): boolean {
  winCount += n;
  if (n > winMax) winMax = n;
  if (now - winStart < SWITCH.BACK_WINDOW_MS) return false;
  const quiet = winCount * 1000 < SWITCH.TO_MAIN_PER_S * (now - winStart) && winMax <= 2;
  winStart = now;
  winCount = 0;
  winMax = 0;
  if (!quiet) return false;
  handBack();
  return true;
}

// Stall watch (main mode): the main thread's read count at the last look, and whether a datagram
// was already waiting then.
let lastMainReads = -1;
let waitingBefore = false;

/**
 * A datagram waits and the main thread has read nothing since the last look, STALL_MS ago, when
 * one was waiting too: its event loop is blocked (a long synchronous task, a long GC pause).
 * Take over reading so cached names keep being answered; the main thread stops its reading when
 * it gets to the message.
 */
function takeOverIfStalled(): void {
  const reads = Atomics.load(control, CONTROL.mainReads);
  const waiting = ring.readable();
  const stalled = waiting && waitingBefore && reads === lastMainReads;
  lastMainReads = reads;
  waitingBefore = waiting;
  if (!stalled) return;
  if (Atomics.compareExchange(control, CONTROL.mode, MODE.main, MODE.worker) !== MODE.main) return;
  waitingBefore = false;
  stats[STAT.toWorker]!++;
  port.postMessage({ t: 'worker' } satisfies ToMain);
}

/** Stops reading (this loop reads only in MODE.worker) and tells the main thread to read. */
function handBack(): void {
  Atomics.store(control, CONTROL.mode, MODE.main);
  stats[STAT.toMain]!++;
  port.postMessage({ t: 'main' } satisfies ToMain);
}

function loop(): void {
  for (;;) {
    drain();
    if (Atomics.load(control, CONTROL.stop) !== 0) return;
    if (Atomics.load(control, CONTROL.mode) !== MODE.worker) {
      // The main thread reads: sleep until it hands over (or STALL_MS pass: mailbox, stop flag,
      // and a look at whether the main thread still reads).
      if (Atomics.wait(control, CONTROL.mode, MODE.main, SWITCH.STALL_MS) === 'timed-out' && data.handBack) takeOverIfStalled();
      const t = Date.now();
      if (t - lastTouch >= TOUCH_EVERY_MS) reportTouched(t);
      if (Atomics.load(control, CONTROL.mode) === MODE.worker) {
        winStart = Date.now();
        winCount = 0;
        winMax = 0;
      }
      continue;
    }
    // With hand-back, a wait that times out means IDLE_MS without a datagram: hand back at once.
    const n = ring.recv(data.handBack ? SWITCH.IDLE_MS : 100);
    if (n < 0 || Atomics.load(control, CONTROL.stop) !== 0) return;
    const now = Date.now();
    if (now - lastTouch >= TOUCH_EVERY_MS) reportTouched(now);
    if (n === 0) {
      if (data.handBack) handBack();
      continue;
    }
    drain();
    stats[STAT.batches]!++;
    stats[STAT.datagrams]! += n;
    let out = 0;
    let nf = 0;
    for (let i = 0; i < n; i++) {
      const len = ring.length(i);
      if (len < 12) {
        stats[STAT.dropped]!++; // as Forwarder.handle: too short to answer
        continue;
      }
      if (limiter !== null && !limiter.allow(clientKey(i), now)) {
        stats[STAT.rateLimited]!++;
        continue;
      }
      const off = ring.dataOff(i);
      // Only a plain query whose question is in the replica, fresh, and fits the client's UDP
      // size is answered here; anything else (malformed ones included) goes to the main thread.
      if (quickParse(mem, off, len, q) && !ring.truncated(i)) {
        const e = replica.get(q.hash);
        if (e !== undefined && e.until > now && sameKey(e.keyBytes, mem, off, q)) {
          const slen = servedLength(e, q);
          if (slen <= (q.edns ? q.udpSize : 512) && slen <= ring.slot) {
            serveInto(e, mem, off, q, now, mem, ring.outOff(out));
            ring.reply(out, i, slen);
            out++;
            e.touched = true;
            continue;
          }
        } else if (e !== undefined && e.until <= now) {
          replica.delete(q.hash);
        }
      }
      fwdIdx[nf++] = i;
    }
    if (out > 0) {
      // Counted before the answers leave, so a client that has its answer sees it counted.
      stats[STAT.hits]! += out;
      ring.send(out);
    }
    if (nf > 0 && Atomics.load(control, CONTROL.queued) + nf > MAX_QUEUED) {
      stats[STAT.overflow]! += nf;
      nf = 0;
    }
    if (nf > 0) {
      Atomics.add(control, CONTROL.queued, nf);
      stats[STAT.forwarded]! += nf;
      const buf = pack(fwdIdx, nf);
      port.postMessage({ t: 'q', buf } satisfies ToMain, [buf]);
    }
    // After this batch is answered or passed on: what is read next is the main thread's.
    if (data.handBack) maybeHandBack(now, n);
  }
}

port.postMessage({ t: 'ready' } satisfies ToMain);
try {
  loop();
} finally {
  ring.free();
}
