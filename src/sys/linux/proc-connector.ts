// The netlink process connector (linux/cn_proc.h, linux/connector.h): the kernel multicasts an event
// for every fork/exec/exit to listeners of CN_IDX_PROC. Needs CAP_NET_ADMIN and works only in the
// initial network namespace (the kernel sends nothing to sockets in other namespaces).
//
//   nlmsghdr (16) | cn_msg (20): id.idx id.val seq ack len flags | proc_event: what cpu ts_ns | data
import { OsCallError } from '../../errors.ts';
import { NETLINK_CONNECTOR, NLMSG_DONE, NetlinkSocket, nlMessage, parseNlMessages } from './netlink.ts';

export const CN_IDX_PROC = 1;
export const CN_VAL_PROC = 1;
export const PROC_CN_MCAST_LISTEN = 1;
export const PROC_CN_MCAST_IGNORE = 2;
export const PROC_EVENT_FORK = 0x1;
export const PROC_EVENT_EXEC = 0x2;
export const PROC_EVENT_EXIT = 0x80000000;

/** struct cn_msg: 20 bytes, then `len` bytes of data. */
export const cn_msg = { size: 20, id_idx: 0, id_val: 4, seq: 8, ack: 12, len: 16, flags: 18 } as const;
/** struct proc_event header: what, cpu, timestamp_ns; event_data follows at 16. */
export const proc_event = { what: 0, cpu: 4, timestamp_ns: 8, event_data: 16 } as const;
/** struct exec_proc_event: process_pid, process_tgid. */
export const exec_proc_event = { size: 8, process_pid: 0, process_tgid: 4 } as const;

export interface ExecEvent {
  pid: number;
  tgid: number;
  /** CLOCK_MONOTONIC nanoseconds when the kernel saw the exec. */
  timestampNs: bigint;
}

export function subscribeMessage(op: number): Buffer {
  const cn = Buffer.alloc(cn_msg.size + 4);
  cn.writeUInt32LE(CN_IDX_PROC, cn_msg.id_idx);
  cn.writeUInt32LE(CN_VAL_PROC, cn_msg.id_val);
  cn.writeUInt16LE(4, cn_msg.len);
  cn.writeUInt32LE(op, cn_msg.size);
  return nlMessage(NLMSG_DONE, 0, 0, cn);
}

/**
 * Parses one datagram into exec events; other events are ignored. Every length is checked
 * against the bytes present; a malformed message throws a named error.
 */
export function parseProcEvents(buf: Buffer, n: number): ExecEvent[] {
  const out: ExecEvent[] = [];
  for (const m of parseNlMessages(buf, n)) {
    const p = m.payload;
    if (p.length < cn_msg.size) throw new Error(`cn_msg: ${p.length} bytes, need ${cn_msg.size}`);
    if (p.readUInt32LE(cn_msg.id_idx) !== CN_IDX_PROC || p.readUInt32LE(cn_msg.id_val) !== CN_VAL_PROC) continue;
    const len = p.readUInt16LE(cn_msg.len);
    if (len > p.length - cn_msg.size) throw new Error(`cn_msg: data length ${len} exceeds the ${p.length - cn_msg.size} bytes present`);
    const ev = p.subarray(cn_msg.size, cn_msg.size + len);
    if (ev.length < proc_event.event_data) continue; // the ack to our subscription carries no event
    if (ev.readUInt32LE(proc_event.what) !== PROC_EVENT_EXEC) continue;
    if (ev.length < proc_event.event_data + exec_proc_event.size) throw new Error(`exec event: ${ev.length} bytes, need ${proc_event.event_data + exec_proc_event.size}`);
    out.push({
      pid: ev.readInt32LE(proc_event.event_data + exec_proc_event.process_pid),
      tgid: ev.readInt32LE(proc_event.event_data + exec_proc_event.process_tgid),
      timestampNs: ev.readBigUInt64LE(proc_event.timestamp_ns),
    });
  }
  return out;
}

/** An open, subscribed proc connector socket. recv blocks up to `timeoutMs`: run it in a worker. */
export class ProcConnector {
  readonly sock: NetlinkSocket;
  readonly buf = Buffer.alloc(64 * 1024);

  constructor(timeoutMs = 250) {
    this.sock = new NetlinkSocket(NETLINK_CONNECTOR);
    try {
      this.sock.setRecvBuffer(4 * 1024 * 1024);
      this.sock.bind(CN_IDX_PROC);
      this.sock.setRecvTimeout(timeoutMs);
      this.sock.send(subscribeMessage(PROC_CN_MCAST_LISTEN));
    } catch (err) {
      this.sock.close();
      throw err;
    }
  }

  /** Exec events of one datagram; [] on timeout. Throws on ENOBUFS (events were lost). */
  next(): ExecEvent[] {
    const n = this.sock.recv(this.buf);
    if (n === -11 /* EAGAIN */ || n === -4 /* EINTR */) return [];
    if (n < 0) throw new OsCallError('SY_ERR_SYS_NETLINK', 'recv(proc connector)', -n);
    return parseProcEvents(this.buf, n);
  }

  close(): void {
    try {
      this.sock.send(subscribeMessage(PROC_CN_MCAST_IGNORE));
    } catch {
      // closing anyway
    }
    this.sock.close();
  }
}
