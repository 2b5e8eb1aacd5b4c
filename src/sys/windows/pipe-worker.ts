// The pipe worker: one worker thread that owns every handle of one pipe server (or of one client
// connection) and does all their I/O with SYNCHRONOUS koffi calls in non-blocking pipe mode
// (PIPE_NOWAIT). Started by src/sys/windows/pipe-host.ts; messages in pipe-protocol.ts.
//
// Why this shape (docs/control.md "Windows"):
//  - No overlapped I/O, no completion port, no koffi async call: every call returns before the worker
//    goes on, and no buffer or OVERLAPPED is ever written by the system after its call returned. (The
//    overlapped design on branch ctlwin crashed node.exe under Wine about one run in three.)
//  - Not blocking calls: on a handle opened without FILE_FLAG_OVERLAPPED, Windows serialises all I/O
//    of the file object, so a ReadFile waiting for a request would hold up the WriteFile of a reply
//    or of a `--watch` stream on the same handle. In PIPE_NOWAIT mode ConnectNamedPipe, ReadFile and
//    WriteFile all return at once (ERROR_PIPE_LISTENING, ERROR_NO_DATA, fewer bytes written), so one
//    thread serves every instance by polling and nothing is ever left pending in the kernel: closing
//    is a CloseHandle, with nothing to cancel.
//  - A worker thread, not the main thread: impersonating a client changes the calling thread's token,
//    and the poll loop sleeps between turns (Atomics.wait, woken at once by the main thread when it
//    has something to write).
// Idle cost: one turn per maxIdleMs (default 20 ms); after any activity the sleep restarts at 1 ms.
import koffi from 'koffi';
import { isMainThread, parentPort, receiveMessageOnPort, workerData, type MessagePort } from 'node:worker_threads';
import { isSwitchyardError } from '../../errors.ts';
import { ok } from './load.ts';
import { kernel32, lastError } from './kernel32.ts';
import { pipeClientTokenFacts, securityDescriptorFromSddl } from './advapi32.ts';
import { SECURITY_ATTRIBUTES } from './types.ts';
import {
  ERROR_BROKEN_PIPE,
  ERROR_FILE_NOT_FOUND,
  ERROR_NO_DATA,
  ERROR_PIPE_BUSY,
  ERROR_PIPE_CONNECTED,
  ERROR_PIPE_LISTENING,
  ERROR_PIPE_NOT_CONNECTED,
  FILE_FLAG_FIRST_PIPE_INSTANCE,
  FILE_WRITE_ATTRIBUTES,
  FILE_WRITE_DATA,
  GENERIC_READ,
  OPEN_EXISTING,
  PIPE_ACCESS_DUPLEX,
  PIPE_NOWAIT,
  PIPE_READMODE_BYTE,
  PIPE_REJECT_REMOTE_CLIENTS,
  PIPE_TYPE_BYTE,
  PIPE_UNLIMITED_INSTANCES,
  SECURITY_IDENTIFICATION,
  SECURITY_SQOS_PRESENT,
} from './constants.ts';
import { PIPE_IO_BYTES, WAKE_INDEX, type CallFailure, type ClientInit, type FromWorker, type ServerInit, type ToWorker, type WorkerInit } from './pipe-protocol.ts';

const INVALID_HANDLE_ADDRESS = 0xffff_ffff_ffff_ffffn;
/** Reads per connection per turn, so one busy client cannot starve the others. */
const READS_PER_TURN = 16;
/**
 * Bytes per WriteFile: a quarter of the pipe's buffer. In PIPE_NOWAIT mode a write that does not fit
 * returns with fewer bytes written; should a system write nothing unless the whole request fits (Windows
 * may also round the buffer size we asked for), a request well below the buffer's size still goes
 * through once the client has read, so a reply can never stall for good.
 */
const WRITE_BYTES = PIPE_IO_BYTES / 4;

class CallError extends Error {
  readonly failure: CallFailure;
  constructor(failure: CallFailure) {
    super(failure.message);
    this.failure = failure;
  }
}

