// One pipe connection on the main thread: a Node Duplex with `setTimeout` like net.Socket, fed by the
// pipe worker's messages, so src/control serves and calls it exactly like a Unix socket.
//
// Flow control both ways: a write's callback runs when the worker reports the bytes in the pipe (so
// `write()` returns false and 'drain' follows as with a socket: a client that does not read slows
// only its own stream); when the readable side is full the worker stops reading that connection.
import { Duplex } from 'node:stream';
import { OsCallError } from '../../errors.ts';
import type { FromWorker } from './pipe-protocol.ts';
import { callError, type PipeLink } from './pipe-link.ts';

const PIPE_STREAM_HWM = 16 * 1024;

/**
 * One connection through a worker. Emits 'data', 'end', 'close' like a socket; `destroyed` once closed.
 */
export class PipeStream extends Duplex {
  readonly #link: Pick<PipeLink, 'send'>;
  readonly #id: number;
  #seq = 0;
  readonly #writes = new Map<number, (err?: Error | null) => void>();
  #paused = false;
  #workerClosed = false;
  #idleMs = 0;
  #idleCb: (() => void) | undefined;
  #idleTimer: NodeJS.Timeout | undefined;
  #onGone: (() => void) | undefined;

  /** @internal — made by PipeServer and openPipe. */
  constructor(link: Pick<PipeLink, 'send'>, id: number, onGone?: () => void) {
    // 16 KiB both ways, stated: Node 22 raised the stream default to 64 KiB, and the pipe's
    // back-pressure (a quarter of its 64 KiB buffer per WriteFile) should not differ by Node version.
    super({ allowHalfOpen: false, highWaterMark: PIPE_STREAM_HWM });
    this.#link = link;
    this.#id = id;
    this.#onGone = onGone;
    this.once('end', () => this.destroy());
  }

  /** @internal — a message from the worker for this connection. */
  deliver(m: FromWorker): void {
    switch (m.t) {
      case 'data':
        this.#touch();
        if (!this.push(Buffer.from(m.data.buffer, m.data.byteOffset, m.data.byteLength)) && !this.#paused) {
          this.#paused = true;
          this.#link.send({ t: 'pause', id: this.#id });
        }
        break;
      case 'written': {
        this.#touch();
        const cb = this.#writes.get(m.seq);
        this.#writes.delete(m.seq);
        cb?.();
        break;
      }
      case 'closed':
        this.#workerClosed = true;
        this.#failWrites(m.error ? callError(m.error) : null);
        if (m.error) this.destroy(callError(m.error));
        else this.push(null); // 'end', then destroy (see the constructor)
        break;
      default:
        break;
    }
  }

  setTimeout(ms: number, cb?: () => void): this {
    this.#idleMs = ms;
    if (cb) this.#idleCb = cb;
    this.#touch();
    return this;
  }

  #touch(): void {
    if (this.#idleTimer) clearTimeout(this.#idleTimer);
    this.#idleTimer = undefined;
    if (this.#idleMs > 0 && !this.destroyed) {
      this.#idleTimer = setTimeout(() => {
        this.emit('timeout');
        this.#idleCb?.();
      }, this.#idleMs);
      this.#idleTimer.unref();
    }
  }

  #failWrites(err: Error | null): void {
    const pending = [...this.#writes.values()];
    this.#writes.clear();
    const e = err ?? new OsCallError('SY_ERR_WIN_CALL', 'WriteFile', 109, 'the pipe was closed');
    for (const cb of pending) cb(e);
  }

  override _read(): void {
    if (this.#paused && !this.#workerClosed) {
      this.#paused = false;
      this.#link.send({ t: 'resume', id: this.#id });
    }
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (this.#workerClosed) return cb(new OsCallError('SY_ERR_WIN_CALL', 'WriteFile', 109, 'the pipe was closed'));
    if (chunk.length === 0) return cb();
    const seq = ++this.#seq;
    this.#writes.set(seq, cb);
    // A copy of our own, transferred to the worker (the caller may reuse `chunk`).
    const data = new Uint8Array(chunk.length);
    data.set(chunk);
    this.#link.send({ t: 'write', id: this.#id, seq, data });
  }

  override _final(cb: (err?: Error | null) => void): void {
    // A pipe has no half-close: once everything is written, the connection is over. The worker
    // closes the handle after its queue is written; the bytes stay readable by the peer.
    if (!this.#workerClosed) this.#link.send({ t: 'end', id: this.#id });
    cb();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    if (this.#idleTimer) clearTimeout(this.#idleTimer);
    // After end(), the worker closes the handle once the queue is written; otherwise close now.
    if (!this.#workerClosed && !this.writableFinished) this.#link.send({ t: 'destroy', id: this.#id });
    this.#failWrites(err);
    const gone = this.#onGone;
    this.#onGone = undefined;
    gone?.();
    cb(err);
  }
}
