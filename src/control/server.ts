// The control server: local IPC only (a Unix socket, or a named pipe on Windows); no HTTP.
//
// Per connection: the caller's identity is read once from the kernel at accept; each frame is
// decoded strictly and answered in order; a bad frame gets an error reply and the connection
// keeps going; an oversize announcement, a stalled half-frame or a flood of queued requests get
// an error reply and a close. Nothing a client sends can stop the server or other connections.
import { createServer, type Server, type Socket } from 'node:net';
import { lstatSync, unlinkSync } from 'node:fs';
import { dirname } from 'node:path';
import { ControlError, SwitchyardError, isSwitchyardError } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { RunMode } from '../paths.ts';
import { CONTROL_GROUP } from '../ids.ts';
import { type AccountFiles, SYSTEM_ACCOUNT_FILES, lookupGroup } from './accounts.ts';
import { type Caller, type PeerIdentity, classifyCaller } from './auth.ts';
import {
  clearStaleSocket,
  isPipeEndpoint,
  prepareRuntimeDir,
  publishSocket,
  tempSocketPath,
  type SocketAccess,
} from './endpoint.ts';
import { FrameDecoder, PROTOCOL_VERSION, encodeFrame, idOf, parseBody, parseRequest, type Reply } from './frame.ts';
import { MethodRegistry, applyPrivacy, checkPermission, ownedBy, type CallContext } from './registry.ts';

/**
 * What the server needs of a connection: a net.Socket (Unix socket) or a PipeStream (the Windows
 * pipe served through src/sys/windows/pipe-host.ts).
 */
export interface ControlConnection {
  readonly destroyed: boolean;
  on(event: 'data', listener: (chunk: Buffer) => void): unknown;
  on(event: 'error', listener: (err: Error) => void): unknown;
  once(event: 'close' | 'drain', listener: () => void): unknown;
  write(data: Buffer): boolean;
  end(data: Buffer): unknown;
  destroy(): unknown;
  setTimeout(ms: number, cb: () => void): unknown;
}

/**
 * Serves a named pipe and hands over each connection with its caller already identified — or the
 * reason it could not be (the server then refuses it with SY_ERR_CONTROL_IDENTITY). Returns a closer.
 * Windows: src/control/identity-windows.ts windowsPipeListener.
 */
export type PipeListen = (
  endpoint: string,
  accept: (conn: ControlConnection, caller: Caller | Error) => void,
  log: Logger | undefined,
) => Promise<{ close(): void | Promise<void> }>;

export interface ControlServerOptions {
  /** Unix socket path or `\\.\pipe\name` (src/paths.ts `controlEndpoint`). */
  endpoint: string;
  mode: RunMode;
  registry: MethodRegistry;
  /**
   * Reads the peer's identity from an accepted connection (Linux: SO_PEERCRED), or returns the
   * classified Caller itself (Windows pipe: src/control/identity-windows.ts).
   */
  identify?: (socket: Socket) => PeerIdentity | Caller;
  /** Required for a `\\.\pipe\` endpoint: serves it and identifies each caller (see PipeListen). */
  listenPipe?: PipeListen;
  /** `[control] group`. */
  group?: string;
  /** `[control] read_users`. */
  readUsers?: readonly string[];
  /** Owner of the runtime directory and "the daemon user" in user mode; default process uid. */
  uid?: number;
  files?: AccountFiles;
  log?: Logger;
  /** Connections of unprivileged callers in all (privileged callers have as many again of their own). */
  maxConnections?: number;
  /** Connections per unprivileged uid, so one local user cannot take every slot. */
  maxPerUid?: number;
  /** A connection with no request in progress and nothing received for this long is closed. */
  idleTimeoutMs?: number;
  /** A frame must arrive completely within this time once it has started (no byte trickling). */
  frameTimeoutMs?: number;
  /** Requests received but not yet answered on one connection before it is closed. */
  maxQueued?: number;
}

/**
 * Socket file mode (docs/control.md): user mode 0600 (the user's own daemon); service mode 0660
 * with the control group when it exists (else 0600: root only), and 0666 when read_users is set
 * (others must be able to connect; the server then checks each call).
 */
export function socketAccess(mode: RunMode, group: string, readUsers: readonly string[], files: AccountFiles): SocketAccess {
  if (mode === 'user') return { mode: 0o600, gid: undefined };
  if (readUsers.length > 0) return { mode: 0o666, gid: lookupGroup(group, files)?.gid };
  const g = lookupGroup(group, files);
  return g === undefined ? { mode: 0o600, gid: undefined } : { mode: 0o660, gid: g.gid };
}

export class ControlServer {
  readonly opts: Required<Omit<ControlServerOptions, 'log' | 'uid' | 'identify' | 'listenPipe'>> & {
    log: Logger | undefined;
    uid: number;
    identify: ControlServerOptions['identify'];
    listenPipe: PipeListen | undefined;
  };
  #server: Server | undefined;
  #pipe: { close(): void | Promise<void> } | undefined;
  #published: { path: string; ino: number } | undefined;
  readonly #sockets = new Set<ControlConnection>();
  /** Live connections per account (uid, or SID on Windows), and per class (privileged or not). */
  readonly #perUid = new Map<string, number>();
  readonly #perClass = { privileged: 0, unprivileged: 0 };

