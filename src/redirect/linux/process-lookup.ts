// Which process owns a TCP socket, found by its 4-tuple: the socket's inode and uid first, then
// the process holding that inode.
//   - socket → inode: one exact sock_diag query (NETLINK_SOCK_DIAG, SOCK_DIAG_BY_FAMILY without
//     NLM_F_DUMP: the kernel looks the 4-tuple up in its hash table), ~tens of µs whatever the
//     number of sockets. Reading and parsing /proc/net/tcp{,6} instead costs time in proportion
//     to every socket on the host (tens of ms on a busy one) and is kept only as the fallback
//     (no netlink, or injected /proc roots in tests).
//   - inode → pid: /proc/<pid>/fd/* links ("socket:[inode]"). Scanning every fd of every process
//     is the expensive part, so:
//       - every scan records the socket inodes it sees (inode → pid), so later lookups of sockets
//         that already existed hit the map;
//       - on a miss, the most recently matched processes are scanned first (a browser opening its
//         hundredth connection is found without a full scan);
//       - concurrent misses share one in-flight full scan, and full scans are spaced at least
//         `minFullScanMs` apart.
//     The fd links are read with synchronous calls (a readlink of /proc is a few µs; the thread
//     pool's round trip per link was most of the old cost), one process at a time, yielding to
//     the event loop between processes.
// Roots are injectable for tests.
import { readFile } from 'node:fs/promises';
import { readdirSync, readlinkSync, readFileSync } from 'node:fs';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { join, basename } from 'node:path';
import type { Endpoint, ProcessInfo } from '../../flow/types.ts';
import { SocketDiag } from './process-lookup-diag.ts';

export interface ProcRoots {
  proc: string;
  passwd: string;
}

export const DEFAULT_PROC_ROOTS: ProcRoots = { proc: '/proc', passwd: '/etc/passwd' };

/**
 * Socket inodes in /proc/<pid>/fd (synchronous; an exited process has none), highest fd first.
 * With `stopAt`, reading stops once that inode is seen (it is the last element then): a new
 * socket usually has one of the highest fd numbers, so a process holding thousands of fds is
 * mostly not read at all.
 */
export function socketInodesOfPid(procRoot: string, pid: number, stopAt?: number): number[] {
  const dir = `${procRoot}/${pid}/fd`;
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const fds = names.map(Number).sort((x, y) => y - x);
  const out: number[] = [];
  for (const n of fds) {
    let link: string;
    try {
      link = readlinkSync(`${dir}/${n}`);
    } catch {
      continue; // closed meanwhile
    }
    // "socket:[12345]"
    if (link.length > 9 && link.startsWith('socket:[') && link.charCodeAt(link.length - 1) === 0x5d) {
      const ino = Number(link.slice(8, -1));
      if (Number.isInteger(ino)) out.push(ino);
      if (ino === stopAt) break;
    }
  }
  return out;
}

export interface TcpEntry {
  local: { address: string; port: number };
  remote: { address: string; port: number };
  uid: number;
  inode: number;
}

/** "0100007F:1F90" (IPv4, the u32 in host byte order, little-endian here) → 127.0.0.1:8080. */
function parseHexAddr(s: string): { address: string; port: number } | undefined {
  const [a, p] = s.split(':');
  if (!a || !p) return undefined;
  const port = parseInt(p, 16);
  if (a.length === 8) {
    const n = parseInt(a, 16);
    return { address: `${n & 0xff}.${(n >>> 8) & 0xff}.${(n >>> 16) & 0xff}.${(n >>> 24) & 0xff}`, port };
  }
  if (a.length === 32) {
    const bytes = Buffer.alloc(16);
    for (let w = 0; w < 4; w++) bytes.writeUInt32LE(parseInt(a.slice(w * 8, w * 8 + 8), 16) >>> 0, w * 4);
    const words: string[] = [];
    for (let i = 0; i < 8; i++) words.push(bytes.readUInt16BE(i * 2).toString(16));
    let address = new URL(`http://[${words.join(':')}]/`).hostname.slice(1, -1);
    const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(address);
    if (mapped) {
      const hi = parseInt(mapped[1]!, 16);
      const lo = parseInt(mapped[2]!, 16);
      address = `${hi >> 8}.${hi & 0xff}.${lo >> 8}.${lo & 0xff}`;
    }
    return { address, port };
  }
  return undefined;
}

/** Parses /proc/net/tcp or tcp6 text; malformed lines are skipped. */
export function parseProcNetTcp(text: string): TcpEntry[] {
  const out: TcpEntry[] = [];
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10) continue;
    const local = parseHexAddr(f[1]!);
    const remote = parseHexAddr(f[2]!);
    const uid = Number(f[7]);
    const inode = Number(f[9]);
    if (!local || !remote || !Number.isFinite(inode)) continue;
    out.push({ local, remote, uid, inode });
  }
  return out;
}

const MRU_SIZE = 32;
/** The inode → pid map is dropped when it grows past this (it is refilled by the next scans). */
const MAX_KNOWN_INODES = 1 << 16;

export class ProcessLookup {
  private readonly roots: ProcRoots;
  private readonly minFullScanMs: number;
  private inodeOwner = new Map<number, number>();
  private recent: number[] = [];
  private fullScan: Promise<void> | undefined;
  private lastFullScanAt = 0;
  private users: Map<number, string> | undefined;
  /** Counters for tests and `status`. */
  stats = { lookups: 0, hits: 0, mruHits: 0, fullScans: 0, diagLookups: 0, procNetReads: 0 };
  /** Exact sock_diag lookups; null when unavailable (then /proc/net/tcp is read). */
  private diag: SocketDiag | null | undefined;

