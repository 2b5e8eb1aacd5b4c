// What the daemon needs from the OS beyond the redirect backend: the FlowIdentity for inbounds,
// sockets that carry switchyard's mark (so enforcement never redirects the daemon's own traffic),
// and the process watcher's rules. The OS is learned from the backend that
// src/redirect/index.ts chose (`backend.os`) — this file never asks the platform itself.
import type { Socket } from 'node:net';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { FWMARK } from '../ids.ts';
import type { FlowIdentity } from '../flow/types.ts';
import type { SocketFactory } from '../egress/index.ts';
import type { Config } from '../policy/types.ts';
import type { AdapterDnsInfo, InterfaceSockets } from '../dns/index.ts';
import { createFlowIdentity, type RedirectBackend } from '../redirect/index.ts';

export interface OsGlue {
  identity: FlowIdentity | undefined;
  /** Egress socket factory; undefined = plain sockets. */
  socketFactory: SocketFactory | undefined;
  udpSocketHook: ((s: UdpSocket) => void) | undefined;
  dnsConnectTcp: ((host: string, port: number, timeoutMs: number) => Promise<Socket>) | undefined;
  dnsUdpSocket: ((family: 4 | 6) => UdpSocket) | undefined;
  /** The process watcher's placement rules for a config (Linux), or null when there is no watcher. */
  watchRules: ((config: Config) => unknown[]) | null;
  /** SO_BINDTODEVICE for `interface` egresses' UDP sockets (Linux). */
  udpDeviceBinder?: (s: UdpSocket, device: string) => void;
  /** RLIMIT_NOFILE after raising the soft limit at start (Linux), for the session-cap check. */
  fdLimit?: { soft: number; hard: number };
  /** Why the fd limit could not be raised, when it could not. */
  fdLimitError?: string;
  /** Sockets bound to an interface, for names resolved through an `interface` egress (Linux). */
  dnsInterfaceSockets?: InterfaceSockets;
  /** The adapters' DNS servers, the system resolvers when no upstream is configured (Windows). */
  dnsReadAdapters?: () => AdapterDnsInfo[];
}

/**
 * Descriptors one session can hold at once: the client socket and the egress socket (a UDP
 * association: control, its datagram socket and up to two egress sockets per family — rarer).
 */
export const FDS_PER_SESSION = 2;
/** Descriptors kept for everything that is not a session: DNS sockets, control, logs, netlink. */
export const FD_RESERVE = 256;

/** The session cap that fits an fd limit, so a runaway app hits the cap before DNS runs out of fds. */
export function sessionsForFdLimit(soft: number): number {
  return Math.max(0, Math.floor((soft - FD_RESERVE) / FDS_PER_SESSION));
}

export const NO_GLUE: OsGlue = {
  identity: undefined,
  socketFactory: undefined,
  udpSocketHook: undefined,
  dnsConnectTcp: undefined,
  dnsUdpSocket: undefined,
  watchRules: null,
};

/**
 * @param os        `backend.os` ('linux', 'windows', ...), or null when no backend could be made.
 * @param enforcing whether the OS backend is active (then own sockets must be marked).
 * @param backend   the backend made (Windows: the FlowIdentity reads its reflection's NAT table).
 */
export async function osGlue(os: string | null, enforcing: boolean, groupOfPort: (port: number) => string | undefined, backend?: RedirectBackend | null): Promise<OsGlue> {
  const identity = await createFlowIdentity(os, { groupOfPort, backend: backend ?? null });
  if (os === 'windows') return { ...NO_GLUE, identity, dnsReadAdapters: (await import('../sys/windows/iphlpapi.ts')).adapterDnsServers };
  if (os !== 'linux') return { ...NO_GLUE, identity };
  const sock = await import('../sys/linux/socket.ts');
  // Raised at start, enforcing or not: every session costs descriptors, and DNS must never be
  // the one that cannot open a socket (docs/front.md "Session cap and fd limit").
  let fdLimit: { soft: number; hard: number } | undefined;
  let fdLimitError: string | undefined;
  try {
    fdLimit = sock.raiseFdLimit();
  } catch (err) {
    fdLimitError = (err as Error).message;
  }
  // While enforcing, the TCP sockets carry the mark too (the UDP ones get it from dnsUdpSocket).
  const dnsInterfaceSockets: InterfaceSockets = {
    tcp: (req) => sock.openExemptSocket({ family: req.family, device: req.device, ...(enforcing ? { mark: FWMARK } : {}) }, req.socketOptions).socket,
    bindUdp: sock.bindDgramToDevice,
  };
  const linuxBase = { ...NO_GLUE, identity, dnsInterfaceSockets, udpDeviceBinder: sock.bindDgramToDevice, ...(fdLimit ? { fdLimit } : {}), ...(fdLimitError ? { fdLimitError } : {}) };
  if (!enforcing) return linuxBase;
  const factory = sock.exemptSocketFactory(FWMARK) as SocketFactory;
  const markUdp = (s: UdpSocket) => {
    sock.markDgramSocket(s, FWMARK);
  };
  const { watchRulesFromConfig } = await import('../redirect/linux/app-match.ts');
  return {
    ...linuxBase,
    watchRules: (config) => watchRulesFromConfig(config),
    identity,
    socketFactory: factory,
    udpSocketHook: markUdp,
    dnsConnectTcp: (host, port, timeoutMs) =>
      new Promise((resolve, reject) => {
        let s: Socket;
        try {
          s = sock.openExemptSocket({ family: host.includes(':') ? 6 : 4, mark: FWMARK }).socket;
        } catch (err) {
          reject(err);
          return;
        }
        const timer = setTimeout(() => {
          s.destroy();
          reject(new Error(`connect to ${host}:${port} timed out`));
        }, timeoutMs);
        s.once('error', (e) => {
          clearTimeout(timer);
          reject(e);
        });
        s.connect({ host, port }, () => {
          clearTimeout(timer);
          s.removeAllListeners('error');
          s.setNoDelay(true);
          resolve(s);
        });
      }),
    // Marked once bound: the first send binds the socket and waits for 'listening', which runs
    // this listener first (it was registered at creation).
    dnsUdpSocket: (family) => {
      const s = createSocket(family === 6 ? 'udp6' : 'udp4');
      s.once('listening', () => markUdp(s));
      return s;
    },
  };
}

