// FlowIdentity on Linux: the original destination of a redirected connection from conntrack
// (SO_ORIGINAL_DST / IP6T_SO_ORIGINAL_DST on the accepted socket), the group from the listener
// that accepted it, and — only when asked — the owning process by the app socket's 4-tuple.
import type net from 'node:net';
import { SwitchyardError } from '../../errors.ts';
import type { Endpoint, FlowIdentity, IdentifiedFlow, ProcessInfo } from '../../flow/types.ts';
import { getOriginalDst, socketFd } from '../../sys/linux/socket.ts';
import { ProcessLookup } from './process-lookup.ts';

export interface LinuxFlowIdentityOptions {
  /** Group of the transparent listener on this local port, when the port tells it. */
  groupOfPort?: (port: number) => string | undefined;
  processes?: ProcessLookup;
}

function endpoint(address: string | undefined, port: number | undefined): Endpoint {
  const a = (address ?? '').replace(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/, '$1');
  return { address: a, port: port ?? 0, family: a.includes(':') ? 6 : 4 };
}

export class LinuxFlowIdentity implements FlowIdentity {
  readonly processes: ProcessLookup;
  private readonly groupOfPort: ((port: number) => string | undefined) | undefined;

  constructor(o: LinuxFlowIdentityOptions = {}) {
    this.processes = o.processes ?? new ProcessLookup();
    this.groupOfPort = o.groupOfPort;
  }

  async identify(socket: net.Socket): Promise<IdentifiedFlow> {
    const fd = socketFd(socket);
    if (fd === undefined) throw new SwitchyardError('SY_ERR_FRONT_IDENTITY', 'socket has no file descriptor');
    // An IPv4 peer on a dual-stack socket still has IPv4 conntrack state: ask at SOL_IP.
    const local = socket.localAddress ?? '';
    const family: 4 | 6 = local.includes(':') && !local.startsWith('::ffff:') ? 6 : 4;
    let origDst: Endpoint;
    try {
      const a = getOriginalDst(fd, family);
      origDst = { address: a.address, port: a.port, family: a.family };
    } catch (err) {
      throw new SwitchyardError('SY_ERR_FRONT_IDENTITY', `no original destination: ${(err as Error).message}`, { cause: err });
    }
    const group = socket.localPort !== undefined ? this.groupOfPort?.(socket.localPort) : undefined;
    const app = endpoint(socket.remoteAddress, socket.remotePort);
    let memo: Promise<ProcessInfo | undefined> | undefined;
    return {
      origDst,
      ...(group ? { group } : {}),
      // The app's socket still names the original destination as its peer (NAT is invisible to it).
      process: () => (memo ??= this.processes.byTuple(app, origDst).catch(() => undefined)),
    };
  }

  processOf(local: Endpoint, remote: Endpoint): Promise<ProcessInfo | undefined> {
    return this.processes.byTuple(local, remote);
  }
}
