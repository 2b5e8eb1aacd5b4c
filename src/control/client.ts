// Control client used by the CLI. One connection, requests numbered from 1, replies matched by
// id. Connection failures map to codes a user can act on: no daemon (NOT_RUNNING) or no access
// to the socket (PERMISSION). A daemon's error reply becomes a SwitchyardError with its code.
import { connect } from 'node:net';
import { ControlError, ERROR_CODES, SwitchyardError, type ErrorCode } from '../errors.ts';
import { FrameDecoder, PROTOCOL_VERSION, encodeFrame, parseBody, parseReply } from './frame.ts';
import { isPipeEndpoint } from './endpoint.ts';

/** A net.Socket, or a PipeStream (the Windows pipe opened through src/sys/windows/pipe-host.ts). */
interface Transport {
  on(event: 'data', listener: (chunk: Buffer) => void): unknown;
  on(event: 'error', listener: (err: Error) => void): unknown;
  on(event: 'close', listener: () => void): unknown;
  write(data: Buffer): boolean;
  end(): unknown;
  destroy(): unknown;
}

/** Win32 errors of opening the pipe → the codes the Unix client uses for the same situations. */
function pipeOpenError(endpoint: string, err: unknown): ControlError {
  const errno = (err as { errno?: number }).errno;
  if (errno === 2) return new ControlError('SY_ERR_CONTROL_NOT_RUNNING', `no daemon answers on ${endpoint} (is \`switchyard up\` running?)`, err);
  if (errno === 5) {
    return new ControlError('SY_ERR_CONTROL_PERMISSION', `no access to ${endpoint}: ask an administrator to add you to the control group or to [control] read_users`, err);
  }
  if (errno === 231) return new ControlError('SY_ERR_CONTROL_BUSY', `${endpoint} stayed busy`, err);
  return new ControlError('SY_ERR_CONTROL_CLOSED', `cannot open ${endpoint}: ${(err as Error).message}`, err);
}

export interface ClientOptions {
  /** Per call; default 10 s; 0 = no timeout (watch streams). A partial reply restarts it. */
  timeoutMs?: number;
}

export interface CallOptions extends ClientOptions {
  /** Receives partial results of a streaming method (`"more": true` replies). */
  onPartial?: (partial: unknown) => void;
}

function connectError(endpoint: string, err: NodeJS.ErrnoException): ControlError {
  switch (err.code) {
    case 'ENOENT':
    case 'ECONNREFUSED':
      return new ControlError('SY_ERR_CONTROL_NOT_RUNNING', `no daemon answers on ${endpoint} (is \`switchyard up\` running?)`, err);
    case 'EACCES':
    case 'EPERM':
      return new ControlError(
        'SY_ERR_CONTROL_PERMISSION',
        `no access to ${endpoint}: ask an administrator to add you to the control group or to [control] read_users`,
        err,
      );
    default:
      return new ControlError('SY_ERR_CONTROL_CLOSED', `cannot connect to ${endpoint}: ${err.code ?? err.message}`, err);
  }
}

/** Turns an error reply into an error carrying the daemon's code (unknown codes become FAILED). */
export function remoteError(code: string, message: string): SwitchyardError {
  if (code in ERROR_CODES) return new SwitchyardError(code as ErrorCode, message);
  return new ControlError('SY_ERR_CONTROL_FAILED', `${code}: ${message}`);
}

interface Pending {
  resolve(v: unknown): void;
  reject(e: Error): void;
  timer: NodeJS.Timeout | undefined;
  arm(): void;
  onPartial: ((partial: unknown) => void) | undefined;
}

export class ControlClient {
  readonly #socket: Transport;
  readonly #decoder = new FrameDecoder();
  readonly #pending = new Map<number, Pending>();
  readonly #timeoutMs: number;
  #nextId = 1;
  #failed: Error | undefined;

