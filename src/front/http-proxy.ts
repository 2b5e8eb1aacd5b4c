// HTTP proxy requests (RFC 9112 request line, RFC 9110 CONNECT, Basic auth RFC 7617): the
// request head is read with a size bound and parsed strictly. Two forms are served:
//   CONNECT host:port HTTP/1.1          → tunnel (200 only after the egress connection exists)
//   GET http://host[:port]/path HTTP/1.1 → origin-form forwarded (src/front/http-forward.ts keeps
//                                          the upstream alive per origin and decides each request)
// Anything else gets a 4xx.
import net from 'node:net';
import { HandshakeError } from '../errors.ts';
import type { ByteReader } from '../egress/reader.ts';
import type { EgressAuth } from '../policy/types.ts';
import { timingSafeEqual } from 'node:crypto';

export const MAX_REQUEST_HEAD = 16 * 1024;
export const MAX_HEADERS = 100;

export interface HttpProxyRequest {
  kind: 'connect' | 'forward';
  host: string;
  port: number;
  /** The head to send upstream (forward only), ending the upstream connection after it. */
  forwardHead?: Buffer;
  /** The same head without `Connection: close`, for a kept-alive upstream (forward only). */
  keepAliveHead?: Buffer;
  method?: string;
  /** Request body framing (forward only): a Content-Length, or chunked, or none. */
  contentLength?: number;
  chunked?: boolean;
  /** The client asked to close after this request (Connection: close, or HTTP/1.0 without keep-alive). */
  clientClose?: boolean;
}

/** A parse failure that carries the HTTP status to answer with. */
export class HttpRequestError extends HandshakeError {
  readonly status: number;
  readonly extraHeaders: string;
  constructor(status: number, reason: string, message: string, extraHeaders = '') {
    super(reason, message);
    this.status = status;
    this.extraHeaders = extraHeaders;
  }
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const HOSTNAME = /^[A-Za-z0-9_]([A-Za-z0-9_-]{0,62})?(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,62})?)*\.?$/;

/** Splits `host:port` / `[v6]:port`; validates both. */
export function parseAuthority(a: string, defaultPort?: number): { host: string; port: number } {
  let host: string;
  let portText: string | undefined;
  if (a.startsWith('[')) {
    const end = a.indexOf(']');
    if (end < 0) throw new HttpRequestError(400, 'bad-authority', 'unterminated IPv6 literal');
    host = a.slice(1, end);
    const rest = a.slice(end + 1);
    if (rest && !rest.startsWith(':')) throw new HttpRequestError(400, 'bad-authority', 'garbage after IPv6 literal');
    portText = rest ? rest.slice(1) : undefined;
    if (net.isIP(host) !== 6) throw new HttpRequestError(400, 'bad-authority', 'bad IPv6 literal');
  } else {
    const colon = a.lastIndexOf(':');
    host = colon >= 0 ? a.slice(0, colon) : a;
    portText = colon >= 0 ? a.slice(colon + 1) : undefined;
    if (!net.isIP(host) && (host.length > 253 || !HOSTNAME.test(host))) throw new HttpRequestError(400, 'bad-authority', 'bad host name');
  }
  let port: number;
  if (portText === undefined || portText === '') {
    if (defaultPort === undefined) throw new HttpRequestError(400, 'bad-authority', 'port required');
    port = defaultPort;
  } else {
    if (!/^\d{1,5}$/.test(portText)) throw new HttpRequestError(400, 'bad-authority', 'bad port');
    port = Number(portText);
  }
  if (port < 1 || port > 65535) throw new HttpRequestError(400, 'bad-authority', 'port out of range');
  host = host.toLowerCase();
  if (host.endsWith('.')) host = host.slice(0, -1);
  return { host, port };
}

function checkAuth(headers: [string, string][], auth: EgressAuth | null): void {
  if (!auth) return;
  const challenge = 'Proxy-Authenticate: Basic realm="switchyard"\r\n';
  const h = headers.find(([n]) => n === 'proxy-authorization');
  const m = h ? /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(h[1]) : null;
  if (!m) throw new HttpRequestError(407, 'no-credentials', 'proxy authentication required', challenge);
  const got = Buffer.from(m[1]!, 'base64');
  const want = Buffer.from(`${auth.username}:${auth.password}`, 'utf8');
  if (got.length !== want.length || !timingSafeEqual(got, want)) throw new HttpRequestError(407, 'bad-credentials', 'wrong username or password', challenge);
}

