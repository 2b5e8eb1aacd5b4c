// SOCKS5 UDP ASSOCIATE, server side (RFC 1928 §7). The client's datagrams arrive at a UDP socket
// bound next to the TCP control connection and accepted only from the client's IP (and, once
// seen, its port). Each destination is decided by the policy once per association and sent
// through a channel of that egress; answers are wrapped with their source address and sent back.
// The association lives as long as the TCP control connection (and no longer than the idle
// timeout without datagrams).
import dgram from 'node:dgram';
import type net from 'node:net';
import { REP, encodeAddress, parseAddress } from '../egress/socks5-wire.ts';
import type { UdpChannel, UdpPeer } from '../egress/udp.ts';
import { MAX_UDP_PAYLOAD, udpCounters } from '../egress/udp.ts';
import type { Endpoint, FlowRecord, ProcessInfo } from '../flow/types.ts';
import type { Decision, FlowQuery } from '../policy/types.ts';
import { unmapV4 } from './cidr.ts';
import { isLocalhostName, isLoopbackIp, lanAddressOf, type FrontDeps } from './flow.ts';
import type { SessionHandle } from './sessions.ts';
import { socksReply } from './socks5.ts';
import { socksReplyFor } from './replies.ts';

/** Distinct destinations one association may talk to (each may hold an egress channel). */
const MAX_DESTINATIONS = 256;

export interface UdpAssociation {
  dropped: number;
  /** Of `dropped`: SOCKS5 fragments (FRAG != 0), which are not reassembled (RFC 1928 allows). */
  fragmentsDropped: number;
  bytesUp: number;
  bytesDown: number;
}

