// Setting up the control endpoint. A Unix socket path gets a runtime directory we own (0755), a
// stale-socket check, and its final mode and group *before* it becomes reachable: the server
// binds a private temporary name, sets mode/owner, then hard-links it to the public name
// (link(2) fails if the name exists, so two daemons starting at once cannot steal each other's
// socket). A Windows named pipe (`\\.\pipe\...`) needs none of this; its ACL is the Windows
// backend's job. Which kind an endpoint is follows from its form, not from the OS we run on.
import { connect } from 'node:net';
import { chmodSync, chownSync, linkSync, lstatSync, mkdirSync, unlinkSync } from 'node:fs';
import { dirname } from 'node:path';
import { ControlError } from '../errors.ts';

export const PIPE_PREFIX = '\\\\.\\pipe\\';

export function isPipeEndpoint(endpoint: string): boolean {
  return endpoint.startsWith(PIPE_PREFIX);
}

export const RUNTIME_DIR_MODE = 0o755;

/**
 * Creates the runtime directory (0755) or checks an existing one is a directory we own. Its parent
 * must not let others replace it: owned by root or us, and not writable by group/others unless
 * sticky (like /tmp). This catches a pre-created /tmp/switchyard-UID owned by someone else.
 */
export function prepareRuntimeDir(dir: string, uid: number): void {
  const parent = dirname(dir);
  let pst;
  try {
    pst = lstatSync(parent);
  } catch {
    pst = undefined; // created below with our ownership
  }
  if (pst !== undefined) {
    const sticky = (pst.mode & 0o1000) !== 0;
    if (pst.uid !== 0 && pst.uid !== uid) {
      throw new ControlError('SY_ERR_CONTROL_ENDPOINT', `${parent} is owned by uid ${pst.uid}; refusing to place the control socket below it`);
    }
    if ((pst.mode & 0o022) !== 0 && !sticky) {
      throw new ControlError('SY_ERR_CONTROL_ENDPOINT', `${parent} is writable by others; refusing to place the control socket below it`);
    }
  }
  try {
    mkdirSync(dir, { recursive: true, mode: RUNTIME_DIR_MODE });
  } catch (err) {
    throw new ControlError('SY_ERR_CONTROL_ENDPOINT', `cannot create runtime directory ${dir}: ${(err as Error).message}`, err);
  }
  const st = lstatSync(dir);
  if (!st.isDirectory()) throw new ControlError('SY_ERR_CONTROL_ENDPOINT', `${dir} is not a directory`);
  // A directory someone else made could hold a socket they control: refuse it.
  if (st.uid !== uid) throw new ControlError('SY_ERR_CONTROL_ENDPOINT', `${dir} is owned by uid ${st.uid}, not ${uid}`);
  if ((st.mode & 0o777) !== RUNTIME_DIR_MODE) chmodSync(dir, RUNTIME_DIR_MODE);
}

/** Resolves true if something accepts a connection on the socket path within timeoutMs. */
export function probeSocket(path: string, timeoutMs = 1000): Promise<'live' | 'dead'> {
  return new Promise((resolve, reject) => {
    const s = connect(path);
    const timer = setTimeout(() => {
      s.destroy();
      resolve('live'); // accepted into the backlog but silent: someone holds it; do not remove
    }, timeoutMs);
    s.once('connect', () => {
      clearTimeout(timer);
      s.destroy();
      resolve('live');
    });
    s.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      if (err.code === 'ECONNREFUSED') resolve('dead');
      else reject(new ControlError('SY_ERR_CONTROL_ENDPOINT', `cannot probe ${path}: ${err.code ?? err.message}`, err));
    });
  });
}

/**
 * Handles whatever sits at the socket path: nothing → fine; a socket nobody answers on (a
 * crashed daemon's) → removed; a live one → SY_ERR_CONTROL_IN_USE; anything else → refused.
 */
export async function clearStaleSocket(path: string): Promise<'absent' | 'removed'> {
  let st;
  try {
    st = lstatSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'absent';
    throw new ControlError('SY_ERR_CONTROL_ENDPOINT', `cannot inspect ${path}: ${(err as Error).message}`, err);
  }
  if (!st.isSocket()) throw new ControlError('SY_ERR_CONTROL_ENDPOINT', `${path} exists and is not a socket; refusing to replace it`);
  if ((await probeSocket(path)) === 'live') {
    throw new ControlError('SY_ERR_CONTROL_IN_USE', `a daemon already answers on ${path}`);
  }
  unlinkSync(path);
  return 'removed';
}

export interface SocketAccess {
  mode: number;
  /** Group to own the socket, or undefined to keep the creator's. */
  gid: number | undefined;
}

/** Sets mode/group on the bound temporary socket and publishes it under the final name. */
export function publishSocket(tmpPath: string, finalPath: string, access: SocketAccess): void {
  try {
    if (access.gid !== undefined) chownSync(tmpPath, -1, access.gid);
    chmodSync(tmpPath, access.mode);
    linkSync(tmpPath, finalPath);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') throw new ControlError('SY_ERR_CONTROL_IN_USE', `${finalPath} appeared while starting (another daemon?)`, err);
    throw new ControlError('SY_ERR_CONTROL_ENDPOINT', `cannot publish ${finalPath}: ${(err as Error).message}`, err);
  } finally {
    try {
      unlinkSync(tmpPath);
    } catch {
      /* already gone */
    }
  }
}

export function tempSocketPath(finalPath: string): string {
  return `${dirname(finalPath)}/.${process.pid}-${Date.now().toString(36)}.sock.tmp`;
}
