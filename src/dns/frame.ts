// Two-byte length framing of DNS over TCP, TLS (RFC 1035 §4.2.2, RFC 7766, RFC 7858). Chunks are
// kept as they arrive and joined only when a whole frame is there, so a peer sending one byte at
// a time costs linear, not quadratic, copying.
export class FrameReader {
  #chunks: Buffer[] = [];
  #total = 0;

  /** Adds received bytes; returns every complete frame (without its length prefix). */
  push(data: Buffer): Buffer[] {
    this.#chunks.push(data);
    this.#total += data.length;
    const out: Buffer[] = [];
    for (;;) {
      if (this.#total < 2) break;
      const head = this.#chunks[0]!.length >= 2 ? this.#chunks[0]! : this.#join();
      const len = head.readUInt16BE(0);
      if (this.#total < 2 + len) break;
      const all = this.#join();
      out.push(Buffer.from(all.subarray(2, 2 + len)));
      const rest = all.subarray(2 + len);
      this.#chunks = rest.length ? [rest] : [];
      this.#total = rest.length;
    }
    return out;
  }

  #join(): Buffer {
    if (this.#chunks.length > 1) this.#chunks = [Buffer.concat(this.#chunks, this.#total)];
    return this.#chunks[0]!;
  }
}

/** The frame for one message: length prefix and bytes. */
export function frame(msg: Buffer): Buffer {
  const f = Buffer.allocUnsafe(2 + msg.length);
  f.writeUInt16BE(msg.length, 0);
  msg.copy(f, 2);
  return f;
}
