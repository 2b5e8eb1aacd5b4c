// One upstream resolver and how to talk to it: udp:// (retried over TCP when the answer is
// truncated), tcp://, tls:// (DoT, RFC 7858) and https:// (DoH, RFC 8484, over HTTP/2). Every exchange checks
// that the answer belongs to our query (matchesQuery: ID, question bytes with their 0x20 case);
// anything else is ignored while we keep waiting, so a spoofed packet can at worst cost time.
import { literalLookup } from './literal-lookup.ts';
import { createSocket } from 'node:dgram';
import type { Socket as UdpSocket } from 'node:dgram';
import type { UdpSocketPool } from './udp-pool.ts';
import { readFileSync } from 'node:fs';
import { connect as http2Connect } from 'node:http2';
import type { ClientHttp2Session, ClientHttp2Stream } from 'node:http2';
import { isIP } from 'node:net';
import type { Socket } from 'node:net';
import { connect as tlsConnect, rootCertificates } from 'node:tls';
import type { TLSSocket } from 'node:tls';
import { headerOnlyError, matchesQuery } from './answer.ts';
import type { OutQuery } from './build.ts';
import { randomId } from './build.ts';
import type { Dialer, ResolveHost } from './dial.ts';
import { DnsError } from './errors.ts';
import { FrameReader, frame } from './frame.ts';

export type Proto = 'udp' | 'tcp' | 'tls' | 'https';

export interface UpstreamSpec {
  /** As shown in logs and the store's provenance (no query string). */
  label: string;
  proto: Proto;
  host: string;
  port: number;
  /** TLS server name (DoT/DoH); defaults to host when it is a name. */
  servername: string | undefined;
  /**
   * Trusted CAs for DoT/DoH: `?ca=/path/to/ca.pem` trusts only that CA (pinning); else the
   * system's roots plus `[dns] ca_file` when set; undefined = the system's roots.
   */
  ca: Buffer | (string | Buffer)[] | undefined;
  /** DoH only. */
  path: string;
  method: 'POST' | 'GET';
}

const DEFAULT_PORT: Record<Proto, number> = { udp: 53, tcp: 53, tls: 853, https: 443 };

/**
 * Parses an upstream URL. A bare address (`1.1.1.1`, `[::1]:5353`) means udp://. Query
 * parameters: `ca=PATH` (extra CA file for tests and private resolvers), `sni=NAME` (server name to
 * verify when the host is an IP), `method=get` (DoH GET instead of POST).
 */
export function parseUpstream(text: string, readFile: (p: string) => Buffer = readFileSync, extraCa?: Buffer): UpstreamSpec {
  let raw = text.trim();
  if (!/^[a-z]+:\/\//i.test(raw)) raw = `udp://${isIP(raw) === 6 ? `[${raw}]` : raw}`;
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new DnsError('SY_ERR_DNS_UPSTREAM_URL', `not a valid upstream URL: ${text}`);
  }
  const proto = u.protocol.slice(0, -1) as Proto;
  if (!(proto in DEFAULT_PORT)) throw new DnsError('SY_ERR_DNS_UPSTREAM_URL', `unsupported upstream scheme ${u.protocol} in ${text} (udp, tcp, tls, https)`);
  const host = u.hostname.replace(/^\[(.*)\]$/, '$1');
  if (!host) throw new DnsError('SY_ERR_DNS_UPSTREAM_URL', `upstream ${text} has no host`);
  const port = u.port ? Number(u.port) : DEFAULT_PORT[proto];
  const params = u.searchParams;
  const caPath = params.get('ca');
  let ca: Buffer | (string | Buffer)[] | undefined = extraCa ? [...rootCertificates, extraCa] : undefined;
  if (caPath) {
    try {
      ca = readFile(caPath);
    } catch (err) {
      throw new DnsError('SY_ERR_DNS_UPSTREAM_URL', `cannot read CA file ${caPath} for ${text}: ${(err as Error).message}`);
    }
  }
  const sni = params.get('sni') ?? undefined;
  const method = (params.get('method') ?? 'post').toUpperCase();
  if (method !== 'POST' && method !== 'GET') throw new DnsError('SY_ERR_DNS_UPSTREAM_URL', `method must be get or post in ${text}`);
  for (const k of ['ca', 'sni', 'method']) params.delete(k);
  const qs = params.toString();
  const path = proto === 'https' ? `${u.pathname === '/' ? '/dns-query' : u.pathname}${qs ? `?${qs}` : ''}` : '';
  const hostText = isIP(host) === 6 ? `[${host}]` : host;
  const label = `${proto}://${hostText}:${port}${path}`;
  return { label, proto, host, port, servername: sni ?? (isIP(host) ? undefined : host), ca, path, method };
}