function failure(call: string, errno: number | undefined, detail?: string): CallFailure {
  return { call, errno, message: `${call} failed${errno === undefined ? '' : ` (errno ${errno})`}${detail ? `: ${detail}` : ''}` };
}

function asFailure(err: unknown, call: string): CallFailure {
  if (err instanceof CallError) return err.failure;
  if (isSwitchyardError(err) && 'call' in err) {
    const e = err as unknown as { call: string; errno: number | undefined; message: string };
    return { call: e.call, errno: e.errno, message: e.message };
  }
  return failure(call, undefined, err instanceof Error ? err.message : String(err));
}

function badHandle(h: unknown): boolean {
  return h === null || koffi.address(h) === 0n || koffi.address(h) === INVALID_HANDLE_ADDRESS;
}

interface OutChunk {
  seq: number;
  data: Uint8Array;
  off: number;
}

/** One connected handle (a server instance with a client, or the client's own handle). */
interface Conn {
  id: number;
  h: unknown;
  pid: number;
  connectedAt: number;
  /** Server: the client's token was read and `conn` sent. Client: always true. */
  identified: boolean;
  paused: boolean;
  ending: boolean;
  out: OutChunk[];
}

export class PipeWorkerLoop {
  readonly #k = kernel32.get();
  readonly #post: (m: FromWorker) => void;
  readonly #port: MessagePort;
  readonly #wake: Int32Array;
  readonly #buf = Buffer.alloc(PIPE_IO_BYTES);
  readonly #count = [0];
  readonly #conns = new Map<number, Conn>();
  #nextId = 1;
  #stopping = false;
  /** Server: connections not yet identified. */
  #unidentified = 0;

  constructor(post: (m: FromWorker) => void, port: MessagePort, wake: SharedArrayBuffer) {
    this.#post = post;
    this.#port = port;
    this.#wake = new Int32Array(wake);
  }

  /** Sleeps until woken or `ms` pass; `seen` is the wake word read before the turn began. */
  #sleep(seen: number, ms: number): void {
    Atomics.wait(this.#wake, WAKE_INDEX, seen, ms);
  }

  // ------------------------------------------------------------ messages from the main thread

  /** Applies every queued message; true when there was one. */
  #drainMessages(): boolean {
    let any = false;
    for (;;) {
      const m = receiveMessageOnPort(this.#port);
      if (m === undefined) return any;
      any = true;
      const msg = m.message as ToWorker;
      if (msg.t === 'stop') {
        this.#stopping = true;
        continue;
      }
      if (msg.t === 'crash') throw new Error('pipe worker crash requested (test)');
      const c = this.#conns.get(msg.id);
      if (c === undefined) continue; // closed meanwhile: `closed` is on its way
      switch (msg.t) {
        case 'write':
          c.out.push({ seq: msg.seq, data: msg.data, off: 0 });
          break;
        case 'pause':
          c.paused = true;
          break;
        case 'resume':
          c.paused = false;
          break;
        case 'end':
          c.ending = true;
          break;
        case 'destroy':
          this.#close(c);
          break;
      }
    }
  }

  // ------------------------------------------------------------ one connection

  #close(c: Conn, error?: CallFailure): void {
    if (!this.#conns.delete(c.id)) return;
    if (!c.identified) this.#unidentified--;
    this.#k.CloseHandle(c.h);
    if (c.identified) this.#post(error ? { t: 'closed', id: c.id, error } : { t: 'closed', id: c.id });
  }