  /** `sockDiag`: use sock_diag for socket → inode (default: when the roots are the real /proc). */
  constructor(roots: ProcRoots = DEFAULT_PROC_ROOTS, minFullScanMs = 100, o: { sockDiag?: boolean } = {}) {
    this.roots = roots;
    this.minFullScanMs = minFullScanMs;
    if (!(o.sockDiag ?? roots.proc === DEFAULT_PROC_ROOTS.proc)) this.diag = null;
  }

  /** The socket inode whose local and remote ends are the given ones. */
  async inodeOf(local: Endpoint, remote: Endpoint): Promise<{ inode: number; uid: number } | undefined> {
    if (this.diag === undefined) this.diag = SocketDiag.open();
    if (this.diag) {
      try {
        this.stats.diagLookups++;
        return this.diag.find(local, remote);
      } catch {
        // netlink failed (e.g. a kernel without inet_diag): the /proc/net text from now on.
        this.diag.close();
        this.diag = null;
      }
    }
    this.stats.procNetReads++;
    const files = local.family === 6 ? ['tcp6'] : ['tcp', 'tcp6'];
    for (const f of files) {
      const text = await readFile(join(this.roots.proc, 'net', f), 'utf8').catch(() => '');
      for (const e of parseProcNetTcp(text)) {
        if (e.local.port === local.port && e.remote.port === remote.port && e.local.address === local.address && e.remote.address === remote.address) return { inode: e.inode, uid: e.uid };
      }
    }
    return undefined;
  }

  private fdsOf(pid: number, stopAt?: number): number[] {
    return socketInodesOfPid(this.roots.proc, pid, stopAt);
  }

  private learn(pid: number, inodes: number[]): void {
    if (this.inodeOwner.size + inodes.length > MAX_KNOWN_INODES) this.inodeOwner = new Map();
    for (const i of inodes) this.inodeOwner.set(i, pid);
  }

  private remember(pid: number): void {
    this.recent = [pid, ...this.recent.filter((p) => p !== pid)].slice(0, MRU_SIZE);
  }

  private async scanAll(): Promise<void> {
    const wait = this.lastFullScanAt + this.minFullScanMs - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    this.stats.fullScans++;
    const map = new Map<number, number>();
    let entries: string[];
    try {
      entries = readdirSync(this.roots.proc);
    } catch {
      entries = [];
    }
    let n = 0;
    for (const e of entries) {
      const c = e.charCodeAt(0);
      if (!(c >= 0x30 && c <= 0x39)) continue;
      const pid = Number(e);
      if (!Number.isInteger(pid)) continue;
      for (const ino of this.fdsOf(pid)) map.set(ino, pid);
      // Let other flows and DNS run between processes (a full scan reads thousands of links).
      if (++n % 16 === 0) await yieldToLoop();
    }
    this.inodeOwner = map;
    this.lastFullScanAt = Date.now();
  }

  async pidOfInode(inode: number): Promise<number | undefined> {
    const cached = this.inodeOwner.get(inode);
    if (cached !== undefined) {
      this.stats.hits++;
      return cached;
    }
    for (const pid of this.recent) {
      const inodes = this.fdsOf(pid, inode);
      this.learn(pid, inodes);
      if (inodes[inodes.length - 1] === inode) {
        this.stats.mruHits++;
        return pid;
      }
    }
    if (!this.fullScan) this.fullScan = this.scanAll().finally(() => (this.fullScan = undefined));
    await this.fullScan;
    return this.inodeOwner.get(inode);
  }

  async processInfo(pid: number, uid?: number): Promise<ProcessInfo> {
    const base = join(this.roots.proc, String(pid));
    let exe: string | undefined;
    try {
      exe = readlinkSync(join(base, 'exe'));
    } catch {
      exe = undefined; // kernel thread, exited, or not ours to read
    }
    let comm = '';
    try {
      comm = readFileSync(join(base, 'comm'), 'utf8').trim();
    } catch {
      // exited meanwhile
    }
    const info: ProcessInfo = { pid };
    if (exe) info.exe = exe.replace(/ \(deleted\)$/, '');
    const name = info.exe ? basename(info.exe) : comm;
    if (name) info.name = name;
    if (uid !== undefined) {
      info.uid = uid;
      const user = (await this.userNames()).get(uid);
      if (user) info.user = user;
    }
    return info;
  }

  private async userNames(): Promise<Map<number, string>> {
    if (this.users) return this.users;
    const m = new Map<number, string>();
    const text = await readFile(this.roots.passwd, 'utf8').catch(() => '');
    for (const line of text.split('\n')) {
      const f = line.split(':');
      if (f.length >= 3 && /^\d+$/.test(f[2]!)) m.set(Number(f[2]), f[0]!);
    }
    this.users = m;
    return m;
  }

  /** Releases the netlink socket (a later lookup opens a new one). */
  close(): void {
    this.diag?.close();
    this.diag = undefined;
  }

  /** Process owning the TCP socket whose local end is `local` and remote end is `remote`. */
  async byTuple(local: Endpoint, remote: Endpoint): Promise<ProcessInfo | undefined> {
    this.stats.lookups++;
    const s = await this.inodeOf(local, remote);
    if (!s || s.inode === 0) return undefined;
    const pid = await this.pidOfInode(s.inode);
    if (pid === undefined) return undefined;
    this.remember(pid);
    return this.processInfo(pid, s.uid);
  }
}
