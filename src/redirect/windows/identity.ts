// FlowIdentity on Windows. A connection accepted by a transparent listener came from the reflector,
// which recorded it in the NAT table: the accepted socket's local address is the listener address and
// its remote endpoint is "original destination address : app's local port" — exactly the NAT key plus
// a check of the address. The entry gives the original destination (with its port, which the packet
// no longer carries), the group, and the PID the SOCKET layer reported; the executable comes from
// QueryFullProcessImageNameW, and when no PID was recorded, from the TCP table's owner of the app's
// socket (GetExtendedTcpTable with OWNER_PID); the owner's user SID from the process token (the control
// privacy filter compares it with the caller's). A peer without an entry is refused: it was not
// reflected (someone on the LAN reaching the listener directly).
import type { Socket } from 'node:net';
import { isIPv4 } from 'node:net';
import { NotReflectedError } from '../../errors.ts';
import type { Endpoint, FlowIdentity, IdentifiedFlow, ProcessInfo } from '../../flow/types.ts';
import type { NatEntry } from './nat.ts';

export interface IdentityDeps {
  /** NAT lookup for an accepted connection (Reflector.lookupAccepted). */
  lookup: (family: 4 | 6, listenerAddress: string, peerAddress: string, peerPort: number) => NatEntry | undefined;
  /** QueryFullProcessImageNameW wrapper. */
  imagePath: (pid: number) => string | undefined;
  /** This process: a table row it owns is our side of a connection, never the client. */
  ownPid: number;
  /** GetExtendedTcpTable(OWNER_PID) wrapper: owner of a local TCP endpoint (optionally with its peer). */
  tcpOwner: (family: 4 | 6, localAddress: string, localPort: number, remote?: { address: string; port: number }) => number | undefined;
  /** advapi32 processUserSid: the process's user SID (the flow's owner for `conns`/`rdns`). */
  userSid?: (pid: number) => string | undefined;
  /** Clock for the SID cache (tests). */
  now?: () => number;
}

/** How long a PID's SID is reused: short, since a PID can be reused by another user's process. */
export const SID_CACHE_MS = 5000;
const SID_CACHE_MAX = 4096;

/**
 * PID → user SID, each answer kept SID_CACHE_MS: a browser's many flows cost one token read. Only
 * found SIDs are cached (a process whose token cannot be read now is asked again next time).
 */
export class SidCache {
  readonly #look: (pid: number) => string | undefined;
  readonly #now: () => number;
  readonly #m = new Map<number, { sid: string; at: number }>();

  constructor(look: (pid: number) => string | undefined, now: () => number = Date.now) {
    this.#look = look;
    this.#now = now;
  }

