// Transparent inbounds: listeners the OS backend redirects selected connections to. One listener
// per egress group (so the group is known from the port, without a process lookup) plus one for
// destinations learned from DNS, each on IPv4 and IPv6. Per connection:
//   slot (cap) → identify (original destination, group, lazy process) → sniff first bytes
//   (bounded) → domain of flow → decide + connect → relay. A refused flow is reset: the app's
//   connect() already succeeded against us, so a reset is the only honest signal left.
import net from 'node:net';
import { once } from 'node:events';
import { SwitchyardError } from '../errors.ts';
import type { IdentifiedFlow } from '../flow/types.ts';
import { unmapV4 } from './cidr.ts';
import { domainOfFlow } from './domain.ts';
import { configNeedsProcess, decideAndConnect, endpointOf, startRelay, type FrontDeps } from './flow.ts';
import { sniff } from './sniff.ts';
import { FlowCancel } from '../egress/cancel.ts';

export interface TransparentListener {
  /** Egress group of this listener; null for the DNS-learned listener. */
  group: string | null;
  port4: number | null;
  port6: number | null;
  servers: net.Server[];
}

export interface TransparentInbounds {
  listeners: TransparentListener[];
  /** Connections that were not redirected (no original destination) or looped back to us. */
  rejected: number;
  close(): Promise<void>;
}

export interface TransparentOptions {
  /** Egress groups that get a listener each. */
  groups: string[];
  /** IPv4 bind address (default 127.0.0.1); null disables IPv4. */
  host4?: string | null;
  /** IPv6 bind address (default ::1); null disables IPv6. */
  host6?: string | null;
}

async function listen(server: net.Server, host: string, port: number): Promise<number> {
  server.listen({ host, port, ipv6Only: host.includes(':') });
  try {
    await Promise.race([once(server, 'listening'), once(server, 'error').then(([e]) => Promise.reject(e))]);
  } catch (err) {
    throw new SwitchyardError('SY_ERR_FRONT_LISTEN', `transparent inbound cannot listen on ${host}:${port}: ${(err as Error).message}`, { cause: err });
  }
  return (server.address() as net.AddressInfo).port;
}

export async function startTransparentInbounds(deps: FrontDeps, o: TransparentOptions): Promise<TransparentInbounds> {
  if (!deps.identity) throw new SwitchyardError('SY_ERR_FRONT_LISTEN', 'transparent inbounds need a FlowIdentity implementation');
  const host4 = o.host4 === undefined ? deps.inbound.transparentListen || '127.0.0.1' : o.host4;
  const host6 = o.host6 === undefined ? '::1' : o.host6;
  const result: TransparentInbounds = {
    listeners: [],
    rejected: 0,
    close: async () => {
      const all = result.listeners.flatMap((l) => l.servers);
      await Promise.all(all.map((s) => new Promise<void>((r) => s.close(() => r()))));
    },
  };
  try {
    for (const group of [...o.groups, null]) {
      const l: TransparentListener = { group, port4: null, port6: null, servers: [] };
      result.listeners.push(l);
      const make = () => {
        const s = net.createServer({ allowHalfOpen: true }, (sock) => handle(deps, result, group, sock));
        s.on('error', () => {});
        l.servers.push(s);
        return s;
      };
      if (host4) l.port4 = await listen(make(), host4, 0);
      // Same port number on IPv6 when free, so a rule can name one port for both families.
      if (host6) {
        try {
          l.port6 = await listen(make(), host6, l.port4 ?? 0);
        } catch {
          l.servers.pop();
          l.port6 = await listen(make(), host6, 0);
        }
      }
    }
  } catch (err) {
    await result.close();
    throw err;
  }
  return result;
}

function handle(deps: FrontDeps, inb: TransparentInbounds, group: string | null, socket: net.Socket): void {
  socket.on('error', () => {});
  const session = deps.sessions.open(() => socket.destroy());
  if (!session) {
    socket.resetAndDestroy();
    return;
  }
  let relaying = false;
  socket.once('close', () => {
    if (!relaying) deps.sessions.release(session.id);
  });
  socket.pause();
  // Abort a pending egress connect when the client goes away first.
  const cancel = new FlowCancel();
  socket.once('close', () => {
    if (!relaying) cancel.abort();
  });
  const timer = setTimeout(() => socket.destroy(), deps.inbound.handshakeTimeoutMs + deps.inbound.connectTimeoutMs);

  const run = async () => {
    let id: IdentifiedFlow;
    try {
      id = await deps.identity!.identify(socket);
    } catch {
      inb.rejected++;
      socket.resetAndDestroy();
      return;
    }
    const dst = id.origDst;
    // A connection made straight to our port (no redirect) would loop back to us forever.
    if (unmapV4(dst.address) === unmapV4(socket.localAddress ?? '') && dst.port === socket.localPort) {
      inb.rejected++;
      socket.resetAndDestroy();
      return;
    }
    // When a rule matches on the program, the decision will need the process: start the lookup
    // now so that it overlaps the wait for the client's first bytes (process() is cached per
    // flow, so the decision awaits this same lookup). Without such rules it is never started.
    if (configNeedsProcess(deps.policy.config)) id.process().catch(() => undefined);
    const sn = await sniff(socket, deps.inbound.sniffTimeoutMs);
    const grp = id.group ?? group ?? undefined;
    const base = { network: 'tcp' as const, ip: dst.address, port: dst.port, ...(grp ? { group: grp } : {}) };
    const fd = domainOfFlow(dst.address, sn.result, deps.store, deps.policy, base);
    const d = await decideAndConnect(
      deps,
      {
        inbound: 'transparent',
        network: 'tcp',
        client: endpointOf(socket.remoteAddress, socket.remotePort),
        ip: dst.address,
        port: dst.port,
        domainSource: fd.source,
        domainTrusted: fd.trusted,
        ...(fd.domain ? { domain: fd.domain } : {}),
        ...(grp ? { group: grp } : {}),
        process: () => id.process(),
      },
      cancel,
    );
    clearTimeout(timer);
    if (socket.destroyed) {
      d.connection.upstream.destroy();
      return;
    }
    relaying = true;
    startRelay(deps, session, socket, d, sn.chunks, sn.ended);
  };
  run().catch((err) => {
    if (process.env.SY_DEBUG) console.error('transparent flow failed:', err);
    clearTimeout(timer);
    if (!socket.destroyed) socket.resetAndDestroy();
  });
}