export interface Exchange {
  exchange(q: OutQuery, timeoutMs: number): Promise<Buffer>;
  close(): void;
}

export interface TransportDeps {
  /** Opens the TCP stream (directly or through an egress). */
  dial: Dialer;
  /** UDP is possible on the direct and interface paths; null through a proxy (udp:// becomes tcp://). */
  udpPool: Pick<UdpSocketPool, 'exchange'> | null;
  resolveHost: ResolveHost;
}

export function makeTransport(spec: UpstreamSpec, deps: TransportDeps): Exchange {
  switch (spec.proto) {
    case 'udp':
      return deps.udpPool ? new UdpExchange(spec, deps, new StreamExchange(spec, deps, false)) : new StreamExchange(spec, deps, false);
    case 'tcp':
      return new StreamExchange(spec, deps, false);
    case 'tls':
      return new StreamExchange(spec, deps, true);
    case 'https':
      return new DohExchange(spec, deps);
  }
}

async function hostAddress(spec: UpstreamSpec, deps: TransportDeps): Promise<string> {
  if (isIP(spec.host)) return spec.host;
  const ips = await deps.resolveHost(spec.host);
  if (!ips[0]) throw new DnsError('SY_ERR_DNS_UPSTREAM', `no bootstrap address for ${spec.host}`);
  return ips[0];
}

/** UDP through the shared socket pool (random source ports); TCP retry when the answer is truncated. */
class UdpExchange implements Exchange {
  readonly #spec: UpstreamSpec;
  readonly #deps: TransportDeps;
  readonly #tcp: StreamExchange;
  #ip: string | null = null;
  constructor(spec: UpstreamSpec, deps: TransportDeps, tcp: StreamExchange) {
    this.#spec = spec;
    this.#deps = deps;
    this.#tcp = tcp;
  }
  async exchange(q: OutQuery, timeoutMs: number): Promise<Buffer> {
    const started = Date.now();
    this.#ip ??= await hostAddress(this.#spec, this.#deps);
    const ip = this.#ip;
    const answer = await this.#deps.udpPool!.exchange(ip, this.#spec.port, isIP(ip) === 6 ? 6 : 4, q, timeoutMs, this.#spec.label);
    if (answer[2]! & 0x02) {
      // Truncated: ask the same server over TCP (RFC 7766), within what is left of the budget.
      const left = timeoutMs - (Date.now() - started);
      if (left <= 0) throw new DnsError('SY_ERR_DNS_TIMEOUT', `${this.#spec.label}: no time left for the TCP retry`);
      return this.#tcp.exchange(q, left);
    }
    return answer;
  }
  close(): void {
    this.#tcp.close();
  }
}

const MAX_PENDING_PER_CONN = 256;
const STREAM_IDLE_MS = 10_000;

interface Pending {
  q: OutQuery;
  resolve: (b: Buffer) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

/**
 * TCP and DoT: one connection reused for many queries (pipelined, answers matched by ID and
 * question, RFC 7766 §6.2.1.1), reopened when it closes, closed after 10 s idle.
 */
class StreamExchange implements Exchange {
  readonly #spec: UpstreamSpec;
  readonly #deps: TransportDeps;
  readonly #tls: boolean;
  #conn: Promise<Socket> | null = null;
  readonly #pending = new Map<number, Pending>();
  #idle: NodeJS.Timeout | null = null;
  constructor(spec: UpstreamSpec, deps: TransportDeps, tls: boolean) {
    this.#spec = spec;
    this.#deps = deps;
    this.#tls = tls;
  }