  get(pid: number): string | undefined {
    const t = this.#now();
    const hit = this.#m.get(pid);
    if (hit && t - hit.at < SID_CACHE_MS) return hit.sid;
    this.#m.delete(pid);
    const sid = this.#look(pid);
    if (sid !== undefined) {
      if (this.#m.size >= SID_CACHE_MAX) {
        // Drop the expired ones; if all are fresh, the oldest (insertion order).
        for (const [k, v] of this.#m) if (t - v.at >= SID_CACHE_MS) this.#m.delete(k);
        if (this.#m.size >= SID_CACHE_MAX) this.#m.delete(this.#m.keys().next().value!);
      }
      this.#m.set(pid, { sid, at: t });
    }
    return sid;
  }
}

/** IPv4-mapped IPv6 (a dual-stack listener's view) back to IPv4. */
function plain(address: string): string {
  return address.startsWith('::ffff:') && isIPv4(address.slice(7)) ? address.slice(7) : address;
}

function baseName(p: string): string {
  return p.slice(Math.max(p.lastIndexOf('\\'), p.lastIndexOf('/')) + 1);
}

export class WindowsFlowIdentity implements FlowIdentity {
  #d: IdentityDeps;
  #sids: SidCache | undefined;

  constructor(d: IdentityDeps) {
    this.#d = d;
    this.#sids = d.userSid ? new SidCache(d.userSid, d.now) : undefined;
  }

  /** Asked only when the flow's process is (lazily, see IdentifiedFlow.process): image path and owner SID. */
  #processOfPid(pid: number | undefined): ProcessInfo | undefined {
    if (pid === undefined) return undefined;
    const exe = this.#d.imagePath(pid);
    const sid = this.#sids?.get(pid);
    return { pid, ...(exe ? { exe, name: baseName(exe) } : {}), ...(sid !== undefined ? { sid } : {}) };
  }

  /** The NAT entry behind an accepted connection, by the socket's endpoints. */
  identifyEndpoints(local: { address: string; port: number }, remote: { address: string; port: number }): IdentifiedFlow {
    const la = plain(local.address);
    const ra = plain(remote.address);
    const family: 4 | 6 = isIPv4(la) ? 4 : 6;
    const e = this.#d.lookup(family, la, ra, remote.port);
    if (!e) throw new NotReflectedError(`${ra}:${remote.port}`);
    let cached: Promise<ProcessInfo | undefined> | undefined;
    const origDst: Endpoint = { ...e.origDst };
    return {
      origDst,
      // '' is the captured listener's key (reflection.ts): no group, the front door decides by domain.
      ...(e.group ? { group: e.group } : {}),
      process: () => {
        cached ??= Promise.resolve().then(() => {
          // The app's socket is (entry local address : local port) → original destination.
          const pid = e.pid ?? this.#d.tcpOwner(e.family, e.localAddress, e.localPort, { address: e.origDst.address, port: e.origDst.port });
          return this.#processOfPid(pid);
        });
        return cached;
      },
    };
  }

  async identify(socket: Socket): Promise<IdentifiedFlow> {
    const { localAddress, localPort, remoteAddress, remotePort } = socket;
    if (!localAddress || !remoteAddress || localPort === undefined || remotePort === undefined) {
      throw new NotReflectedError('(socket without endpoints)');
    }
    return this.identifyEndpoints({ address: localAddress, port: localPort }, { address: remoteAddress, port: remotePort });
  }

  /**
   * Proxy inbound: who is the client of a loopback/LAN connection? Both sockets of a local connection
   * are in the TCP table, so the row is looked up in both orientations and the one owned by another
   * process than ours is the client's — whichever way round the caller names the endpoints.
   */
  async processOf(local: Endpoint, remote: Endpoint): Promise<ProcessInfo | undefined> {
    const a = { address: plain(local.address), port: local.port };
    const b = { address: plain(remote.address), port: remote.port };
    for (const [mine, peer] of [[a, b], [b, a]] as const) {
      const pid = this.#d.tcpOwner(local.family, mine.address, mine.port, peer);
      if (pid !== undefined && pid !== this.#d.ownPid) return this.#processOfPid(pid);
    }
    return undefined;
  }
}

/**
 * The production FlowIdentity: image paths from kernel32, owners from iphlpapi, the NAT table from
 * the backend's reflection. Without a lookup (not enforcing) every transparent connection is refused
 * as not reflected (fail closed); processOf works for the proxy inbound.
 */
export async function systemWindowsIdentity(lookup?: IdentityDeps['lookup']): Promise<WindowsFlowIdentity> {
  const { processImagePath } = await import('../../sys/windows/kernel32.ts');
  const { tcpOwnerPid } = await import('../../sys/windows/iphlpapi.ts');
  const { processUserSid } = await import('../../sys/windows/advapi32.ts');
  return new WindowsFlowIdentity({
    lookup: lookup ?? (() => undefined),
    imagePath: processImagePath,
    ownPid: process.pid, // = GetCurrentProcessId; kernel32 is loaded only when a process is asked about
    tcpOwner: tcpOwnerPid,
    userSid: processUserSid,
  });
}
