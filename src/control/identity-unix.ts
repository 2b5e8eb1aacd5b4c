// The Unix identity reader for ControlServer: the kernel's SO_PEERCRED for the connection.
// Kept apart from server.ts so the server (and the Windows pipe path) never loads koffi/libc
// unless this reader is chosen by the daemon.
import type { Socket } from 'node:net';
import { peerCredOfSocket } from '../sys/linux/peercred.ts';
import type { PeerIdentity } from './auth.ts';

export function unixPeerIdentity(socket: Socket): PeerIdentity {
  return peerCredOfSocket(socket);
}
