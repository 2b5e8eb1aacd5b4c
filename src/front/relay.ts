// Moves bytes both ways between an accepted client socket and an Upstream, with back-pressure in
// both directions (a side that cannot take more pauses the other's reads — nothing is buffered
// beyond one socket's write queue plus one read), half-close carried across (a FIN from one side
// becomes end() on the other, and the other direction keeps flowing), an idle timeout, and byte
// counters the session table reads live.
import type net from 'node:net';
import { recycleChunk, type Upstream } from '../egress/upstream.ts';

export interface RelayOptions {
  idleTimeoutMs: number;
  /** Client bytes read before the relay started (sniffed ClientHello, rewritten HTTP head). */
  initialUp?: Buffer[];
  /** The client's FIN was already consumed (by the sniffer): end the upstream after initialUp. */
  clientEnded?: boolean;
}

export type RelayEnd = 'done' | 'idle' | 'error' | 'closed';

export class Relay {
  bytesUp = 0;
  bytesDown = 0;
  lastActivity = Date.now();
  readonly done: Promise<RelayEnd>;
  private finish!: (how: RelayEnd) => void;
  private finished = false;
  private idleTimer: NodeJS.Timeout | undefined;
  private readonly client: net.Socket;
  private readonly up: Upstream;
  private readonly idleMs: number;

  constructor(client: net.Socket, up: Upstream, o: RelayOptions) {
    this.client = client;
    this.up = up;
    this.idleMs = o.idleTimeoutMs;
    this.done = new Promise((resolve) => (this.finish = resolve));
    const us = up.socket;
    // A relay forwards what it gets at once: Nagle's algorithm on top would hold a small write
    // (the byte after a SOCKS reply, a keystroke) until the previous one is acknowledged, and a
    // delayed ACK turns that into tens of milliseconds per exchange.
    client.setNoDelay(true);
    us.setNoDelay(true);

    // client → upstream
    for (const b of o.initialUp ?? []) {
      this.bytesUp += b.length;
      us.write(b);
    }
    client.on('data', (chunk: Buffer) => {
      this.bytesUp += chunk.length;
      this.lastActivity = Date.now();
      if (!us.write(chunk)) client.pause();
    });
    us.on('drain', () => client.resume());
    // The client's FIN may already have been consumed while the flow was being decided.
    if (o.clientEnded || client.readableEnded) us.end();
    else client.on('end', () => us.end());

    // upstream → client (onread callback; returning false stops reading until drain)
    let upPaused = false;
    const down = (chunk: Buffer): boolean => {
      this.bytesDown += chunk.length;
      this.lastActivity = Date.now();
      if (!client.write(chunk, (err) => err || recycleChunk(chunk))) {
        upPaused = true;
        return false;
      }
      return true;
    };
    for (const b of up.takePending()) down(b);
    up.onData = down;
    client.on('drain', () => {
      if (upPaused) {
        upPaused = false;
        us.resume();
      }
    });
    us.on('end', () => client.end());

    const onError = () => this.close('error');
    client.on('error', onError);
    us.on('error', onError);
    // A socket closes once both of its directions are done; the session is then over.
    client.on('close', () => this.close('done'));
    us.on('close', () => this.close('done'));
    if (client.isPaused()) client.resume();
    this.armIdle(this.idleMs);
  }

  private armIdle(ms: number): void {
    if (this.idleMs <= 0) return;
    this.idleTimer = setTimeout(() => {
      const quiet = Date.now() - this.lastActivity;
      if (quiet >= this.idleMs) this.close('idle');
      else this.armIdle(this.idleMs - quiet);
    }, ms);
    this.idleTimer.unref();
  }

  close(how: RelayEnd = 'closed'): void {
    if (this.finished) return;
    // 'done' on one socket's close: let the other finish flushing what it already has queued.
    this.finished = true;
    clearTimeout(this.idleTimer);
    if (how === 'done') {
      let flushing = false;
      if (!this.client.destroyed && this.client.writableLength > 0) {
        this.client.end();
        flushing = true;
      } else this.client.destroy();
      if (!this.up.socket.destroyed && this.up.socket.writableLength > 0) {
        this.up.socket.end();
        flushing = true;
      } else this.up.socket.destroy();
      // Whatever is still open after a grace period is torn down. Nothing is when both sockets
      // were destroyed above: no timer then. The timer is cleared as soon as the flushing
      // sockets have closed (the usual case: the last bytes and the FIN are gone within
      // microseconds): a timer left to run its 5 s held both sockets and the relay that long,
      // and those survivors were most of the garbage collector's work in connection-rate runs.
      if (flushing) {
        const grace = setTimeout(() => {
          this.client.destroy();
          this.up.socket.destroy();
        }, 5000).unref();
        let open = 0;
        const gone = () => {
          if (--open === 0) clearTimeout(grace);
        };
        for (const s of [this.client, this.up.socket]) {
          if (s.closed) continue;
          open++;
          s.once('close', gone);
        }
        if (open === 0) clearTimeout(grace);
      }
    } else {
      this.client.destroy();
      this.up.socket.destroy();
    }
    this.finish(how);
  }
}
