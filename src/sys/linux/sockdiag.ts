// sock_diag (NETLINK_SOCK_DIAG, sock_diag(7)): dump TCP sockets with their inode, and destroy one
// (SOCK_DESTROY, what `ss -K` does; needs CONFIG_INET_DIAG_DESTROY and CAP_NET_ADMIN).
import { OsCallError } from '../../errors.ts';
import { NETLINK_SOCK_DIAG, NLMSG_DONE, NLMSG_ERROR, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, NetlinkSocket, nlMessage, parseNlMessages } from './netlink.ts';

export const SOCK_DIAG_BY_FAMILY = 20;
export const SOCK_DESTROY = 21;
export const IPPROTO_TCP = 6;
export const AF_INET = 2;
export const AF_INET6 = 10;
export const TCP_LISTEN = 10;

/** struct inet_diag_sockid (linux/inet_diag.h): 48 bytes. Ports and addresses in network order. */
export const inet_diag_sockid = { size: 48, idiag_sport: 0, idiag_dport: 2, idiag_src: 4, idiag_dst: 20, idiag_if: 36, idiag_cookie: 40 } as const;
/** struct inet_diag_req_v2: 56 bytes. */
export const inet_diag_req_v2 = { size: 56, sdiag_family: 0, sdiag_protocol: 1, idiag_ext: 2, pad: 3, idiag_states: 4, id: 8 } as const;
/** struct inet_diag_msg: 72 bytes. */
export const inet_diag_msg = {
  size: 72,
  idiag_family: 0,
  idiag_state: 1,
  idiag_timer: 2,
  idiag_retrans: 3,
  id: 4,
  idiag_expires: 52,
  idiag_rqueue: 56,
  idiag_wqueue: 60,
  idiag_uid: 64,
  idiag_inode: 68,
} as const;

export interface DiagSocket {
  family: number;
  state: number;
  inode: number;
  /** The raw inet_diag_sockid bytes, echoed back in SOCK_DESTROY. */
  id: Buffer;
}

function request(family: number, states: number, id?: Buffer): Buffer {
  const r = Buffer.alloc(inet_diag_req_v2.size);
  r.writeUInt8(family, inet_diag_req_v2.sdiag_family);
  r.writeUInt8(IPPROTO_TCP, inet_diag_req_v2.sdiag_protocol);
  r.writeUInt32LE(states >>> 0, inet_diag_req_v2.idiag_states);
  if (id) id.copy(r, inet_diag_req_v2.id, 0, inet_diag_sockid.size);
  return r;
}

/** Parses one inet_diag_msg payload; throws naming the short read. */
export function parseDiagMsg(p: Buffer): DiagSocket {
  if (p.length < inet_diag_msg.size) throw new Error(`inet_diag_msg: ${p.length} bytes, need ${inet_diag_msg.size}`);
  return {
    family: p.readUInt8(inet_diag_msg.idiag_family),
    state: p.readUInt8(inet_diag_msg.idiag_state),
    inode: p.readUInt32LE(inet_diag_msg.idiag_inode),
    id: Buffer.from(p.subarray(inet_diag_msg.id, inet_diag_msg.id + inet_diag_sockid.size)),
  };
}

function errorCode(p: Buffer): number {
  if (p.length < 4) throw new Error('NLMSG_ERROR: payload shorter than its error field');
  return p.readInt32LE(0);
}

/** All TCP sockets of one family except listeners. */
export function dumpTcp(sock: NetlinkSocket, family: number, seq: number): DiagSocket[] {
  const states = 0xfff & ~(1 << TCP_LISTEN);
  sock.send(nlMessage(SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, seq, request(family, states)));
  const buf = Buffer.alloc(64 * 1024);
  const out: DiagSocket[] = [];
  for (;;) {
    const n = sock.recv(buf);
    if (n < 0) throw new OsCallError('SY_ERR_SYS_NETLINK', 'recv(sock_diag dump)', -n);
    for (const m of parseNlMessages(buf, n)) {
      if (m.type === NLMSG_DONE) return out;
      if (m.type === NLMSG_ERROR) {
        const e = errorCode(m.payload);
        if (e !== 0) throw new OsCallError('SY_ERR_SYS_NETLINK', 'SOCK_DIAG_BY_FAMILY', -e);
        continue;
      }
      if (m.type === SOCK_DIAG_BY_FAMILY) out.push(parseDiagMsg(m.payload));
    }
  }
}

/** Destroys one socket; returns 0 or the errno (ENOENT: already gone). */
export function destroy(sock: NetlinkSocket, s: DiagSocket, seq: number): number {
  sock.send(nlMessage(SOCK_DESTROY, NLM_F_REQUEST | NLM_F_ACK, seq, request(s.family, 0xffffffff, s.id)));
  const buf = Buffer.alloc(8192);
  const n = sock.recv(buf);
  if (n < 0) throw new OsCallError('SY_ERR_SYS_NETLINK', 'recv(SOCK_DESTROY ack)', -n);
  for (const m of parseNlMessages(buf, n)) if (m.type === NLMSG_ERROR) return -errorCode(m.payload);
  return 0;
}

/** Destroys every non-listening TCP socket whose inode is in `inodes`. Returns how many. */
export function destroyTcpByInode(inodes: Set<number>): number {
  if (inodes.size === 0) return 0;
  const sock = new NetlinkSocket(NETLINK_SOCK_DIAG);
  let seq = 1;
  let n = 0;
  try {
    sock.setRecvTimeout(2000);
    for (const fam of [AF_INET, AF_INET6]) {
      for (const s of dumpTcp(sock, fam, seq++)) {
        if (!inodes.has(s.inode)) continue;
        const e = destroy(sock, s, seq++);
        if (e === 0) n++;
        else if (e !== 2 /* ENOENT: closed meanwhile */) throw new OsCallError('SY_ERR_SYS_NETLINK', 'SOCK_DESTROY', e);
      }
    }
  } finally {
    sock.close();
  }
  return n;
}
