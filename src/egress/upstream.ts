// Outgoing TCP sockets. Every upstream socket reads into one shared large buffer (net's `onread`
// option): the callback runs synchronously right after the read, copies the bytes out and hands
// them to whoever consumes the socket now — the handshake reader of a proxy connector, then the
// relay. Large reads into a preallocated buffer measured ~1.6–1.9 GB/s against ~1.1 GB/s for
// pipe() (CONVENTIONS.md). One shared buffer serves every socket because no bytes outlive the
// callback.
import net from 'node:net';
import { EgressError, type EgressFailure } from '../errors.ts';
import type { CancelSignal } from './cancel.ts';

const READ_BUFFER_SIZE = 1 << 20;
let sharedReadBuffer: Buffer | undefined;

// A bulk flow skips that copy: once a socket has done a large read, its next reads go straight
// into a slab of their own (net's `onread.buffer` may be a function, called before each read for
// the buffer to read into), and a large read is handed on as is. A small read into a slab is
// copied out and the slab goes back to the pool, and the socket returns to the shared buffer: a
// slab is only ever carried by a write of at least SLAB_MIN_READ bytes — above the writable
// high-water mark, so the relay pauses that socket until it is written (one slab in flight per
// bulk direction). Short flows (handshakes, a connection-rate loop) never leave the shared buffer.
//
// Large reads are copied into recycled slabs rather than fresh allocations: a fresh megabyte is
// fresh pages, and faulting them in cost more than the copy itself (profiled). A slab returns to
// the pool when the write that carried it completes (see Relay); small reads get exact-size
// buffers (from Node's shared pool when small). The pool keeps at most SLAB_POOL_MAX idle slabs; in-flight slabs are bounded by
// back-pressure (a paused flow holds at most the chunk it could not write).
const SLAB_SIZE = READ_BUFFER_SIZE;
const SLAB_MIN_READ = 64 * 1024;
const SLAB_POOL_MAX = 32;
const slabPool: Buffer[] = [];

function copyOut(buf: Uint8Array, n: number): Buffer {
  if (n < SLAB_MIN_READ) {
    // Small reads (a SOCKS reply, a first byte) come from Node's shared pool: a buffer of its
    // own is an ArrayBuffer with its own backing store, and sweeping those was a visible share
    // of garbage collection in connection-rate profiles. Above the pool's size this is the same
    // as allocUnsafeSlow.
    const b = Buffer.allocUnsafe(n);
    b.set(buf.subarray(0, n));
    return b;
  }
  const slab = slabPool.pop() ?? Buffer.allocUnsafeSlow(SLAB_SIZE);
  slab.set(buf.subarray(0, n));
  return slab.subarray(0, n);
}

/** Gives a chunk from an Upstream back once nothing references it any more (its write completed). */
export function recycleChunk(chunk: Buffer): void {
  if (chunk.byteOffset === 0 && chunk.buffer.byteLength === SLAB_SIZE && slabPool.length < SLAB_POOL_MAX) slabPool.push(Buffer.from(chunk.buffer));
}

/** Options for creating an unconnected outgoing socket. */
export interface SocketRequest {
  family: 4 | 6;
  /** Bind to this interface (SO_BINDTODEVICE) before connecting. */
  device?: string;
  /** Passed to the net.Socket constructor (onread, allowHalfOpen). */
  socketOptions: Omit<net.SocketConstructorOpts, 'fd'>;
}

/**
 * Makes unconnected outgoing sockets. The daemon injects the OS's exempt-socket maker (Linux:
 * libc socket() + SO_MARK, src/sys/linux/socket.ts); the default is a plain net.Socket, which
 * cannot bind to a device and throws when asked to.
 */
export type SocketFactory = (req: SocketRequest) => net.Socket;

export const plainSocketFactory: SocketFactory = (req) => {
  if (req.device !== undefined) throw new Error('binding to a device needs the OS socket factory');
  return new net.Socket(req.socketOptions);
};

/** A connected outgoing socket whose incoming bytes go to `onData` (or wait in `pending`). */
export class Upstream {
  readonly socket: net.Socket;
  /** Bytes that arrived while nobody consumed them; the relay writes these first. */
  pending: Buffer[] = [];
  /** Receives each chunk; returning false pauses the socket (back-pressure). */
  onData: ((chunk: Buffer) => boolean) | null = null;
  bytesIn = 0;

  /** The last read was large: read the next one into a slab of its own (no copy). */
  private bulk = false;

