// Socket → inode and uid by one exact sock_diag query (sock_diag(7): SOCK_DIAG_BY_FAMILY without
// NLM_F_DUMP, the 4-tuple in inet_diag_sockid, cookie INET_DIAG_NOCOOKIE). The kernel answers
// from its connection hash table, so the cost does not grow with the number of sockets on the
// host, unlike reading /proc/net/tcp{,6}. The reply is built while the request is sent, so the
// blocking recv returns at once (SO_RCVTIMEO bounds it anyway).
import { ipv6Bytes } from '../../egress/socks5-wire.ts';
import type { Endpoint } from '../../flow/types.ts';
import { NETLINK_SOCK_DIAG, NLMSG_ERROR, NLM_F_REQUEST, NetlinkSocket, nlMessage, parseNlMessages } from '../../sys/linux/netlink.ts';
import { AF_INET, AF_INET6, IPPROTO_TCP, SOCK_DIAG_BY_FAMILY, inet_diag_msg, inet_diag_req_v2, inet_diag_sockid } from '../../sys/linux/sockdiag.ts';

const ENOENT = 2;
const RECV_TIMEOUT_MS = 1000;

/** Writes an endpoint's address into a 16-byte inet_diag address field; false when unparsable. */
function putAddress(out: Buffer, at: number, e: Endpoint, family: number): boolean {
  if (family === AF_INET) {
    const parts = e.address.split('.');
    if (parts.length !== 4) return false;
    for (let i = 0; i < 4; i++) {
      const v = Number(parts[i]);
      if (!Number.isInteger(v) || v < 0 || v > 255) return false;
      out[at + i] = v;
    }
    return true;
  }
  if (!e.address.includes(':')) return false;
  ipv6Bytes(e.address).copy(out, at);
  return true;
}

/** Builds the request for the socket whose local end is `local` and remote end is `remote`. */
export function diagRequest(local: Endpoint, remote: Endpoint, seq: number): Buffer | undefined {
  const family = local.address.includes(':') ? AF_INET6 : AF_INET;
  const r = Buffer.alloc(inet_diag_req_v2.size);
  r.writeUInt8(family, inet_diag_req_v2.sdiag_family);
  r.writeUInt8(IPPROTO_TCP, inet_diag_req_v2.sdiag_protocol);
  r.writeUInt32LE(0xffffffff, inet_diag_req_v2.idiag_states);
  const id = inet_diag_req_v2.id;
  r.writeUInt16BE(local.port, id + inet_diag_sockid.idiag_sport);
  r.writeUInt16BE(remote.port, id + inet_diag_sockid.idiag_dport);
  if (!putAddress(r, id + inet_diag_sockid.idiag_src, local, family)) return undefined;
  if (!putAddress(r, id + inet_diag_sockid.idiag_dst, remote, family)) return undefined;
  // INET_DIAG_NOCOOKIE: match by the tuple alone.
  r.writeUInt32LE(0xffffffff, id + inet_diag_sockid.idiag_cookie);
  r.writeUInt32LE(0xffffffff, id + inet_diag_sockid.idiag_cookie + 4);
  return nlMessage(SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST, seq, r);
}

/**
 * Reads the answer to request `seq` from a received datagram: the inode and uid, null for "no
 * such socket" (ENOENT), undefined when the datagram holds no answer to `seq`. Throws naming
 * any other error or a short message.
 */
export function parseDiagAnswer(buf: Buffer, n: number, seq: number): { inode: number; uid: number } | null | undefined {
  for (const m of parseNlMessages(buf, n)) {
    if (m.seq !== seq) continue; // a late answer to an earlier request
    if (m.type === NLMSG_ERROR) {
      if (m.payload.length < 4) throw new Error('NLMSG_ERROR: payload shorter than its error field');
      const e = -m.payload.readInt32LE(0);
      if (e === ENOENT) return null;
      throw new Error(`sock_diag: errno ${e}`);
    }
    if (m.type === SOCK_DIAG_BY_FAMILY) {
      if (m.payload.length < inet_diag_msg.size) throw new Error(`inet_diag_msg: ${m.payload.length} bytes, need ${inet_diag_msg.size}`);
      return { inode: m.payload.readUInt32LE(inet_diag_msg.idiag_inode), uid: m.payload.readUInt32LE(inet_diag_msg.idiag_uid) };
    }
  }
  return undefined;
}

export class SocketDiag {
  private readonly sock: NetlinkSocket;
  private seq = 1;
  private readonly buf = Buffer.alloc(8192);

  private constructor(sock: NetlinkSocket) {
    this.sock = sock;
  }

  /** A netlink socket for lookups, or null where sock_diag is unavailable. */
  static open(): SocketDiag | null {
    try {
      const s = new NetlinkSocket(NETLINK_SOCK_DIAG);
      s.setRecvTimeout(RECV_TIMEOUT_MS);
      return new SocketDiag(s);
    } catch {
      return null;
    }
  }

  /** The TCP socket with these ends; undefined when there is none. Throws when netlink fails. */
  find(local: Endpoint, remote: Endpoint): { inode: number; uid: number } | undefined {
    const seq = (this.seq = (this.seq + 1) >>> 0 || 1);
    const req = diagRequest(local, remote, seq);
    if (!req) return undefined;
    this.sock.send(req);
    for (let tries = 0; tries < 8; tries++) {
      const n = this.sock.recv(this.buf);
      if (n < 0) throw new Error(`sock_diag recv: errno ${-n}`);
      const a = parseDiagAnswer(this.buf, n, seq);
      if (a === null) return undefined;
      if (a) return a;
    }
    throw new Error('sock_diag: no answer to the request');
  }

  close(): void {
    this.sock.close();
  }
}
