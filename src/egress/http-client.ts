// The HTTP CONNECT client an http egress speaks to its proxy (RFC 9110 §9.3.6, Basic auth per
// RFC 7617). The response head is read with a size bound; bytes after it belong to the tunnel.
import { EgressError } from '../errors.ts';
import { attachReader } from './socks5-client.ts';
import type { Upstream } from './upstream.ts';
import type { EgressAuth } from '../policy/types.ts';

export const MAX_RESPONSE_HEAD = 16 * 1024;

export interface HttpConnectOptions {
  egress: string;
  auth: EgressAuth | null;
  host: string;
  port: number;
  timeoutMs: number;
}

export function authority(host: string, port: number): string {
  return `${host.includes(':') ? `[${host}]` : host}:${port}`;
}

export async function httpConnect(up: Upstream, o: HttpConnectOptions): Promise<void> {
  const { reader, detach } = attachReader(up, MAX_RESPONSE_HEAD + 1024);
  const timer = setTimeout(() => reader.fail(new EgressError('SY_ERR_EGRESS_CONNECT', 'timeout', o.egress, `CONNECT timed out after ${o.timeoutMs} ms`)), o.timeoutMs);
  try {
    const target = authority(o.host, o.port);
    let head = `CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n`;
    if (o.auth) head += `Proxy-Authorization: Basic ${Buffer.from(`${o.auth.username}:${o.auth.password}`, 'utf8').toString('base64')}\r\n`;
    up.socket.write(`${head}\r\n`);
    const raw = await reader.readUntil(Buffer.from('\r\n\r\n'), MAX_RESPONSE_HEAD);
    const statusLine = raw.toString('latin1').split('\r\n', 1)[0] ?? '';
    const m = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine);
    if (!m) throw new EgressError('SY_ERR_EGRESS_PROXY', 'proxy', o.egress, `malformed CONNECT response: ${JSON.stringify(statusLine.slice(0, 80))}`);
    const status = Number(m[1]);
    if (status >= 200 && status < 300) return;
    if (status === 407) throw new EgressError('SY_ERR_EGRESS_PROXY', 'proxy', o.egress, 'proxy requires authentication (407)');
    if (status === 504) throw new EgressError('SY_ERR_EGRESS_CONNECT', 'timeout', o.egress, `proxy answered 504 for ${target}`);
    if (status === 502 || status === 503) throw new EgressError('SY_ERR_EGRESS_CONNECT', 'host-unreachable', o.egress, `proxy answered ${status} for ${target}`);
    // 403 and other refusals: the proxy's own rules said no to this destination.
    if (status === 403) throw new EgressError('SY_ERR_EGRESS_PROXY', 'proxy', o.egress, `proxy refused ${target} (403)`, { upstreamReply: 0x02 });
    throw new EgressError('SY_ERR_EGRESS_PROXY', 'proxy', o.egress, `proxy answered ${status} for ${target}`);
  } catch (err) {
    if (err instanceof EgressError) throw err;
    throw new EgressError('SY_ERR_EGRESS_PROXY', 'proxy', o.egress, `CONNECT failed: ${(err as Error).message}`, { cause: err });
  } finally {
    clearTimeout(timer);
    detach();
  }
}
