// The mixed inbound: SOCKS5 and HTTP proxy on one port, told apart by the first byte (0x05 is
// SOCKS5; an ASCII letter starts an HTTP method). Binds loopback unless configured otherwise;
// clients outside loopback must be in `allow_from`, or it would be an open proxy.
//
// Per connection: allow-from check → session slot (cap) → handshake under a timeout with
// bounded reads → decide + connect → reply → relay.
import net from 'node:net';
import { once } from 'node:events';
import { ByteReader } from '../egress/reader.ts';
import { FlowCancel } from '../egress/cancel.ts';
import { HandshakeError, SwitchyardError } from '../errors.ts';
import { CMD, REP } from '../egress/socks5-wire.ts';
import type { HostPort } from '../policy/types.ts';
import { cidrContains, isLoopbackAddress, unmapV4 } from './cidr.ts';
import { decideAndConnect, endpointOf, startRelay, type Decided, type FrontDeps, type FlowRequest } from './flow.ts';
import type { SessionHandle } from './sessions.ts';
import type { Endpoint, ProcessInfo } from '../flow/types.ts';
import { socksReply, type SocksRequest } from './socks5.ts';
import { SocksParser, refusalReply } from './socks5-parse.ts';
import { readHttpProxyRequest, HttpRequestError, MAX_REQUEST_HEAD } from './http-proxy.ts';
import { httpError, httpStatusFor, socksReplyFor } from './replies.ts';
import { startUdpAssociate } from './udp.ts';
import { startHttpForward } from './http-forward.ts';

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
  socket.setNoDelay(true); // handshake replies are small and must not wait for an ACK
  if (!allowed(deps, socket.remoteAddress)) {
    socket.on('error', ignore);
    inbound.deniedClients++;
    socket.destroy();
    return;
  }
  const session = deps.sessions.open(() => socket.destroy());
  if (!session) {
    socket.on('error', ignore);
    socket.destroy();
    return;
  }
  new MixedConnection(deps, socket, session);
}

function ignore(): void {}

/**
 * One accepted connection until its flow is relaying (or refused). SOCKS5 — the hot path — is
 * parsed synchronously in the 'data' handler (SocksParser): the greeting is answered in the tick
 * it arrives, and nothing waits on a promise until the egress connect. HTTP proxy requests take
 * the awaiting ByteReader path (their heads are larger and parsed by http-proxy.ts).
 */
class MixedConnection {
  private readonly deps: FrontDeps;
  private readonly socket: net.Socket;
  private readonly session: SessionHandle;
  private relaying = false;
  private finished = false;
  private parser: SocksParser | null = null;
  /** The HTTP path's reader; null on the SOCKS path. */
  private reader: ByteReader | null = null;
  /** Created when a connect starts: aborts it when the client goes away first. */
  private cancel: FlowCancel | null = null;
  private readonly timer: NodeJS.Timeout;
  private readonly onData = (c: Buffer): void => this.data(c);

  constructor(deps: FrontDeps, socket: net.Socket, session: SessionHandle) {
    this.deps = deps;
    this.socket = socket;
    this.session = session;
    socket.on('data', this.onData);
    socket.on('end', () => this.ended());
    socket.on('error', (e) => this.reader?.fail(e));
    socket.once('close', () => this.closed());
    this.timer = setTimeout(() => this.timedOut(), deps.inbound.handshakeTimeoutMs);
  }

  private closed(): void {
    clearTimeout(this.timer);
    if (this.relaying) return;
    this.deps.sessions.release(this.session.id);
    this.cancel?.abort();
  }

  private timedOut(): void {
    this.reader?.fail(new HandshakeError('timeout', `handshake not finished within ${this.deps.inbound.handshakeTimeoutMs} ms`));
    this.socket.destroy();
  }

  private ended(): void {
    if (this.finished) return; // the flow owns the socket now (its FIN reaches the relay)
    if (this.reader) this.reader.end();
    else this.fail(new HandshakeError('eof', 'peer closed during handshake'));
  }

