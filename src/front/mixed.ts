// The mixed inbound: SOCKS5 and HTTP proxy on one port, told apart by the first byte (0x05 is
// SOCKS5; an ASCII letter starts an HTTP method). Binds loopback unless configured otherwise;
// clients outside loopback must be in `allow_from`, or it would be an open proxy.
//
// Per connection: allow-from check → session slot (cap) → handshake under a timeout with
// bounded reads → decide + connect → reply → relay.
import net from 'node:net';
import { once } from 'node:events';
import { ByteReader } from '../egress/reader.ts';
import { EgressError, HandshakeError, SwitchyardError } from '../errors.ts';
import { CMD, REP } from '../egress/socks5-wire.ts';
import type { HostPort } from '../policy/types.ts';
import { cidrContains, isLoopbackAddress, unmapV4 } from './cidr.ts';
import { decideAndConnect, endpointOf, startRelay, type FrontDeps, type FlowRequest } from './flow.ts';
import { socksHandshake, socksReply } from './socks5.ts';
import { readHttpProxyRequest, HttpRequestError, MAX_REQUEST_HEAD } from './http-proxy.ts';
import { httpError, httpStatusFor, socksReplyFor } from './replies.ts';
import { startUdpAssociate } from './udp.ts';
import { startHttpForward } from './http-forward.ts';

const CLIENT_GONE = new Error('client closed before the flow was connected');

export interface MixedInbound {
  readonly server: net.Server;
  readonly address: net.AddressInfo;
  /** Connections refused by the allow-from list. */
  deniedClients: number;
  close(): Promise<void>;
}

export interface MixedOptions {
  /** Overrides deps.inbound.mixed; default 127.0.0.1:0 when neither is set. */
  listen?: HostPort;
}

const FIRST_BYTE_SOCKS5 = 0x05;

function isHttpStart(b: number): boolean {
  return b >= 0x41 && b <= 0x5a; // methods are upper-case tokens (GET, CONNECT, ...)
}

export async function startMixedInbound(deps: FrontDeps, o: MixedOptions = {}): Promise<MixedInbound> {
  const listen = o.listen ?? deps.inbound.mixed ?? { host: '127.0.0.1', port: 0 };
  const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: false });
  const inbound: MixedInbound = {
    server,
    address: undefined as unknown as net.AddressInfo,
    deniedClients: 0,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        deps.sessions.closeAll('inbound closed');
      }),
  };
  server.on('connection', (socket) => handleConnection(deps, inbound, socket));
  server.on('error', () => {});
  server.listen({ host: listen.host, port: listen.port });
  try {
    await Promise.race([once(server, 'listening'), once(server, 'error').then(([e]) => Promise.reject(e))]);
  } catch (err) {
    throw new SwitchyardError('SY_ERR_FRONT_LISTEN', `mixed inbound cannot listen on ${listen.host}:${listen.port}: ${(err as Error).message}`, { cause: err });
  }
  (inbound as { address: net.AddressInfo }).address = server.address() as net.AddressInfo;
  return inbound;
}

/** Loopback clients always; others only when inside an allow_from prefix. */
export function allowed(deps: Pick<FrontDeps, 'inbound'>, remote: string | undefined): boolean {
  if (!remote) return false;
  if (isLoopbackAddress(remote)) return true;
  return deps.inbound.allowFrom.some((c) => cidrContains(c, unmapV4(remote)));
}