  private constructor(socket: Transport, timeoutMs: number) {
    this.#socket = socket;
    this.#timeoutMs = timeoutMs;
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('error', (err) => this.#failAll(new ControlError('SY_ERR_CONTROL_CLOSED', `control connection failed: ${err.message}`, err)));
    socket.on('close', () => this.#failAll(new ControlError('SY_ERR_CONTROL_CLOSED', 'the daemon closed the control connection')));
  }

  static async connect(endpoint: string, opts: ClientOptions = {}): Promise<ControlClient> {
    if (isPipeEndpoint(endpoint)) {
      // Not node:net: libuv opens with GENERIC_WRITE, which the pipe's DACL grants only to
      // administrators (it includes the right to create pipe instances); see pipe-worker.ts connect.
      const { openPipe } = await import('../sys/windows/pipe-host.ts');
      const stream = await openPipe(endpoint).catch((err: unknown) => {
        throw pipeOpenError(endpoint, err);
      });
      stream.on('error', () => {});
      return new ControlClient(stream, opts.timeoutMs ?? 10_000);
    }
    return new Promise((resolve, reject) => {
      const s = connect(endpoint);
      const onError = (err: NodeJS.ErrnoException) => reject(connectError(endpoint, err));
      s.once('error', onError);
      s.once('connect', () => {
        s.off('error', onError);
        resolve(new ControlClient(s, opts.timeoutMs ?? 10_000));
      });
    });
  }

  async call(method: string, params: unknown = null, opts: CallOptions = {}): Promise<unknown> {
    if (this.#failed) throw this.#failed;
    const id = this.#nextId++;
    const frame = encodeFrame({ v: PROTOCOL_VERSION, id, method, params });
    const timeoutMs = opts.timeoutMs ?? this.#timeoutMs;
    return new Promise((resolve, reject) => {
      const p: Pending = {
        resolve,
        reject,
        timer: undefined,
        onPartial: opts.onPartial,
        arm: () => {
          if (p.timer !== undefined) clearTimeout(p.timer);
          if (timeoutMs <= 0) return;
          p.timer = setTimeout(() => {
            this.#pending.delete(id);
            reject(new ControlError('SY_ERR_CONTROL_TIMEOUT', `no answer to '${method}' within ${timeoutMs} ms`));
          }, timeoutMs);
        },
      };
      p.arm();
      this.#pending.set(id, p);
      this.#socket.write(frame);
    });
  }

  close(): void {
    this.#socket.end();
    this.#socket.destroy();
  }

  #onData(chunk: Buffer): void {
    let bodies: Buffer[];
    try {
      bodies = this.#decoder.push(chunk);
    } catch (err) {
      this.#failAll(err as Error);
      this.#socket.destroy();
      return;
    }
    for (const body of bodies) {
      let reply;
      try {
        reply = parseReply(parseBody(body));
      } catch (err) {
        this.#failAll(err as Error);
        this.#socket.destroy();
        return;
      }
      if (reply.id === null) {
        // The server could not tie the error to a request (it is closing the connection): fail all.
        this.#failAll(remoteError(reply.ok ? 'SY_ERR_CONTROL_FAILED' : reply.error.code, reply.ok ? 'reply without id' : reply.error.message));
        continue;
      }
      const p = this.#pending.get(reply.id);
      if (!p) continue; // timed out already
      if (reply.ok && reply.more === true) {
        p.arm();
        try {
          p.onPartial?.(reply.result);
        } catch {
          /* the caller's callback; not the connection's problem */
        }
        continue;
      }
      this.#pending.delete(reply.id);
      clearTimeout(p.timer);
      if (reply.ok) p.resolve(reply.result);
      else p.reject(remoteError(reply.error.code, reply.error.message));
    }
  }

  #failAll(err: Error): void {
    this.#failed ??= err;
    for (const [id, p] of this.#pending) {
      clearTimeout(p.timer);
      this.#pending.delete(id);
      p.reject(err);
    }
  }
}

/** Connect, make one call, close. */
export async function callDaemon(endpoint: string, method: string, params: unknown = null, opts: CallOptions = {}): Promise<unknown> {
  const c = await ControlClient.connect(endpoint, opts);
  try {
    return await c.call(method, params, opts);
  } finally {
    c.close();
  }
}
