// How an egress failure is told to a proxy client: the SOCKS5 reply byte (RFC 1928 §6) and the
// HTTP status. Table-driven so docs/front.md and the code cannot drift apart.
import { EgressError, HandshakeError, type EgressFailure } from '../errors.ts';
import { REP } from '../egress/socks5-wire.ts';

export const FAILURE_REPLY: Record<EgressFailure, { socks: number; http: number }> = {
  blocked: { socks: REP.NOT_ALLOWED, http: 403 },
  unsupported: { socks: REP.NOT_ALLOWED, http: 403 },
  'unknown-egress': { socks: REP.GENERAL_FAILURE, http: 502 },
  down: { socks: REP.NETWORK_UNREACHABLE, http: 503 },
  interface: { socks: REP.NETWORK_UNREACHABLE, http: 503 },
  resolve: { socks: REP.HOST_UNREACHABLE, http: 502 },
  timeout: { socks: REP.HOST_UNREACHABLE, http: 504 },
  refused: { socks: REP.CONNECTION_REFUSED, http: 502 },
  'host-unreachable': { socks: REP.HOST_UNREACHABLE, http: 502 },
  'net-unreachable': { socks: REP.NETWORK_UNREACHABLE, http: 502 },
  proxy: { socks: REP.GENERAL_FAILURE, http: 502 },
};

export function socksReplyFor(err: unknown): number {
  if (err instanceof EgressError) {
    // The egress's proxy cannot be reached: the same as an egress that is down.
    if (err.proxyUnreachable) return FAILURE_REPLY.down.socks;
    // A socks5 egress's own answer about the destination is passed on unchanged.
    if (err.upstreamReply !== undefined && err.upstreamReply > 0 && err.upstreamReply <= REP.ADDRESS_TYPE_NOT_SUPPORTED) return err.upstreamReply;
    return FAILURE_REPLY[err.failure].socks;
  }
  if (err instanceof HandshakeError) return REP.GENERAL_FAILURE;
  return REP.GENERAL_FAILURE;
}

export function httpStatusFor(err: unknown): number {
  if (err instanceof EgressError) {
    if (err.proxyUnreachable) return FAILURE_REPLY.down.http;
    if (err.upstreamReply === REP.NOT_ALLOWED) return 403;
    return FAILURE_REPLY[err.failure].http;
  }
  return 502;
}

export const HTTP_REASON: Record<number, string> = {
  200: 'Connection Established',
  400: 'Bad Request',
  403: 'Forbidden',
  405: 'Method Not Allowed',
  407: 'Proxy Authentication Required',
  414: 'URI Too Long',
  431: 'Request Header Fields Too Large',
  500: 'Internal Server Error',
  501: 'Not Implemented',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
};

/** A complete error response; the body names the reason (code and message) for humans. */
export function httpError(status: number, detail: string, extraHeaders = ''): string {
  const body = `${status} ${HTTP_REASON[status] ?? ''}\n${detail}\n`;
  return `HTTP/1.1 ${status} ${HTTP_REASON[status] ?? 'Error'}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n${extraHeaders}\r\n${body}`;
}