  /** Reads what is there (never waits). True when something happened. */
  #readSome(c: Conn, identify: ((c: Conn) => void) | undefined): boolean {
    let busy = false;
    for (let i = 0; i < READS_PER_TURN && !c.paused && this.#conns.has(c.id); i++) {
      this.#count[0] = 0;
      const res = this.#k.ReadFile(c.h, this.#buf, PIPE_IO_BYTES, this.#count, null) as number;
      if (!ok(res)) {
        const err = lastError();
        if (err === ERROR_NO_DATA) return busy; // nothing waiting (PIPE_NOWAIT)
        if (err === ERROR_BROKEN_PIPE || err === ERROR_PIPE_NOT_CONNECTED) this.#close(c);
        else this.#close(c, failure('ReadFile', err));
        return true;
      }
      const n = Math.min(this.#count[0]!, PIPE_IO_BYTES);
      if (n === 0) continue;
      busy = true;
      if (!c.identified && identify) {
        identify(c);
        if (!this.#conns.has(c.id)) return true;
      }
      // A copy that the main thread receives (transferred, not shared).
      const data = new Uint8Array(n);
      data.set(this.#buf.subarray(0, n));
      this.#post({ t: 'data', id: c.id, data });
    }
    return busy;
  }

  /** Writes what fits (never waits). True when something happened. */
  #writeSome(c: Conn): boolean {
    let busy = false;
    while (c.out.length > 0 && this.#conns.has(c.id)) {
      const chunk = c.out[0]!;
      const len = Math.min(chunk.data.length - chunk.off, WRITE_BYTES);
      this.#count[0] = 0;
      const part = chunk.data.subarray(chunk.off, chunk.off + len);
      const res = this.#k.WriteFile(c.h, part, len, this.#count, null) as number;
      if (!ok(res)) {
        const err = lastError();
        // ERROR_NO_DATA on a write: "the pipe is being closed" (the client is gone).
        if (err === ERROR_NO_DATA || err === ERROR_BROKEN_PIPE || err === ERROR_PIPE_NOT_CONNECTED) this.#close(c);
        else this.#close(c, failure('WriteFile', err));
        return true;
      }
      const n = Math.min(this.#count[0]!, len);
      if (n === 0) return busy; // the pipe's buffer is full: the client has not read yet
      busy = true;
      chunk.off += n;
      if (chunk.off >= chunk.data.length) {
        c.out.shift();
        this.#post({ t: 'written', id: c.id, seq: chunk.seq });
      }
    }
    // Ending: everything written is in the pipe; the peer can still read it after we close.
    if (c.ending && c.out.length === 0 && this.#conns.has(c.id)) {
      this.#close(c);
      busy = true;
    }
    return busy;
  }

  #serveConns(identify: ((c: Conn) => void) | undefined, now: number, identifyTimeoutMs: number): boolean {
    let busy = false;
    for (const c of [...this.#conns.values()]) {
      if (!c.identified && now - c.connectedAt > identifyTimeoutMs) {
        this.#close(c);
        this.#post({ t: 'dropped', pid: c.pid, reason: 'sent nothing' });
        busy = true;
        continue;
      }
      if (this.#readSome(c, identify)) busy = true;
      if (this.#conns.has(c.id) && this.#writeSome(c)) busy = true;
    }
    return busy;
  }

  /** The poll loop: `turn` does one round of work and says whether anything happened. */
  #run(turn: () => boolean, maxIdleMs: number): void {
    let idle = 1;
    while (!this.#stopping) {
      const seen = Atomics.load(this.#wake, WAKE_INDEX);
      let busy = this.#drainMessages();
      if (this.#stopping) break;
      if (turn()) busy = true;
      if (busy) {
        idle = 1;
        continue;
      }
      this.#sleep(seen, idle);
      idle = Math.min(idle * 2, maxIdleMs);
    }
  }

  #closeAll(): void {
    for (const c of [...this.#conns.values()]) this.#close(c);
  }

  // ------------------------------------------------------------ server

  serve(init: ServerInit): void {
    const k = this.#k;
    let sd: unknown;
    try {
      sd = securityDescriptorFromSddl(init.sddl);
    } catch (err) {
      this.#post({ t: 'fatal', error: asFailure(err, 'ConvertStringSecurityDescriptorToSecurityDescriptorW') });
      return;
    }
    const sa = { nLength: koffi.sizeof(SECURITY_ATTRIBUTES), lpSecurityDescriptor: sd, bInheritHandle: 0 };
    const listening = new Set<unknown>();
    const create = (first: boolean): unknown => {
      const mode = PIPE_ACCESS_DUPLEX | (first ? FILE_FLAG_FIRST_PIPE_INSTANCE : 0);
      const pipeMode = PIPE_TYPE_BYTE | PIPE_READMODE_BYTE | PIPE_NOWAIT | PIPE_REJECT_REMOTE_CLIENTS;
      const h = k.CreateNamedPipeW(init.name, mode, pipeMode, PIPE_UNLIMITED_INSTANCES, PIPE_IO_BYTES, PIPE_IO_BYTES, 0, sa);
      if (badHandle(h)) {
        const err = lastError();
        throw new CallError(failure('CreateNamedPipeW', err, first ? `${init.name} already exists or cannot be created` : init.name));
      }
      return h;
    };
    const identify = (c: Conn) => {
      c.identified = true;
      this.#unidentified--;
      try {
        const facts = pipeClientTokenFacts(c.h);
        this.#post({ t: 'conn', id: c.id, pid: c.pid, facts });
      } catch (err) {
        // Fail closed: the main thread refuses a connection it cannot classify.
        this.#post({ t: 'conn', id: c.id, pid: c.pid, identityError: asFailure(err, 'ImpersonateNamedPipeClient') });
      }
    };
    try {
      // The first instance must be the only one: FILE_FLAG_FIRST_PIPE_INSTANCE refuses a name that
      // exists; the instance count is a second check (Wine ignores the flag).
      const first = create(true);
      const count = [0];
      if (!ok(k.GetNamedPipeHandleStateW(first, null, count, null, null, null, 0) as number) || count[0] !== 1) {
        const err = lastError();
        k.CloseHandle(first);
        throw new CallError(failure('CreateNamedPipeW', count[0] === 0 ? err : undefined, `${init.name} already exists (${count[0]} instances)`));
      }
      listening.add(first);
      while (listening.size < init.listeners) listening.add(create(false));
    } catch (err) {
      for (const h of listening) k.CloseHandle(h);
      k.LocalFree(sd);
      this.#post({ t: 'fatal', error: asFailure(err, 'CreateNamedPipeW') });
      return;
    }
    this.#post({ t: 'listening' });

    let replenishAfter = 0;
    const replenish = (now: number) => {
      if (now < replenishAfter) return;
      while (listening.size < init.listeners) {
        try {
          listening.add(create(false));
        } catch (err) {
          // The instances still open keep the name ours; try again a little later rather than spin.
          this.#post({ t: 'warn', error: asFailure(err, 'CreateNamedPipeW') });
          replenishAfter = now + 200;
          return;
        }
      }
    };
    const accept = (now: number): boolean => {
      let busy = false;
      for (const h of [...listening]) {
        const res = k.ConnectNamedPipe(h, null) as number;
        const err = ok(res) ? 0 : lastError();
        if (err === ERROR_PIPE_LISTENING) continue;
        busy = true;
        listening.delete(h);
        if (err !== 0 && err !== ERROR_PIPE_CONNECTED) {
          // ERROR_NO_DATA: the client came and went already. Anything else: report it.
          if (err !== ERROR_NO_DATA) this.#post({ t: 'warn', error: failure('ConnectNamedPipe', err) });
          k.CloseHandle(h);
          continue;
        }
        const pid = [0];
        if (!ok(k.GetNamedPipeClientProcessId(h, pid) as number)) {
          this.#post({ t: 'warn', error: failure('GetNamedPipeClientProcessId', lastError()) });
          k.CloseHandle(h);
          continue;
        }
        if (this.#unidentified >= init.maxUnidentified) {
          k.CloseHandle(h);
          this.#post({ t: 'dropped', pid: pid[0]!, reason: 'too many connections waiting to be identified' });
          continue;
        }
        this.#unidentified++;
        const c: Conn = { id: this.#nextId++, h, pid: pid[0]!, connectedAt: now, identified: false, paused: false, ending: false, out: [] };
        this.#conns.set(c.id, c);
      }
      replenish(now);
      return busy;
    };
    try {
      this.#run(() => {
        const now = Date.now();
        const a = accept(now);
        const b = this.#serveConns(identify, now, init.identifyTimeoutMs);
        return a || b;
      }, init.maxIdleMs);
    } finally {
      // Also when the loop throws: the worker dies, and the main thread's restart must find the name
      // free again (its first instance asks for FILE_FLAG_FIRST_PIPE_INSTANCE).
      for (const h of listening) k.CloseHandle(h);
      listening.clear();
      this.#closeAll();
      k.LocalFree(sd);
    }
    this.#post({ t: 'stopped' });
  }

  // ------------------------------------------------------------ client

  connect(init: ClientInit): void {
    const k = this.#k;
    const end = Date.now() + init.timeoutMs;
    let h: unknown;
    for (;;) {
      // GENERIC_READ | FILE_WRITE_DATA | FILE_WRITE_ATTRIBUTES: what the pipe's DACL grants ordinary
      // callers — not GENERIC_WRITE (it includes FILE_CREATE_PIPE_INSTANCE); FILE_WRITE_ATTRIBUTES is
      // what SetNamedPipeHandleState needs. Identification-level SQOS: the server may learn who we
      // are, never act as us (also against a squatter holding the name).
      h = k.CreateFileW(init.name, GENERIC_READ | FILE_WRITE_DATA | FILE_WRITE_ATTRIBUTES, 0, null, OPEN_EXISTING, SECURITY_SQOS_PRESENT | SECURITY_IDENTIFICATION, null);
      if (!badHandle(h)) break;
      const err = lastError();
      if (err !== ERROR_PIPE_BUSY || Date.now() >= end) {
        this.#post({ t: 'fatal', error: failure('CreateFileW', err, err === ERROR_FILE_NOT_FOUND ? `${init.name} does not exist` : init.name) });
        return;
      }
      // Every instance busy: the server replaces connected instances within a turn or two.
      this.#sleep(Atomics.load(this.#wake, WAKE_INDEX), 10);
      if (this.#drainMessages() && this.#stopping) return void this.#post({ t: 'stopped' });
    }
    const mode = [PIPE_READMODE_BYTE | PIPE_NOWAIT];
    if (!ok(k.SetNamedPipeHandleState(h, mode, null, null) as number)) {
      const err = lastError();
      k.CloseHandle(h);
      this.#post({ t: 'fatal', error: failure('SetNamedPipeHandleState', err) });
      return;
    }
    const c: Conn = { id: this.#nextId++, h, pid: 0, connectedAt: Date.now(), identified: true, paused: false, ending: false, out: [] };
    this.#conns.set(c.id, c);
    this.#post({ t: 'open', id: c.id });
    this.#run(() => {
      const busy = this.#serveConns(undefined, Date.now(), Infinity);
      // The connection is over: nothing more to do in this worker.
      if (this.#conns.size === 0) this.#stopping = true;
      return busy;
    }, init.maxIdleMs);
    this.#closeAll();
    this.#post({ t: 'stopped' });
  }
}

if (!isMainThread && parentPort !== null && (workerData as { switchyardPipe?: WorkerInit } | undefined)?.switchyardPipe) {
  const init = (workerData as { switchyardPipe: WorkerInit; port: MessagePort }).switchyardPipe;
  const port = (workerData as { port: MessagePort }).port;
  const pp = parentPort;
  const post = (m: FromWorker) => pp.postMessage(m, m.t === 'data' ? [m.data.buffer as ArrayBuffer] : []);
  try {
    // Off Windows (or without kernel32) the constructor throws SY_ERR_WIN_UNAVAILABLE: reported as fatal.
    const loop = new PipeWorkerLoop(post, port, init.wake);
    if (init.kind === 'server') loop.serve(init);
    else loop.connect(init);
  } catch (err) {
    post({ t: 'fatal', error: asFailure(err, 'pipe worker') });
  }
  port.close();
}
