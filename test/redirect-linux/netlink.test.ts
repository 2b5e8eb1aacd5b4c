// src/sys/linux/{netlink,proc-connector,sockdiag}.ts: the C layouts against the kernel headers
// (compiled with gcc here), and the parsers against hostile bytes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nlMessage, nlmsghdr, parseNlMessages, sockaddr_nl } from '../../src/sys/linux/netlink.ts';
import { cn_msg, exec_proc_event, parseProcEvents, proc_event, PROC_EVENT_EXEC, PROC_EVENT_FORK, subscribeMessage } from '../../src/sys/linux/proc-connector.ts';
import { inet_diag_msg, inet_diag_req_v2, inet_diag_sockid, parseDiagMsg } from '../../src/sys/linux/sockdiag.ts';

const C = `
#include <stdio.h>
#include <stddef.h>
#include <linux/netlink.h>
#include <linux/connector.h>
#include <linux/cn_proc.h>
#include <linux/inet_diag.h>
#define F(t, m) printf("\\"%s.%s\\": %zu,\\n", #t, #m, offsetof(struct t, m))
#define S(t) printf("\\"%s.size\\": %zu,\\n", #t, sizeof(struct t))
int main(void) {
  printf("{\\n");
  S(nlmsghdr); F(nlmsghdr, nlmsg_len); F(nlmsghdr, nlmsg_type); F(nlmsghdr, nlmsg_flags); F(nlmsghdr, nlmsg_seq); F(nlmsghdr, nlmsg_pid);
  S(sockaddr_nl); F(sockaddr_nl, nl_family); F(sockaddr_nl, nl_pid); F(sockaddr_nl, nl_groups);
  S(cn_msg); F(cn_msg, seq); F(cn_msg, ack); F(cn_msg, len); F(cn_msg, flags);
  printf("\\"cn_msg.id_idx\\": %zu,\\n\\"cn_msg.id_val\\": %zu,\\n", offsetof(struct cn_msg, id) + offsetof(struct cb_id, idx), offsetof(struct cn_msg, id) + offsetof(struct cb_id, val));
  F(proc_event, what); F(proc_event, cpu); F(proc_event, timestamp_ns); F(proc_event, event_data);
  printf("\\"exec_proc_event.size\\": %zu,\\n", sizeof(((struct proc_event *)0)->event_data.exec));
  S(inet_diag_sockid); F(inet_diag_sockid, idiag_sport); F(inet_diag_sockid, idiag_dport); F(inet_diag_sockid, idiag_src); F(inet_diag_sockid, idiag_dst); F(inet_diag_sockid, idiag_if); F(inet_diag_sockid, idiag_cookie);
  S(inet_diag_req_v2); F(inet_diag_req_v2, sdiag_family); F(inet_diag_req_v2, sdiag_protocol); F(inet_diag_req_v2, idiag_ext); F(inet_diag_req_v2, idiag_states); F(inet_diag_req_v2, id);
  S(inet_diag_msg); F(inet_diag_msg, idiag_family); F(inet_diag_msg, idiag_state); F(inet_diag_msg, id); F(inet_diag_msg, idiag_expires); F(inet_diag_msg, idiag_uid); F(inet_diag_msg, idiag_inode);
  printf("\\"end\\": 0}\\n");
  return 0;
}`;

