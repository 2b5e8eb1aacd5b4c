// Bench anchor: a minimal SOCKS5 CONNECT relay on its own epoll loop through koffi (no
// net.Socket), IPv4/IPv6 targets, no auth, nothing else — what a relay that skips node:net costs
// per connection on this machine. Prints its port, then serves until killed. Not switchyard's
// relay: no policy, sessions, timeouts or limits.
import * as L from '../src/sys/linux/tcp-epoll.ts';

const c = L.tcpRaw();
const BUF = 256 * 1024;
const buf = Buffer.allocUnsafe(BUF);
const ev1 = Buffer.alloc(L.EPOLL_EVENT_SIZE);
const MAXEV = 256;
const evs = Buffer.alloc(MAXEV * L.EPOLL_EVENT_SIZE);

interface Side {
  fd: number;
  peer: Side | null;
  flow: Flow;
  /** Bytes read from the peer that this fd has not taken yet (at most one read's worth). */
  pend: Buffer | null;
  rdEof: boolean;
  wrShut: boolean;
  events: number;
}
interface Flow {
  c: Side;
  u: Side | null;
  state: 0 | 1 | 2 | 3; // greeting, request, connecting, relay
  acc: Buffer | null;
  dead: boolean;
}
const sides = new Map<number, Side>();
const toClose: number[] = [];

const ep = c.epoll_create1(L.EPOLL_CLOEXEC);
function ctl(op: number, fd: number, events: number): void {
  ev1.writeUInt32LE(events, 0);
  ev1.writeInt32LE(fd, L.EPOLL_DATA_OFF);
  c.epoll_ctl(ep, op, fd, ev1);
}
function want(s: Side, events: number): void {
  if (s.events === events) return;
  s.events = events;
  ctl(L.EPOLL_CTL_MOD, s.fd, events);
}

const lfd = c.socket(L.AF_INET, L.SOCK_STREAM | L.SOCK_NONBLOCK | L.SOCK_CLOEXEC, 0);
const one = Buffer.alloc(4);
one.writeInt32LE(1);
c.setsockopt(lfd, L.SOL_SOCKET, L.SO_REUSEADDR, one, 4);
const sa = L.sockaddrFrom(Uint8Array.of(127, 0, 0, 1), 0);
if (c.bind(lfd, sa, sa.length) !== 0 || c.listen(lfd, 1024) !== 0) throw new Error(`bind/listen errno ${c.errno()}`);
const len = Buffer.alloc(4);
len.writeUInt32LE(sa.length);
c.getsockname(lfd, sa, len);
ctl(L.EPOLL_CTL_ADD, lfd, L.EPOLLIN);
process.stdout.write(`${sa.readUInt16BE(2)}\n`);

function closeFlow(f: Flow): void {
  if (f.dead) return;
  f.dead = true;
  sides.delete(f.c.fd);
  toClose.push(f.c.fd);
  if (f.u) {
    sides.delete(f.u.fd);
    toClose.push(f.u.fd);
  }
}

function send(s: Side, b: Uint8Array): void {
  // Handshake replies are tiny and the socket's buffer is empty: one write takes them.
  if (c.write(s.fd, b, b.length) !== b.length) closeFlow(s.flow);
}