export function startUdpAssociate(deps: FrontDeps, session: SessionHandle, control: net.Socket, client: Endpoint, processOf?: () => Promise<ProcessInfo | undefined>): void {
  const localIp = unmapV4(control.localAddress ?? '127.0.0.1');
  const fam = localIp.includes(':') ? 'udp6' : 'udp4';
  const sock = dgram.createSocket(fam);
  const stats: UdpAssociation = { dropped: 0, fragmentsDropped: 0, bytesUp: 0, bytesDown: 0 };
  const channels = new Map<string, Promise<UdpChannel | null>>();
  const decisions = new Map<string, { decision: Decision; egress: string }>();
  let clientPort = 0;
  let closed = false;
  let last = Date.now();
  let idleTimer: NodeJS.Timeout | undefined;
  let proc: ProcessInfo | undefined;
  let procLooked = false;

  const record: FlowRecord = {
    id: session.id,
    inbound: 'socks5',
    network: 'udp',
    client,
    dst: { host: '*', port: 0 },
    domain: null,
    domainSource: 'none',
    process: null,
    decision: { egress: 'direct', stage: 'default', rule: null, matched: [] },
    egress: '',
    bytesUp: 0,
    bytesDown: 0,
    startedAt: Date.now(),
  };

  const close = () => {
    if (closed) return;
    closed = true;
    clearTimeout(idleTimer);
    sock.close();
    for (const p of channels.values()) void p.then((c) => c?.close());
    control.destroy();
    deps.sessions.release(session.id);
  };
  session.close = close;
  session.counters = stats;
  control.on('close', close);
  control.on('error', close);
  control.on('data', () => {}); // RFC 1928: nothing further on the control connection
  control.resume();
  sock.on('error', close);

  const armIdle = () => {
    if (deps.inbound.idleTimeoutMs <= 0) return;
    idleTimer = setTimeout(() => {
      if (Date.now() - last >= deps.inbound.idleTimeoutMs) close();
      else armIdle();
    }, deps.inbound.idleTimeoutMs);
    idleTimer.unref();
  };

  const channelFor = (dst: UdpPeer): Promise<UdpChannel | null> => {
    const key = `${dst.host}|${dst.port}`;
    let p = channels.get(key);
    if (p) return p;
    if (channels.size >= MAX_DESTINATIONS) return Promise.resolve(null);
    p = (async () => {
      if (processOf && !procLooked) {
        procLooked = true;
        proc = await processOf().catch(() => undefined);
      }
      let ip: string | undefined = /^[0-9.]+$|:/.test(dst.host) ? dst.host : undefined;
      const domain = ip ? undefined : dst.host;
      if (domain && isLocalhostName(domain)) ip = '127.0.0.1';
      const q: FlowQuery = { network: 'udp', port: dst.port };
      if (ip) q.ip = ip;
      else if (domain) q.domain = domain;
      if (proc?.name) q.process = proc.name;
      if (proc?.exe) q.exe = proc.exe;
      let decision = deps.policy.decide(q);
      let egress = decision.egress;
      const cfg = deps.egress.config(egress);
      if (ip && isLoopbackIp(ip) && (cfg?.type === 'socks5' || cfg?.type === 'http')) egress = 'direct';
      // As for TCP (flow.ts): a name resolving to a LAN address stays off proxies with lan = direct.
      if (!ip && domain && (cfg?.type === 'socks5' || cfg?.type === 'interface') && deps.policy.config.enforce.lan === 'direct') {
        const lanIp = await lanAddressOf(deps, domain, egress);
        if (lanIp) {
          egress = 'direct';
          decision = { egress: 'direct', stage: 'lan', rule: { id: 'enforce.lan', index: -1, origin: {} }, matched: decision.matched };
        }
      }
      decisions.set(key, { decision, egress });
      let ch: UdpChannel;
      try {
        ch = await deps.egress.openUdp(egress);
      } catch (err) {
        deps.onFlow?.({ record: { ...record, dst: { host: dst.host, port: dst.port }, decision, egress }, outcome: 'refused', error: (err as Error).message });
        void socksReplyFor(err);
        return null;
      }
      if (closed) {
        ch.close();
        return null;
      }
      if (!record.egress) {
        record.egress = ch.egress;
        record.decision = decision;
        record.dst = ip ? { address: ip, port: dst.port, family: ip.includes(':') ? 6 : 4 } : { host: dst.host, port: dst.port };
        record.domain = domain ?? null;
        record.domainSource = domain ? 'socks' : 'none';
        record.process = proc ?? null;
        session.record = record;
        deps.onFlow?.({ record, outcome: 'connected' });
      }
      ch.onMessage = (src, payload) => {
        if (closed || clientPort === 0) return;
        last = Date.now();
        stats.bytesDown += payload.length;
        let head: Buffer;
        try {
          head = Buffer.concat([Buffer.from([0, 0, 0]), encodeAddress(src.host, src.port)]);
        } catch {
          return;
        }
        if (!closed) sock.send(Buffer.concat([head, payload]), clientPort, client.address);
      };
      return ch;
    })().catch(() => null);
    channels.set(key, p);
    return p;
  };

  sock.on('message', (msg, rinfo) => {
    // Only the client that opened the association may use it.
    if (unmapV4(rinfo.address) !== client.address) return void stats.dropped++;
    if (clientPort !== 0 && rinfo.port !== clientPort) return void stats.dropped++;
    //   +----+------+------+----------+----------+----------+
    //   |RSV | FRAG | ATYP | DST.ADDR | DST.PORT |   DATA   |
    //   | 2  |  1   |  1   | Variable |    2     | Variable |
    if (msg.length < 4 || msg[0] !== 0 || msg[1] !== 0) return void stats.dropped++;
    if (msg[2] !== 0) {
      // Fragmentation is not implemented: dropped (RFC 1928 §7 allows), and counted.
      stats.dropped++;
      stats.fragmentsDropped++;
      udpCounters.fragmentsDropped++;
      return;
    }
    let dst: UdpPeer;
    let payload: Buffer;
    try {
      const { addr, next } = parseAddress(msg, 3);
      dst = { host: addr.host, port: addr.port };
      payload = msg.subarray(next);
    } catch {
      return void stats.dropped++;
    }
    if (dst.port === 0 || payload.length > MAX_UDP_PAYLOAD) return void stats.dropped++;
    clientPort = rinfo.port;
    last = Date.now();
    stats.bytesUp += payload.length;
    void channelFor(dst).then((ch) => {
      if (ch) ch.send(dst, payload);
      else stats.dropped++;
    });
  });

  sock.bind({ port: 0, address: localIp }, () => {
    if (closed) return;
    const a = sock.address();
    control.write(socksReply(REP.SUCCEEDED, unmapV4(a.address), a.port));
    armIdle();
  });
}
