// Which of a fast listener's two readers reads its socket, main-thread side. The socket is shared
// by a Node dgram socket on the main thread and the worker (fast-worker.ts), and exactly one of
// them reads at a time (CONTROL.mode):
//   - low load: the main thread reads, and every query goes through Forwarder.handle directly —
//     a miss takes no thread hop (the hop cost about 0.1–0.18 ms of wake-ups per miss here);
//   - when queries queue up (SWITCH: a burst in one event-loop turn, or a high rate), the main
//     thread stops reading and the worker takes over (toWorker). When the load falls again the
//     worker stops reading and hands back ('main' message); when the main thread's event loop
//     stalls the worker takes over by itself ('worker' message; its stall watch is in
//     fast-worker.ts).
// The side that stops reading always stops before the other starts, so each datagram has one
// reader and gets one answer.
import { CONTROL, MODE, STAT, SWITCH } from './fast-proto.ts';
import type { RecvControl } from './fast-recv.ts';

export interface ReaderSwitchOptions {
  /** Pauses and resumes the dgram socket's reading (fast-recv.ts). */
  recv: RecvControl;
  /** The listener's shared counters (STAT): hand-overs to the worker count here. */
  counts: Float64Array;
  /** The current worker's control words (a restarted worker gets new ones). */
  control(): Int32Array;
  /** The main thread may read: the socket is open and not closing. */
  mayRead(): boolean;
  /** A worker may take over: one is ready, the listener has not fallen back, is open and not closing. */
  mayHandOver(): boolean;
  /** Count the load and hand over when it rises (false: the worker is handed reading by the listener). */
  watchLoad: boolean;
}

/** The main thread's half of the hand-over: its own reading, and when it gives reading away. */
export class ReaderSwitch {
  readonly #o: ReaderSwitchOptions;
  /** True while the dgram socket reads (main mode, a worker restarting, or fallen back). */
  #reading = true;
  /** Datagrams the main thread read in this event-loop turn, and in the current rate window. */
  #turn = 0;
  #turnPending = false;
  #winStart = 0;
  #winCount = 0;

  constructor(o: ReaderSwitchOptions) {
    this.#o = o;
  }

  /** True while the main thread's dgram socket reads. */
  get reading(): boolean {
    return this.#reading;
  }

  /** The main thread read a datagram: the worker's stall watch sees it, and the load is counted. */
  mainRead(): void {
    Atomics.add(this.#o.control(), CONTROL.mainReads, 1);
    if (this.#o.watchLoad) this.#countLoad();
  }

  /** Hands reading to the worker when datagrams queue up (a burst in one turn) or arrive fast. */
  #countLoad(): void {
    if (++this.#turn >= SWITCH.BURST) return this.toWorker();
    if (!this.#turnPending) {
      this.#turnPending = true;
      setImmediate(() => {
        this.#turn = 0;
        this.#turnPending = false;
      });
    }
    const now = Date.now();
    if (now - this.#winStart >= SWITCH.WINDOW_MS) {
      this.#winStart = now;
      this.#winCount = 0;
    }
    if (++this.#winCount * 1000 > SWITCH.TO_WORKER_PER_S * SWITCH.WINDOW_MS) this.toWorker();
  }

  startReading(): void {
    if (this.#reading || !this.#o.mayRead()) return;
    this.#reading = true;
    this.#o.recv.recvStart();
  }

  stopReading(): void {
    if (!this.#reading) return;
    this.#o.recv.recvStop();
    this.#reading = false;
    this.#turn = 0;
    this.#winCount = 0;
  }

  /** Main → worker: the main thread stops reading first, so each datagram has one reader. */
  toWorker(): void {
    if (!this.#reading || !this.#o.mayHandOver()) return;
    this.stopReading();
    this.#o.counts[STAT.toWorker]!++;
    const control = this.#o.control();
    Atomics.store(control, CONTROL.mode, MODE.worker);
    Atomics.notify(control, CONTROL.mode);
  }

  /** The worker took over from a stalled event loop (its `control` says so): stop reading here. */
  workerTookOver(control: Int32Array): void {
    if (Atomics.load(control, CONTROL.mode) === MODE.worker) this.stopReading();
  }

  /** The worker stopped reading (its `control` says so): read here from now on. */
  workerHandedBack(control: Int32Array): void {
    if (Atomics.load(control, CONTROL.mode) === MODE.main) this.startReading();
  }
}