const REPLY_OK = Buffer.from([5, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
function replyFail(f: Flow, code: number): void {
  const r = Buffer.from(REPLY_OK);
  r[1] = code;
  c.write(f.c.fd, r, r.length);
  closeFlow(f);
}

function handshake(s: Side): void {
  const f = s.flow;
  const n = c.read(s.fd, buf, 512);
  if (n <= 0) {
    if (n < 0 && c.errno() === L.EAGAIN) return;
    return closeFlow(f);
  }
  const acc = f.acc ? Buffer.concat([f.acc, buf.subarray(0, n)]) : Buffer.from(buf.subarray(0, n));
  f.acc = acc;
  if (acc.length > 1024) return closeFlow(f);
  let off = 0;
  if (f.state === 0) {
    if (acc.length < 2) return;
    if (acc[0] !== 5) return closeFlow(f);
    const need = 2 + acc[1]!;
    if (acc.length < need) return;
    if (!acc.subarray(2, need).includes(0)) {
      c.write(s.fd, Buffer.from([5, 0xff]), 2);
      return closeFlow(f);
    }
    send(s, Buffer.from([5, 0]));
    off = need;
    f.state = 1;
  }
  if (f.state === 1) {
    if (acc.length - off < 5) return void (f.acc = acc.subarray(off));
    if (acc[off] !== 5 || acc[off + 2] !== 0) return closeFlow(f);
    if (acc[off + 1] !== 1) return replyFail(f, 7);
    const atyp = acc[off + 3];
    const alen = atyp === 1 ? 4 : atyp === 4 ? 16 : -1;
    if (alen < 0) return replyFail(f, 8);
    const need = off + 4 + alen + 2;
    if (acc.length < need) return void (f.acc = acc.subarray(off));
    const addr = acc.subarray(off + 4, off + 4 + alen);
    const port = acc.readUInt16BE(off + 4 + alen);
    const rest = acc.length > need ? Buffer.from(acc.subarray(need)) : null;
    f.acc = null;
    const ufd = c.socket(alen === 4 ? L.AF_INET : L.AF_INET6, L.SOCK_STREAM | L.SOCK_NONBLOCK | L.SOCK_CLOEXEC, 0);
    if (ufd < 0) return replyFail(f, 1);
    const u: Side = { fd: ufd, peer: s, flow: f, pend: rest, rdEof: false, wrShut: false, events: L.EPOLLOUT };
    s.peer = u;
    f.u = u;
    sides.set(ufd, u);
    const target = L.sockaddrFrom(addr, port);
    const r = c.connect(ufd, target, target.length);
    if (r !== 0 && c.errno() !== L.EINPROGRESS) return replyFail(f, 5);
    f.state = 2;
    ctl(L.EPOLL_CTL_ADD, ufd, L.EPOLLOUT);
    want(s, 0);
  }
}

const errLen = Buffer.alloc(4);
const errVal = Buffer.alloc(4);
function connected(u: Side): void {
  const f = u.flow;
  errLen.writeUInt32LE(4);
  c.getsockopt(u.fd, L.SOL_SOCKET, L.SO_ERROR, errVal, errLen);
  const e = errVal.readInt32LE(0);
  if (e !== 0) return replyFail(f, e === L.ECONNREFUSED ? 5 : e === L.ENETUNREACH ? 3 : e === L.EHOSTUNREACH ? 4 : 1);
  send(f.c, REPLY_OK);
  if (f.dead) return;
  f.state = 3;
  update(f.c);
  update(u);
  if (u.pend) flush(u);
}

/** Writes what is pending to s; on success resumes reading its peer. */
function flush(s: Side): void {
  const p = s.pend!;
  const w = c.write(s.fd, p, p.length);
  if (w < 0 && c.errno() !== L.EAGAIN) return closeFlow(s.flow);
  if (w === p.length) {
    s.pend = null;
    const peer = s.peer!;
    update(s);
    update(peer);
    if (peer.rdEof && !s.wrShut) shutWr(s);
  } else if (w > 0) s.pend = p.subarray(w);
}

/** Interest from state: read unless at EOF or the peer still holds our last read; write while something is pending. */
function update(s: Side): void {
  want(s, (s.rdEof || s.peer!.pend ? 0 : L.EPOLLIN) | (s.pend ? L.EPOLLOUT : 0));
}

function shutWr(s: Side): void {
  s.wrShut = true;
  c.shutdown(s.fd, L.SHUT_WR);
  if (s.rdEof && s.peer!.wrShut) closeFlow(s.flow);
}

function readable(s: Side): void {
  const peer = s.peer!;
  const n = c.read(s.fd, buf, BUF);
  if (n > 0) {
    const w = c.write(peer.fd, buf, n);
    if (w === n) return;
    if (w < 0 && c.errno() !== L.EAGAIN) return closeFlow(s.flow);
    peer.pend = Buffer.from(buf.subarray(w > 0 ? w : 0, n));
    update(s);
    update(peer);
    return;
  }
  if (n < 0) {
    if (c.errno() === L.EAGAIN) return;
    return closeFlow(s.flow);
  }
  s.rdEof = true;
  update(s);
  if (!peer.pend) shutWr(peer);
  if (!s.flow.dead && s.rdEof && peer.rdEof && s.wrShut && peer.wrShut) closeFlow(s.flow);
}

// PROTO_SECONDS: exit after that long (for --cpu-prof / perf runs; a signal would skip the profile).
const stopAt = process.env.PROTO_SECONDS ? Date.now() + Number(process.env.PROTO_SECONDS) * 1000 : Infinity;
for (;;) {
  const n = c.epoll_wait(ep, evs, MAXEV, stopAt === Infinity ? -1 : 100);
  if (Date.now() > stopAt) process.exit(0);
  for (let i = 0; i < n; i++) {
    const o = i * L.EPOLL_EVENT_SIZE;
    const events = evs.readUInt32LE(o);
    const fd = evs.readInt32LE(o + L.EPOLL_DATA_OFF);
    if (fd === lfd) {
      for (;;) {
        const cfd = c.accept4(lfd, null, null, L.SOCK_NONBLOCK | L.SOCK_CLOEXEC);
        if (cfd < 0) break;
        const f: Flow = { c: null as unknown as Side, u: null, state: 0, acc: null, dead: false };
        const s: Side = { fd: cfd, peer: null, flow: f, pend: null, rdEof: false, wrShut: false, events: L.EPOLLIN };
        f.c = s;
        sides.set(cfd, s);
        ctl(L.EPOLL_CTL_ADD, cfd, L.EPOLLIN);
      }
      continue;
    }
    const s = sides.get(fd);
    if (!s || s.flow.dead) continue;
    const f = s.flow;
    if (f.state < 2) {
      if (events & (L.EPOLLERR | L.EPOLLHUP) && !(events & L.EPOLLIN)) closeFlow(f);
      else handshake(s);
      continue;
    }
    if (f.state === 2) {
      if (s === f.u) connected(s);
      else if (events & (L.EPOLLERR | L.EPOLLHUP)) closeFlow(f);
      continue;
    }
    if (events & L.EPOLLERR) {
      closeFlow(f);
      continue;
    }
    if (events & L.EPOLLOUT && s.pend) flush(s);
    if (f.dead) continue;
    if (events & (L.EPOLLIN | L.EPOLLHUP) && !s.rdEof && !s.peer!.pend) readable(s);
    else if (events & L.EPOLLHUP && s.rdEof && s.wrShut) closeFlow(f);
  }
  for (const fd of toClose) c.close(fd);
  toClose.length = 0;
}