/** Reads and parses one request head. Throws HttpRequestError with the status to answer. */
export async function readHttpProxyRequest(r: ByteReader, auth: EgressAuth | null): Promise<HttpProxyRequest> {
  let raw: Buffer;
  try {
    raw = await r.readUntil(Buffer.from('\r\n\r\n'), MAX_REQUEST_HEAD);
  } catch (err) {
    if (err instanceof HandshakeError && err.reason === 'too-large') throw new HttpRequestError(431, 'too-large', `request head exceeds ${MAX_REQUEST_HEAD} bytes`);
    throw err;
  }
  const text = raw.toString('latin1');
  const lines = text.slice(0, -4).split('\r\n');
  const requestLine = lines.shift() ?? '';
  const parts = requestLine.split(' ');
  if (parts.length !== 3) throw new HttpRequestError(400, 'bad-request-line', 'malformed request line');
  const [method, target, version] = parts as [string, string, string];
  if (!TOKEN.test(method)) throw new HttpRequestError(400, 'bad-method', 'malformed method');
  if (version !== 'HTTP/1.1' && version !== 'HTTP/1.0') throw new HttpRequestError(400, 'bad-version', 'unsupported HTTP version');
  if (lines.length > MAX_HEADERS) throw new HttpRequestError(431, 'too-many-headers', `more than ${MAX_HEADERS} header fields`);
  const headers: [string, string][] = [];
  for (const line of lines) {
    const colon = line.indexOf(':');
    if (colon <= 0) throw new HttpRequestError(400, 'bad-header', 'malformed header line');
    const name = line.slice(0, colon);
    if (!TOKEN.test(name)) throw new HttpRequestError(400, 'bad-header', 'malformed header name');
    const value = line.slice(colon + 1).trim();
    if (/[\0\r\n]/.test(value)) throw new HttpRequestError(400, 'bad-header', 'control character in header value');
    headers.push([name.toLowerCase(), value]);
  }
  checkAuth(headers, auth);
  if (method === 'CONNECT') {
    const { host, port } = parseAuthority(target);
    return { kind: 'connect', host, port };
  }
  if (!/^http:\/\//i.test(target)) {
    if (/^https:\/\//i.test(target)) throw new HttpRequestError(400, 'https-absolute', 'https:// targets need CONNECT');
    throw new HttpRequestError(400, 'not-absolute', 'a proxy request needs an absolute http:// URI or CONNECT');
  }
  const afterScheme = target.slice(7);
  const slash = afterScheme.search(/[/?#]/);
  const authorityText = slash >= 0 ? afterScheme.slice(0, slash) : afterScheme;
  if (authorityText.includes('@')) throw new HttpRequestError(400, 'userinfo', 'userinfo in URI is not allowed');
  const { host, port } = parseAuthority(authorityText, 80);
  let path = slash >= 0 ? afterScheme.slice(slash) : '/';
  if (path.startsWith('#')) path = '/';
  else if (path.startsWith('?')) path = `/${path}`;
  const hashAt = path.indexOf('#');
  if (hashAt >= 0) path = path.slice(0, hashAt);
  // Body framing (RFC 9112 §6): a request with both Transfer-Encoding and Content-Length, or
  // differing lengths, is a smuggling attempt: refused rather than guessed.
  const te = headers.filter(([n]) => n === 'transfer-encoding').map(([, v]) => v.toLowerCase());
  const cls = [...new Set(headers.filter(([n]) => n === 'content-length').map(([, v]) => v))];
  if (te.length && cls.length) throw new HttpRequestError(400, 'bad-framing', 'both Transfer-Encoding and Content-Length');
  if (cls.length > 1) throw new HttpRequestError(400, 'bad-framing', 'conflicting Content-Length values');
  let contentLength: number | undefined;
  if (cls.length === 1) {
    if (!/^\d{1,15}$/.test(cls[0]!)) throw new HttpRequestError(400, 'bad-framing', 'malformed Content-Length');
    contentLength = Number(cls[0]);
  }
  const chunked = te.length > 0;
  if (chunked && !/(^|,)\s*chunked\s*$/.test(te.join(','))) throw new HttpRequestError(400, 'bad-framing', 'Transfer-Encoding without final chunked');
  const connTokens = headers.filter(([n]) => n === 'connection' || n === 'proxy-connection').flatMap(([, v]) => v.toLowerCase().split(',').map((t) => t.trim()));
  const clientClose = connTokens.includes('close') || (version === 'HTTP/1.0' && !connTokens.includes('keep-alive'));
  // Hop-by-hop and proxy headers stay here (and whatever Connection names as hop-by-hop).
  const drop = new Set(['proxy-authorization', 'proxy-connection', 'connection', 'keep-alive', ...connTokens.filter((t) => TOKEN.test(t) && t !== 'close' && t !== 'keep-alive')]);
  const keep = lines.filter((l) => !drop.has(l.slice(0, l.indexOf(':')).toLowerCase()));
  if (!headers.some(([n]) => n === 'host')) keep.unshift(`Host: ${authorityText}`);
  const start = `${method} ${path} ${version}\r\n${keep.join('\r\n')}${keep.length ? '\r\n' : ''}`;
  return {
    kind: 'forward',
    host,
    port,
    method,
    forwardHead: Buffer.from(`${start}Connection: close\r\n\r\n`, 'latin1'),
    keepAliveHead: Buffer.from(`${start}${version === 'HTTP/1.0' ? 'Connection: keep-alive\r\n' : ''}\r\n`, 'latin1'),
    ...(contentLength !== undefined ? { contentLength } : {}),
    chunked,
    clientClose,
  };
}