  async #open(timeoutMs: number): Promise<Socket> {
    const raw = await this.#deps.dial(this.#spec.host, this.#spec.port, timeoutMs);
    let s: Socket = raw;
    if (this.#tls) s = await startTls(raw, this.#spec, timeoutMs, []);
    const reader = new FrameReader();
    s.on('data', (d: Buffer) => {
      for (const msg of reader.push(d)) this.#deliver(msg);
    });
    const fail = (err: Error): void => {
      if (this.#conn && s === current) this.#conn = null;
      for (const [id, p] of this.#pending) {
        this.#pending.delete(id);
        clearTimeout(p.timer);
        p.reject(err);
      }
    };
    const current = s;
    s.on('error', (err) => fail(err));
    s.on('close', () => fail(new DnsError('SY_ERR_DNS_UPSTREAM', `${this.#spec.label} closed the connection`)));
    return s;
  }

  #deliver(msg: Buffer): void {
    if (msg.length < 2) return;
    const p = this.#pending.get(msg.readUInt16BE(0));
    if (!p) return;
    try {
      matchesQuery(msg, p.q.buf, p.q.qEnd);
    } catch {
      const rcode = headerOnlyError(msg, p.q.buf);
      if (rcode > 0) {
        this.#pending.delete(msg.readUInt16BE(0));
        clearTimeout(p.timer);
        p.reject(new DnsError('SY_ERR_DNS_UPSTREAM', `${this.#spec.label} answered rcode ${rcode} without a question`));
      }
      return;
    }
    this.#pending.delete(msg.readUInt16BE(0));
    clearTimeout(p.timer);
    p.resolve(msg);
    this.#armIdle();
  }

  #armIdle(): void {
    if (this.#idle) clearTimeout(this.#idle);
    this.#idle = setTimeout(() => {
      if (this.#pending.size === 0) this.close();
    }, STREAM_IDLE_MS);
    this.#idle.unref();
  }

  async exchange(q: OutQuery, timeoutMs: number): Promise<Buffer> {
    if (this.#pending.size >= MAX_PENDING_PER_CONN) throw new DnsError('SY_ERR_DNS_UPSTREAM', `${this.#spec.label}: too many queries in flight`);
    const deadline = Date.now() + timeoutMs;
    if (!this.#conn) {
      const c = this.#open(timeoutMs);
      this.#conn = c;
      c.catch(() => {
        if (this.#conn === c) this.#conn = null;
      });
    }
    const s = await this.#conn;
    // IDs must be unique on one connection: draw again on collision.
    let id = q.buf.readUInt16BE(0);
    while (this.#pending.has(id)) {
      id = randomId();
      q.buf.writeUInt16BE(id, 0);
    }
    const left = deadline - Date.now();
    return new Promise<Buffer>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new DnsError('SY_ERR_DNS_TIMEOUT', `${this.#spec.label} did not answer in ${timeoutMs} ms`));
      }, Math.max(1, left));
      this.#pending.set(id, { q, resolve, reject, timer });
      s.write(frame(q.buf));
    });
  }

  close(): void {
    if (this.#idle) clearTimeout(this.#idle);
    const c = this.#conn;
    this.#conn = null;
    c?.then((s) => s.destroy()).catch(() => {});
  }
}

/** Wraps a connected stream in TLS, verifying the certificate (never `rejectUnauthorized: false`). */
function startTls(raw: Socket, spec: UpstreamSpec, timeoutMs: number, alpn: string[]): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({
      socket: raw,
      ...(spec.servername ? { servername: spec.servername } : {}),
      host: spec.servername ?? spec.host,
      ...(spec.ca ? { ca: spec.ca } : {}),
      ...(alpn.length ? { ALPNProtocols: alpn } : {}),
      rejectUnauthorized: true,
    });
    const timer = setTimeout(() => {
      s.destroy();
      reject(new DnsError('SY_ERR_DNS_TIMEOUT', `TLS handshake with ${spec.label} timed out`));
    }, timeoutMs);
    s.once('secureConnect', () => {
      clearTimeout(timer);
      s.removeListener('error', onErr);
      resolve(s);
    });
    const onErr = (err: Error): void => {
      clearTimeout(timer);
      raw.destroy();
      reject(new DnsError('SY_ERR_DNS_UPSTREAM', `TLS with ${spec.label} failed: ${err.message}`, err));
    };
    s.once('error', onErr);
  });
}

const MAX_DOH_BODY = 65535;

/**
 * DoH (RFC 8484) over HTTP/2, one session per upstream reused for every query (reopened when it
 * closes). The wire ID is 0 as the RFC recommends; the answer's question is still checked.
 */
class DohExchange implements Exchange {
  readonly #spec: UpstreamSpec;
  readonly #deps: TransportDeps;
  #session: Promise<ClientHttp2Session> | null = null;
  constructor(spec: UpstreamSpec, deps: TransportDeps) {
    this.#spec = spec;
    this.#deps = deps;
  }

