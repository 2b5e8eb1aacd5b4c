// A bounded byte queue for protocol handshakes: bytes are pushed in as they arrive (from 'data'
// events or an onread callback) and the parser awaits exactly the bytes it needs. Every read has
// a size limit, and the queue never holds more than `maxBuffered` bytes: a peer that floods a
// handshake is cut off instead of growing memory.
import { HandshakeError } from '../errors.ts';

export class ByteReader {
  private chunks: Buffer[] = [];
  private length = 0;
  private ended = false;
  private failure: Error | undefined;
  private waiter: (() => void) | undefined;
  readonly maxBuffered: number;

  constructor(maxBuffered = 64 * 1024) {
    this.maxBuffered = maxBuffered;
  }

  get buffered(): number {
    return this.length;
  }

  push(chunk: Buffer): void {
    if (this.failure || this.ended) return;
    this.chunks.push(chunk);
    this.length += chunk.length;
    if (this.length > this.maxBuffered) this.failure = new HandshakeError('too-large', `handshake exceeds ${this.maxBuffered} bytes`);
    this.wake();
  }

  end(): void {
    this.ended = true;
    this.wake();
  }

  fail(err: Error): void {
    if (!this.failure) this.failure = err;
    this.wake();
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = undefined;
    w?.();
  }

  private async waitMore(): Promise<void> {
    if (this.failure) throw this.failure;
    if (this.ended) throw new HandshakeError('eof', 'peer closed during handshake');
    const had = this.length;
    await new Promise<void>((resolve) => (this.waiter = resolve));
    // New bytes first: the caller's own bound check then names the failure precisely.
    if (this.failure && this.length === had) throw this.failure;
  }

  private flat(): Buffer {
    if (this.chunks.length > 1) this.chunks = [Buffer.concat(this.chunks, this.length)];
    return this.chunks[0] ?? Buffer.alloc(0);
  }

  /** Exactly n bytes (n must not exceed maxBuffered). */
  async read(n: number): Promise<Buffer> {
    if (n > this.maxBuffered) throw new HandshakeError('too-large', `read of ${n} exceeds limit`);
    while (this.length < n) await this.waitMore();
    const all = this.flat();
    const out = all.subarray(0, n);
    this.chunks = all.length > n ? [all.subarray(n)] : [];
    this.length -= n;
    return out;
  }

  async u8(): Promise<number> {
    return (await this.read(1))[0]!;
  }

  /** Waits until at least one byte is buffered and returns a view of all of them, consuming none. */
  async peek(): Promise<Buffer> {
    while (this.length === 0) await this.waitMore();
    return this.flat();
  }

  /** Bytes up to and including `delim`, which must appear within `max` bytes. */
  async readUntil(delim: Buffer, max: number): Promise<Buffer> {
    let from = 0;
    for (;;) {
      const all = this.flat();
      const at = all.indexOf(delim, Math.max(0, from - delim.length + 1));
      if (at >= 0 && at + delim.length <= max) return this.read(at + delim.length);
      if (all.length >= max) throw new HandshakeError('too-large', `no terminator within ${max} bytes`);
      from = all.length;
      await this.waitMore();
    }
  }

  /** Between 1 and `max` bytes, as soon as any are buffered (for streaming a framed body). */
  async readUpTo(max: number): Promise<Buffer> {
    while (this.length === 0) await this.waitMore();
    return this.read(Math.min(max, this.length));
  }

  /** Everything still buffered (handed to the relay after the handshake). */
  drain(): Buffer[] {
    const out = this.chunks;
    this.chunks = [];
    this.length = 0;
    return out;
  }
}