  constructor(factory: SocketFactory, family: 4 | 6, device?: string) {
    if (!sharedReadBuffer) sharedReadBuffer = Buffer.allocUnsafe(READ_BUFFER_SIZE);
    const shared = sharedReadBuffer;
    this.socket = factory({
      family,
      device,
      socketOptions: {
        allowHalfOpen: true,
        onread: {
          buffer: () => (this.bulk ? (slabPool.pop() ?? Buffer.allocUnsafeSlow(SLAB_SIZE)) : shared),
          callback: (n: number, buf: Uint8Array) => {
            this.bytesIn += n;
            let chunk: Buffer;
            if (buf.buffer === shared.buffer) {
              // Copy out: the shared buffer is reused by the next read of any socket.
              chunk = copyOut(buf, n);
              this.bulk = n >= SLAB_MIN_READ;
            } else if (n >= SLAB_MIN_READ) {
              // This socket's own slab: handed on as is; the write that carries it recycles it.
              chunk = Buffer.from(buf.buffer, buf.byteOffset, n);
            } else {
              chunk = copyOut(buf, n);
              if (slabPool.length < SLAB_POOL_MAX) slabPool.push(Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength));
              this.bulk = false;
            }
            if (this.onData) return this.onData(chunk);
            this.pending.push(chunk);
            return true;
          },
        },
      } as net.SocketConstructorOpts,
    });
  }

  takePending(): Buffer[] {
    const p = this.pending;
    this.pending = [];
    return p;
  }

  destroy(): void {
    this.socket.destroy();
  }
}

export function failureOfErrno(code: string | undefined): EgressFailure {
  switch (code) {
    case 'ECONNREFUSED':
      return 'refused';
    case 'ENETUNREACH':
    case 'ENETDOWN':
      return 'net-unreachable';
    case 'ETIMEDOUT':
      return 'timeout';
    default:
      return 'host-unreachable';
  }
}

export interface DialOptions {
  factory: SocketFactory;
  egress: string;
  address: string;
  port: number;
  timeoutMs: number;
  device?: string;
  localAddress?: string;
  signal?: CancelSignal | undefined;
  /** What a failure means: reaching the destination (`target`) or the egress's proxy (`proxy`). */
  role: 'target' | 'proxy';
}

/** Connects a new Upstream to an IP literal; rejects with an EgressError naming the failure. */
export function dial(o: DialOptions): Promise<Upstream> {
  if (o.signal?.aborted) return Promise.reject(new EgressError('SY_ERR_EGRESS_CONNECT', 'timeout', o.egress, 'aborted before dialling'));
  const family = net.isIP(o.address);
  if (family !== 4 && family !== 6) return Promise.reject(new EgressError('SY_ERR_EGRESS_CONNECT', 'host-unreachable', o.egress, `not an IP address: ${o.address}`));
  let up: Upstream;
  try {
    up = new Upstream(o.factory, family, o.device);
  } catch (err) {
    return Promise.reject(new EgressError('SY_ERR_EGRESS_INTERFACE', 'interface', o.egress, `cannot create socket: ${(err as Error).message}`, { cause: err }));
  }
  return new Promise((resolve, reject) => {
    const s = up.socket;
    const done = (err?: EgressError) => {
      clearTimeout(timer);
      s.off('error', onError);
      o.signal?.removeEventListener('abort', onAbort);
      if (err) {
        s.destroy();
        reject(err);
      } else resolve(up);
    };
    const wrap = (failure: EgressFailure, msg: string, cause?: unknown) => {
      const where = `${o.address.includes(':') ? `[${o.address}]` : o.address}:${o.port}`;
      return o.role === 'proxy'
        ? new EgressError('SY_ERR_EGRESS_PROXY', 'proxy', o.egress, `proxy ${where} ${msg}`, { cause, proxyUnreachable: true })
        : new EgressError('SY_ERR_EGRESS_CONNECT', failure, o.egress, `${where} ${msg}`, { cause });
    };
    const onError = (err: NodeJS.ErrnoException) => done(wrap(failureOfErrno(err.code), `failed: ${err.code ?? err.message}`, err));
    const onAbort = () => done(wrap('timeout', 'aborted'));
    const timer = setTimeout(() => done(wrap('timeout', `timed out after ${o.timeoutMs} ms`)), o.timeoutMs);
    s.once('error', onError);
    o.signal?.addEventListener('abort', onAbort, { once: true });
    s.setNoDelay(true); // proxy handshakes and relayed small writes must not wait for ACKs
    s.connect({ host: o.address, port: o.port, ...(o.localAddress ? { localAddress: o.localAddress } : {}) }, () => done());
  });
}
