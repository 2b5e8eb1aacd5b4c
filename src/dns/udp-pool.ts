// Outgoing UDP for plain-DNS upstreams: a small pool of sockets, each bound to a port the kernel
// picks at random, each retired after a number of queries (so the source port keeps changing),
// shared by concurrent queries. A reply is matched on (source address, source port, ID) and then
// on the question bytes (0x20 case included); anything else is ignored while the query waits.
// Saves creating a socket per query (a measurable part of miss latency) without settling on a
// fixed, guessable port.
import type { Socket as UdpSocket } from 'node:dgram';
import { headerOnlyError, matchesQuery } from './answer.ts';
import type { OutQuery } from './build.ts';
import { randomId } from './build.ts';
import { DnsError } from './errors.ts';

interface Pending {
  q: OutQuery;
  resolve: (b: Buffer) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

interface Member {
  sock: UdpSocket;
  ready: Promise<void>;
  uses: number;
  retired: boolean;
  pending: Map<string, Pending>;
}

export interface UdpPoolOptions {
  /** Sockets per address family. */
  size?: number;
  /** Queries a socket carries before it is replaced by one on a new random port. */
  maxUses?: number;
}

export class UdpSocketPool {
  readonly #create: (family: 4 | 6) => UdpSocket;
  readonly #size: number;
  readonly #maxUses: number;
  readonly #members: Record<4 | 6, (Member | undefined)[]> = { 4: [], 6: [] };
  #closed = false;
  #next = 0;
  /** Replies dropped because nothing was waiting for them (wrong source, ID or question). */
  ignored = 0;

  constructor(create: (family: 4 | 6) => UdpSocket, opts: UdpPoolOptions = {}) {
    this.#create = create;
    this.#size = opts.size ?? 8;
    this.#maxUses = opts.maxUses ?? 100;
  }

  #member(family: 4 | 6): Member {
    const list = this.#members[family];
    const i = this.#next++ % this.#size;
    let m = list[i];
    if (m && m.uses >= this.#maxUses) {
      this.#retire(m);
      m = undefined;
    }
    if (!m) {
      m = this.#open(family);
      list[i] = m;
    }
    return m;
  }

  #open(family: 4 | 6): Member {
    const sock = this.#create(family);
    const m: Member = {
      sock,
      uses: 0,
      retired: false,
      pending: new Map(),
      ready: new Promise<void>((resolve, reject) => {
        sock.once('error', reject);
        sock.bind(0, family === 6 ? '::' : '0.0.0.0', () => {
          sock.removeListener('error', reject);
          resolve();
        });
      }),
    };
    m.ready.catch(() => {});
    sock.on('error', () => {}); // ICMP and send errors surface as timeouts of the queries concerned
    sock.on('message', (msg, rinfo) => {
      if (msg.length < 12) return void this.ignored++;
      const key = `${rinfo.address}|${rinfo.port}|${(msg[0]! << 8) | msg[1]!}`;
      const p = m.pending.get(key);
      if (!p) return void this.ignored++;
      try {
        matchesQuery(msg, p.q.buf, p.q.qEnd);
      } catch {
        const rcode = headerOnlyError(msg, p.q.buf);
        if (rcode <= 0) return void this.ignored++;
        this.#settle(m, key, p);
        p.reject(new DnsError('SY_ERR_DNS_UPSTREAM', `${rinfo.address}:${rinfo.port} answered rcode ${rcode} without a question`));
        return;
      }
      this.#settle(m, key, p);
      p.resolve(msg);
    });
    return m;
  }

  #settle(m: Member, key: string, p: Pending): void {
    clearTimeout(p.timer);
    m.pending.delete(key);
    if (m.retired && m.pending.size === 0) safeClose(m.sock);
  }

  #retire(m: Member): void {
    m.retired = true;
    if (m.pending.size === 0) safeClose(m.sock);
  }

  /** Sends `q` to ip:port and waits for the matching reply. */
  async exchange(ip: string, port: number, family: 4 | 6, q: OutQuery, timeoutMs: number, label: string): Promise<Buffer> {
    if (this.#closed) throw new DnsError('SY_ERR_DNS_UPSTREAM', 'forwarder is closing');
    const m = this.#member(family);
    m.uses++;
    await m.ready;
    let id = q.buf.readUInt16BE(0);
    let key = `${ip}|${port}|${id}`;
    while (m.pending.has(key)) {
      id = randomId();
      q.buf.writeUInt16BE(id, 0);
      key = `${ip}|${port}|${id}`;
    }
    return new Promise<Buffer>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#settle(m, key, p);
        reject(new DnsError('SY_ERR_DNS_TIMEOUT', `${label} did not answer in ${timeoutMs} ms`));
      }, timeoutMs);
      const p: Pending = { q, resolve, reject, timer };
      m.pending.set(key, p);
      m.sock.send(q.buf, port, ip, (err) => {
        if (err && m.pending.get(key) === p) {
          this.#settle(m, key, p);
          reject(new DnsError('SY_ERR_DNS_UPSTREAM', `${label}: send failed: ${err.message}`, err));
        }
      });
    });
  }

  close(): void {
    this.#closed = true;
    for (const fam of [4, 6] as const) {
      for (const m of this.#members[fam]) {
        if (!m) continue;
        for (const [key, p] of m.pending) {
          clearTimeout(p.timer);
          m.pending.delete(key);
          p.reject(new DnsError('SY_ERR_DNS_UPSTREAM', 'forwarder closed'));
        }
        safeClose(m.sock);
      }
      this.#members[fam] = [];
    }
  }
}

function safeClose(s: UdpSocket): void {
  try {
    s.close();
  } catch {
    // already closed
  }
}