  constructor(opts: ControlServerOptions) {
    this.opts = {
      group: CONTROL_GROUP,
      readUsers: [],
      files: SYSTEM_ACCOUNT_FILES,
      maxConnections: 64,
      maxPerUid: 8,
      idleTimeoutMs: 30_000,
      frameTimeoutMs: 10_000,
      maxQueued: 32,
      ...opts,
      uid: opts.uid ?? (typeof process.getuid === 'function' ? process.getuid() : 0),
      log: opts.log,
      identify: opts.identify,
      listenPipe: opts.listenPipe,
    };
  }

  get connections(): number {
    return this.#sockets.size;
  }

  async listen(): Promise<void> {
    const { endpoint } = this.opts;
    if (isPipeEndpoint(endpoint)) {
      // Never node:net for a pipe: it cannot tell who is calling (docs/control.md).
      if (!this.opts.listenPipe) throw new ControlError('SY_ERR_CONTROL_ENDPOINT', `serving ${endpoint} needs the Windows pipe listener`);
      this.#pipe = await this.opts.listenPipe(endpoint, (conn, caller) => this.#accept(conn, caller), this.opts.log);
      return;
    }
    if (!this.opts.identify) throw new ControlError('SY_ERR_CONTROL_ENDPOINT', 'a Unix socket endpoint needs an identity reader');
    const server = createServer({ allowHalfOpen: false, pauseOnConnect: false }, (s) => this.#accept(s));
    server.on('error', (err) => this.opts.log?.error({ err }, 'control server error'));
    {
      prepareRuntimeDir(dirname(endpoint), this.opts.uid);
      const removed = await clearStaleSocket(endpoint);
      if (removed === 'removed') this.opts.log?.warn('removed a stale control socket left by a previous daemon');
      const tmp = tempSocketPath(endpoint);
      await listenOn(server, tmp).catch((err: Error) => {
        throw new ControlError('SY_ERR_CONTROL_ENDPOINT', `cannot listen on ${tmp}: ${err.message}`, err);
      });
      try {
        publishSocket(tmp, endpoint, socketAccess(this.opts.mode, this.opts.group, this.opts.readUsers, this.opts.files));
        this.#published = { path: endpoint, ino: lstatSync(endpoint).ino };
      } catch (err) {
        await new Promise<void>((r) => server.close(() => r()));
        throw err;
      }
    }
    this.#server = server;
  }

  /** Stops accepting, closes live connections, and removes the socket file if it is still ours. */
  async close(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    const pipe = this.#pipe;
    this.#pipe = undefined;
    if (pipe) await pipe.close();
    for (const s of this.#sockets) s.destroy();
    if (server) await new Promise<void>((r) => server.close(() => r()));
    const pub = this.#published;
    this.#published = undefined;
    if (pub) {
      try {
        // Only our own inode: a successor daemon may already have published its socket here.
        if (lstatSync(pub.path).ino === pub.ino) unlinkSync(pub.path);
      } catch {
        /* gone already */
      }
    }
  }

  #accept(socket: ControlConnection, given?: Caller | Error): void {
    const log = this.opts.log;
    socket.on('error', () => {}); // resets from clients are their business
    let caller: Caller;
    try {
      if (given instanceof Error) throw given;
      const id: PeerIdentity | Caller = given ?? this.opts.identify!(socket as Socket);
      caller = 'privileged' in id ? (id as Caller) : classifyCaller(id, {
        mode: this.opts.mode,
        daemonUid: this.opts.uid,
        group: this.opts.group,
        readUsers: this.opts.readUsers,
        files: this.opts.files,
      });
    } catch (err) {
      log?.warn({ err }, 'control caller identity unavailable; refusing the connection');
      refuse(socket, asControlError(err, 'SY_ERR_CONTROL_IDENTITY'));
      return;
    }
    // Limits are per class and per uid, so a flood by one unprivileged user can neither lock
    // out other users nor keep root from stopping the daemon.
    const cls = caller.privileged ? 'privileged' : 'unprivileged';
    const account = caller.sid ?? `uid:${caller.uid}`;
    log?.debug({ pid: caller.pid, uid: caller.uid, sid: caller.sid, privileged: caller.privileged, mayRead: caller.mayRead, reason: caller.reason }, 'control connection');
    const mine = this.#perUid.get(account) ?? 0;
    if (this.#perClass[cls] >= this.opts.maxConnections || (!caller.privileged && mine >= this.opts.maxPerUid)) {
      refuse(socket, new ControlError('SY_ERR_CONTROL_BUSY', 'too many control connections'));
      return;
    }
    this.#perClass[cls]++;
    this.#perUid.set(account, mine + 1);
    this.#sockets.add(socket);
    const gone = new AbortController();
    socket.once('close', () => {
      this.#sockets.delete(socket);
      this.#perClass[cls]--;
      const left = (this.#perUid.get(account) ?? 1) - 1;
      if (left <= 0) this.#perUid.delete(account);
      else this.#perUid.set(account, left);
      if (frameTimer !== undefined) clearTimeout(frameTimer);
      gone.abort();
    });

    const decoder = new FrameDecoder();
    let queue: Promise<void> = Promise.resolve();
    let queued = 0;
    let closing = false;
    let frameTimer: NodeJS.Timeout | undefined;
    const fatal = (id: number | null, err: SwitchyardError) => {
      if (closing) return;
      closing = true;
      refuse(socket, err, id);
    };

    // Idle: nothing received and no request in progress (a running `--watch` is not idle).
    socket.setTimeout(this.opts.idleTimeoutMs, () => {
      if (queued === 0 && decoder.pending === 0) socket.destroy();
    });

    socket.on('data', (chunk: Buffer) => {
      if (closing) return;
      let bodies: Buffer[];
      try {
        bodies = decoder.push(chunk);
      } catch (err) {
        fatal(null, asControlError(err, 'SY_ERR_CONTROL_BAD_FRAME'));
        return;
      }
      // A started frame has a deadline that trickling bytes does not extend.
      if ((bodies.length > 0 || decoder.pending === 0) && frameTimer !== undefined) {
        clearTimeout(frameTimer);
        frameTimer = undefined;
      }
      if (decoder.pending > 0 && frameTimer === undefined) {
        frameTimer = setTimeout(() => fatal(null, new ControlError('SY_ERR_CONTROL_TIMEOUT', 'incomplete message; closing')), this.opts.frameTimeoutMs);
        frameTimer.unref();
      }
      for (const body of bodies) {
        if (++queued > this.opts.maxQueued) {
          fatal(null, new ControlError('SY_ERR_CONTROL_BUSY', `more than ${this.opts.maxQueued} requests waiting on one connection`));
          return;
        }
        queue = queue.then(async () => {
          const reply = await this.#handle(body, caller, socket, gone.signal);
          queued--;
          if (!closing && !socket.destroyed) socket.write(reply);
        });
      }
    });
  }

  /** One request → one encoded reply frame. Never throws. */
  async #handle(body: Buffer, caller: Caller, socket: ControlConnection, signal: AbortSignal): Promise<Buffer> {
    let id: number | null = null;
    try {
      const obj = parseBody(body);
      id = idOf(obj);
      const req = parseRequest(obj);
      const spec = this.opts.registry.get(req.method);
      if (spec === undefined) throw new ControlError('SY_ERR_CONTROL_UNKNOWN_METHOD', `no control method '${req.method}'`);
      checkPermission(spec, caller);
      const id0 = req.id;
      const ctx: CallContext = {
        caller,
        signal,
        sees: (uid: number | undefined, sid?: string) => caller.privileged || ownedBy(caller, uid, sid),
        send: (partial: unknown) => {
          if (signal.aborted || socket.destroyed) {
            return Promise.reject(new ControlError('SY_ERR_CONTROL_CLOSED', 'the caller disconnected'));
          }
          const frame = encodeFrame({ v: PROTOCOL_VERSION, id: id0, ok: true, more: true, result: applyPrivacy(spec, partial, caller) } satisfies Reply);
          // Back-pressure: a caller that does not read slows its own stream, not the daemon.
          return new Promise((resolve) => (socket.write(frame) ? resolve() : socket.once('drain', () => resolve())));
        },
      };
      const result = applyPrivacy(spec, await spec.handler(req.params, ctx), caller);
      this.opts.log?.debug({ method: req.method, uid: caller.uid }, 'control call');
      try {
        return encodeFrame({ v: PROTOCOL_VERSION, id: req.id, ok: true, result } satisfies Reply);
      } catch (err) {
        throw asControlError(err, 'SY_ERR_CONTROL_FAILED');
      }
    } catch (err) {
      if (!isSwitchyardError(err)) this.opts.log?.error({ err }, 'control method failed');
      else if (err.code === 'SY_ERR_CONTROL_PERMISSION') this.opts.log?.info({ uid: caller.uid, sid: caller.sid, pid: caller.pid, code: err.code }, 'control call refused');
      return errorFrame(id, isSwitchyardError(err) ? err : new ControlError('SY_ERR_CONTROL_FAILED', 'the method failed; see the daemon log'));
    }
  }
}

/** Sends a last error reply and closes; a peer that never reads is dropped after 2 s. */
function refuse(socket: ControlConnection, err: SwitchyardError, id: number | null = null): void {
  socket.end(errorFrame(id, err));
  setTimeout(() => socket.destroy(), 2000).unref();
}

function errorFrame(id: number | null, err: SwitchyardError): Buffer {
  return encodeFrame({ v: PROTOCOL_VERSION, id, ok: false, error: { code: err.code, message: err.message.slice(0, 4096) } } satisfies Reply);
}

function asControlError(err: unknown, fallback: ConstructorParameters<typeof ControlError>[0]): SwitchyardError {
  if (isSwitchyardError(err)) return err;
  return new ControlError(fallback, err instanceof Error ? err.message : String(err), err);
}

function listenOn(server: Server, path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => reject(err);
    server.once('error', onError);
    server.listen(path, () => {
      server.off('error', onError);
      resolve();
    });
  });
}