function handleConnection(deps: FrontDeps, inbound: MixedInbound, socket: net.Socket): void {
  socket.on('error', () => {});
  socket.setNoDelay(true); // handshake replies are small and must not wait for an ACK
  if (!allowed(deps, socket.remoteAddress)) {
    inbound.deniedClients++;
    socket.destroy();
    return;
  }
  const session = deps.sessions.open(() => socket.destroy());
  if (!session) {
    socket.destroy();
    return;
  }
  let relaying = false;
  socket.once('close', () => {
    if (!relaying) deps.sessions.release(session.id);
  });
  const reader = new ByteReader(MAX_REQUEST_HEAD + 1024);
  const onData = (c: Buffer) => reader.push(c);
  socket.on('data', onData);
  socket.on('end', () => reader.end());
  socket.on('error', (e) => reader.fail(e));
  const timer = setTimeout(() => {
    reader.fail(new HandshakeError('timeout', `handshake not finished within ${deps.inbound.handshakeTimeoutMs} ms`));
    socket.destroy();
  }, deps.inbound.handshakeTimeoutMs);
  // Abort a pending egress connect when the client goes away first. A fixed reason object: the
  // default reason is a DOMException, whose construction showed up in connection-rate profiles.
  const ac = new AbortController();
  socket.once('close', () => {
    if (!relaying) ac.abort(CLIENT_GONE);
  });

  const client = endpointOf(socket.remoteAddress, socket.remotePort);
  const local = endpointOf(socket.localAddress, socket.localPort);
  // The client's own socket: local end = the client's address, remote end = our listener.
  const processOf = deps.identity?.processOf ? () => deps.identity!.processOf!(client, local) : undefined;

  /** Stops handshake reading; the relay takes over the socket (paused until then). */
  const detach = (): Buffer[] => {
    socket.pause();
    socket.off('data', onData);
    return reader.drain();
  };

  const run = async (): Promise<void> => {
    const first = (await reader.peek())[0]!;
    if (first === FIRST_BYTE_SOCKS5) {
      const req = await socksHandshake(reader, socket, deps.inbound.auth);
      const a = req.address;
      if (req.command === CMD.UDP_ASSOCIATE) {
        clearTimeout(timer);
        detach();
        relaying = true;
        startUdpAssociate(deps, session, socket, client, processOf);
        return;
      }
      const fr: FlowRequest = {
        inbound: 'socks5',
        network: 'tcp',
        client,
        port: a.port,
        domainSource: 'socks',
        domainTrusted: true,
        ...(a.family === 0 ? { domain: a.host } : { ip: a.host }),
        ...(processOf ? { process: processOf } : {}),
      };
      // The request is complete: from here the egress connect timeout governs, not the handshake's.
      clearTimeout(timer);
      socket.pause();
      let d;
      try {
        d = await decideAndConnect(deps, fr, ac.signal);
      } catch (err) {
        socket.end(socksReply(socksReplyFor(err)));
        throw err;
      }
      if (socket.destroyed) {
        d.connection.upstream.destroy();
        return;
      }
      const us = d.connection.upstream.socket;
      socket.write(socksReply(REP.SUCCEEDED, unmapV4(us.localAddress ?? '0.0.0.0'), us.localPort ?? 0));
      const rest = detach();
      relaying = true;
      startRelay(deps, session, socket, d, rest);
      return;
    }
    if (isHttpStart(first)) {
      let hr;
      try {
        hr = await readHttpProxyRequest(reader, deps.inbound.auth);
      } catch (err) {
        if (err instanceof HttpRequestError) socket.end(httpError(err.status, err.message, err.extraHeaders));
        throw err;
      }
      clearTimeout(timer);
      socket.pause();
      if (hr.kind === 'forward') {
        // Absolute-form: requests are decided one by one, the egress kept alive per origin.
        const rest = detach();
        relaying = true;
        startHttpForward(deps, session, socket, hr, rest, { client, auth: deps.inbound.auth, signal: ac.signal, ...(processOf ? { process: processOf } : {}) });
        return;
      }
      const fr: FlowRequest = {
        inbound: 'http',
        network: 'tcp',
        client,
        port: hr.port,
        domainSource: 'http-proxy',
        domainTrusted: true,
        ...(net.isIP(hr.host) ? { ip: hr.host } : { domain: hr.host }),
        ...(processOf ? { process: processOf } : {}),
      };
      let d;
      try {
        d = await decideAndConnect(deps, fr, ac.signal);
      } catch (err) {
        const status = httpStatusFor(err);
        socket.end(httpError(status, err instanceof SwitchyardError ? `${err.code}: ${err.message}` : String(err), `X-Switchyard-Error: ${err instanceof SwitchyardError ? err.code : 'SY_ERR_INTERNAL'}\r\n`));
        throw err;
      }
      if (socket.destroyed) {
        d.connection.upstream.destroy();
        return;
      }
      const rest = detach();
      relaying = true;
      socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      startRelay(deps, session, socket, d, rest);
      return;
    }
    throw new HandshakeError('unknown-protocol', `first byte 0x${first.toString(16)} is neither SOCKS5 nor HTTP`);
  };

  run().catch((err) => {
    if (process.env.SY_DEBUG) console.error('mixed handshake failed:', err);
    clearTimeout(timer);
    if (!(err instanceof HandshakeError || err instanceof EgressError)) {
      // Unexpected: still never crash the process for one connection.
    }
    if (!socket.destroyed && !socket.writableEnded) socket.destroy();
    else if (!socket.destroyed) setTimeout(() => socket.destroy(), 1000).unref();
  });
}