  #open(timeoutMs: number): Promise<ClientHttp2Session> {
    const spec = this.#spec;
    const p = (async () => {
      const raw = await this.#deps.dial(spec.host, spec.port, timeoutMs);
      const tls = await startTls(raw, spec, timeoutMs, ['h2']);
      if (tls.alpnProtocol !== 'h2') {
        tls.destroy();
        throw new DnsError('SY_ERR_DNS_UPSTREAM', `${spec.label} does not offer HTTP/2 (ALPN h2)`);
      }
      const authority = `https://${spec.servername ?? (isIP(spec.host) === 6 ? `[${spec.host}]` : spec.host)}:${spec.port}`;
      const session = http2Connect(authority, { createConnection: () => tls });
      const drop = (): void => {
        if (this.#session === p) this.#session = null;
      };
      session.on('close', drop);
      session.on('goaway', drop);
      session.on('error', drop);
      session.setTimeout(STREAM_IDLE_MS, () => session.close());
      return session;
    })();
    p.catch(() => {
      if (this.#session === p) this.#session = null;
    });
    return p;
  }

  async exchange(q: OutQuery, timeoutMs: number): Promise<Buffer> {
    const spec = this.#spec;
    const deadline = Date.now() + timeoutMs;
    this.#session ??= this.#open(timeoutMs);
    const session = await this.#session;
    const wire = Buffer.from(q.buf);
    wire.writeUInt16BE(0, 0);
    const get = spec.method === 'GET';
    const path = get ? `${spec.path}${spec.path.includes('?') ? '&' : '?'}dns=${wire.toString('base64url')}` : spec.path;
    return new Promise<Buffer>((resolve, reject) => {
      let stream: ClientHttp2Stream;
      try {
        stream = session.request({
          ':method': spec.method,
          ':path': path,
          accept: 'application/dns-message',
          ...(get ? {} : { 'content-type': 'application/dns-message', 'content-length': wire.length }),
        });
      } catch (err) {
        this.#session = null;
        reject(new DnsError('SY_ERR_DNS_UPSTREAM', `${spec.label}: ${(err as Error).message}`, err));
        return;
      }
      let settled = false;
      const fail = (err: Error): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        stream.close();
        reject(err instanceof DnsError ? err : new DnsError('SY_ERR_DNS_UPSTREAM', `${spec.label}: ${err.message}`, err));
      };
      const timer = setTimeout(
        () => fail(new DnsError('SY_ERR_DNS_TIMEOUT', `${spec.label} did not answer in ${timeoutMs} ms`)),
        Math.max(1, deadline - Date.now()),
      );
      stream.on('error', fail);
      stream.on('response', (headers) => {
        const status = headers[':status'];
        const type = String(headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
        if (status !== 200 || type !== 'application/dns-message') fail(new DnsError('SY_ERR_DNS_UPSTREAM', `${spec.label} answered HTTP ${status} ${type}`));
      });
      const parts: Buffer[] = [];
      let size = 0;
      stream.on('data', (d: Buffer) => {
        size += d.length;
        if (size > MAX_DOH_BODY) fail(new DnsError('SY_ERR_DNS_UPSTREAM', `${spec.label}: answer too large`));
        else parts.push(d);
      });
      stream.on('end', () => {
        if (settled) return;
        const body = Buffer.concat(parts);
        try {
          matchesQuery(body, wire, q.qEnd, false);
        } catch (err) {
          fail(new DnsError('SY_ERR_DNS_UPSTREAM', `${spec.label}: ${(err as Error).message}`));
          return;
        }
        settled = true;
        clearTimeout(timer);
        // Our ID back, so the rest of the pipeline sees the query's own ID.
        body[0] = q.buf[0]!;
        body[1] = q.buf[1]!;
        resolve(body);
      });
      stream.end(get ? undefined : wire);
    });
  }

  close(): void {
    const s = this.#session;
    this.#session = null;
    s?.then((x) => x.destroy()).catch(() => {});
  }
}

/**
 * An outgoing UDP socket for plain-DNS upstreams. Upstream addresses are IP literals by the time
 * a query is sent (hostAddress), so dgram's default lookup (a dns.lookup and a process.nextTick
 * per send, about a tenth of a miss's CPU here) is skipped.
 */
export function defaultUdpSocket(family: 4 | 6): UdpSocket {
  return createSocket({ type: family === 6 ? 'udp6' : 'udp4', lookup: literalLookup(family) });
}
