// Pausing a Node dgram socket's reading. A fast listener's socket has two readers that must never
// read at the same time (fast-handover.ts), and one of them is a dgram socket: Node has no public
// way to pause a UDP socket, so the libuv handle under it is reached through Node's internals.
import type { Socket as UdpSocket } from 'node:dgram';

/** libuv's uv_udp_recv_stop / uv_udp_recv_start on the handle under a dgram socket. */
export interface RecvControl {
  recvStop(): number;
  recvStart(): number;
}

/**
 * The handle under a dgram socket, for recvStop/recvStart. Found by its symbol's description;
 * null if Node's internals differ, and the fast path is then not used (FastUdp.start throws, the
 * listener is a plain dgram socket).
 */
export function recvControl(sock: UdpSocket): RecvControl | null {
  const sym = Object.getOwnPropertySymbols(sock).find((x) => x.description === 'state symbol');
  const h = sym ? (sock as unknown as Record<symbol, { handle?: { recvStop?: unknown; recvStart?: unknown } } | undefined>)[sym]?.handle : undefined;
  if (!h || typeof h.recvStop !== 'function' || typeof h.recvStart !== 'function') return null;
  return h as RecvControl;
}