  private data(chunk: Buffer): void {
    if (this.reader) {
      this.reader.push(chunk);
      return;
    }
    if (!this.parser) {
      const first = chunk[0] ?? -1;
      if (first === FIRST_BYTE_SOCKS5) this.parser = new SocksParser(this.deps.inbound.auth);
      else if (isHttpStart(first)) return this.startHttp(chunk);
      else return this.fail(new HandshakeError('unknown-protocol', `first byte 0x${first.toString(16)} is neither SOCKS5 nor HTTP`));
    }
    let rest: Buffer | null;
    try {
      rest = this.parser.push(chunk, this.socket);
    } catch (err) {
      const reply = err instanceof HandshakeError ? refusalReply(err.reason) : undefined;
      if (reply) this.socket.end(reply);
      return this.fail(err);
    }
    if (rest) this.socksRequest(this.parser.request!, rest.length > 0 ? rest : null);
  }

  /** Stops handshake reading: from here the flow (relay, UDP, forwarder) owns the socket. */
  private detach(): void {
    this.finished = true;
    clearTimeout(this.timer);
    this.socket.pause();
    this.socket.off('data', this.onData);
  }

  private client(): Endpoint {
    return endpointOf(this.socket.remoteAddress, this.socket.remotePort);
  }

  /** The lazy process lookup (the app's socket: local end = the client, remote end = us). */
  private processOf(client: Endpoint): (() => Promise<ProcessInfo | undefined>) | undefined {
    const identity = this.deps.identity;
    if (!identity?.processOf) return undefined;
    const socket = this.socket;
    return () => identity.processOf!(client, endpointOf(socket.localAddress, socket.localPort));
  }

  private socksRequest(req: SocksRequest, rest: Buffer | null): void {
    this.detach();
    const client = this.client();
    const processOf = this.processOf(client);
    if (req.command === CMD.UDP_ASSOCIATE) {
      this.relaying = true;
      startUdpAssociate(this.deps, this.session, this.socket, client, processOf);
      return;
    }
    const a = req.address;
    const fr: FlowRequest = { inbound: 'socks5', network: 'tcp', client, port: a.port, domainSource: 'socks', domainTrusted: true };
    if (a.family === 0) fr.domain = a.host;
    else fr.ip = a.host;
    if (processOf) fr.process = processOf;
    this.socksConnect(fr, rest).catch((err) => this.fail(err));
  }

  private async socksConnect(fr: FlowRequest, rest: Buffer | null): Promise<void> {
    const socket = this.socket;
    this.cancel = new FlowCancel();
    let d: Decided;
    try {
      d = await decideAndConnect(this.deps, fr, this.cancel);
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
    this.relaying = true;
    startRelay(this.deps, this.session, socket, d, rest ? [rest] : []);
  }

  private startHttp(first: Buffer): void {
    const reader = new ByteReader(MAX_REQUEST_HEAD + 1024);
    this.reader = reader;
    reader.push(first);
    this.runHttp(reader).catch((err) => this.fail(err));
  }

  private async runHttp(reader: ByteReader): Promise<void> {
    const { deps, socket } = this;
    let hr;
    try {
      hr = await readHttpProxyRequest(reader, deps.inbound.auth);
    } catch (err) {
      if (err instanceof HttpRequestError) socket.end(httpError(err.status, err.message, err.extraHeaders));
      throw err;
    }
    this.detach();
    const rest = reader.drain();
    const client = this.client();
    const processOf = this.processOf(client);
    this.cancel = new FlowCancel();
    if (hr.kind === 'forward') {
      // Absolute-form: requests are decided one by one, the egress kept alive per origin.
      this.relaying = true;
      startHttpForward(deps, this.session, socket, hr, rest, { client, auth: deps.inbound.auth, signal: this.cancel, ...(processOf ? { process: processOf } : {}) });
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
      d = await decideAndConnect(deps, fr, this.cancel);
    } catch (err) {
      const status = httpStatusFor(err);
      socket.end(httpError(status, err instanceof SwitchyardError ? `${err.code}: ${err.message}` : String(err), `X-Switchyard-Error: ${err instanceof SwitchyardError ? err.code : 'SY_ERR_INTERNAL'}\r\n`));
      throw err;
    }
    if (socket.destroyed) {
      d.connection.upstream.destroy();
      return;
    }
    this.relaying = true;
    socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
    startRelay(deps, this.session, socket, d, rest);
  }

  /** A refused or broken handshake/flow: whatever reply was due is already queued; close. */
  private fail(err: unknown): void {
    if (process.env.SY_DEBUG) console.error('mixed handshake failed:', err);
    this.finished = true;
    clearTimeout(this.timer);
    const socket = this.socket;
    if (!socket.destroyed && !socket.writableEnded) socket.destroy();
    else if (!socket.destroyed) setTimeout(() => socket.destroy(), 1000).unref();
  }
}