test('struct layouts match the kernel headers', (t) => {
  if (spawnSync('sh', ['-c', 'command -v gcc']).status !== 0) return t.skip('needs gcc and the Linux UAPI headers');
  const dir = mkdtempSync(join(tmpdir(), 'sy-layout-'));
  try {
    writeFileSync(join(dir, 'l.c'), C);
    const cc = spawnSync('gcc', ['-o', join(dir, 'l'), join(dir, 'l.c')], { encoding: 'utf8' });
    if (cc.status !== 0) return t.skip(`gcc could not build the layout probe: ${cc.stderr.slice(0, 300)}`);
    const real = JSON.parse(spawnSync(join(dir, 'l'), { encoding: 'utf8' }).stdout) as Record<string, number>;
    const ours: Record<string, Record<string, number>> = { nlmsghdr, sockaddr_nl, cn_msg, proc_event, exec_proc_event, inet_diag_sockid, inet_diag_req_v2, inet_diag_msg };
    let checked = 0;
    for (const [key, value] of Object.entries(real)) {
      if (key === 'end') continue;
      const [struct, field] = key.split('.') as [string, string];
      assert.equal(ours[struct]?.[field], value, `${key}: ours ${ours[struct]?.[field]}, kernel ${value}`);
      checked++;
    }
    assert.ok(checked >= 40);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('netlink messages: lengths checked before each read', () => {
  const m = nlMessage(20, 0x301, 7, Buffer.from([1, 2, 3]));
  assert.equal(m.length, 20, 'padded to 4 bytes');
  assert.equal(m.readUInt32LE(0), 19);
  const parsed = parseNlMessages(m, m.length);
  assert.equal(parsed.length, 1);
  assert.deepEqual([...parsed[0]!.payload], [1, 2, 3]);
  const two = Buffer.concat([m, nlMessage(3, 0, 8, Buffer.alloc(0))]);
  assert.deepEqual(parseNlMessages(two, two.length).map((x) => x.type), [20, 3]);
  // Hostile: truncated header, length below header, length beyond the datagram.
  assert.throws(() => parseNlMessages(m, 10), /truncated header/);
  const short = Buffer.from(m);
  short.writeUInt32LE(8, 0);
  assert.throws(() => parseNlMessages(short, short.length), /below header size/);
  const long = Buffer.from(m);
  long.writeUInt32LE(4096, 0);
  assert.throws(() => parseNlMessages(long, long.length), /exceeds/);
});

function procEvent(what: number, pid: number, tgid: number, lenOverride?: number): Buffer {
  const ev = Buffer.alloc(proc_event.event_data + 24);
  ev.writeUInt32LE(what, proc_event.what);
  ev.writeBigUInt64LE(123456789n, proc_event.timestamp_ns);
  ev.writeInt32LE(pid, proc_event.event_data);
  ev.writeInt32LE(tgid, proc_event.event_data + 4);
  const cn = Buffer.alloc(cn_msg.size);
  cn.writeUInt32LE(1, cn_msg.id_idx);
  cn.writeUInt32LE(1, cn_msg.id_val);
  cn.writeUInt16LE(lenOverride ?? ev.length, cn_msg.len);
  return nlMessage(3, 0, 0, Buffer.concat([cn, ev]));
}

test('proc connector: exec events parsed, others ignored, hostile lengths refused', () => {
  const buf = Buffer.concat([procEvent(PROC_EVENT_FORK, 1, 1), procEvent(PROC_EVENT_EXEC, 42, 42)]);
  assert.deepEqual(parseProcEvents(buf, buf.length), [{ pid: 42, tgid: 42, timestampNs: 123456789n }]);
  const lying = procEvent(PROC_EVENT_EXEC, 42, 42, 60000);
  assert.throws(() => parseProcEvents(lying, lying.length), /exceeds/);
  const tiny = procEvent(PROC_EVENT_EXEC, 42, 42, proc_event.event_data + 2);
  assert.throws(() => parseProcEvents(tiny, tiny.length), /exec event/);
  const notCn = nlMessage(3, 0, 0, Buffer.alloc(8));
  assert.throws(() => parseProcEvents(notCn, notCn.length), /cn_msg/);
  const sub = subscribeMessage(1);
  assert.equal(sub.readUInt32LE(nlmsghdr.size + cn_msg.size), 1);
});

test('sock_diag: a short inet_diag_msg is refused', () => {
  assert.throws(() => parseDiagMsg(Buffer.alloc(inet_diag_msg.size - 1)), /inet_diag_msg/);
  const ok = Buffer.alloc(inet_diag_msg.size);
  ok.writeUInt32LE(99, inet_diag_msg.idiag_inode);
  ok.writeUInt8(10, inet_diag_msg.idiag_family);
  const d = parseDiagMsg(ok);
  assert.equal(d.inode, 99);
  assert.equal(d.family, 10);
  assert.equal(d.id.length, inet_diag_sockid.size);
  assert.equal(inet_diag_req_v2.size, 56);
});
