// host:port and URL parsing for config values. Hand-written rather than WHATWG URL: `socks5://`
// is not a special scheme there, so URL() would accept hosts like `a b` and keep case; we want one
// strict grammar and an error that says what is wrong.
import type { EgressAuth, HostPort } from '../types.ts';
import { parseIPv4, parseIPv6, formatIPv6 } from '../ip.ts';
import { normalizeDomainName } from '../patterns.ts';

type Err = { error: string };

/** An IP literal (canonical text) or a normalised host name. */
function parseHost(h: string, allowName: boolean): string | Err {
  if (h.startsWith('[')) {
    if (!h.endsWith(']')) return { error: `unbalanced '[' in host '${h}'` };
    const w = parseIPv6(h.slice(1, -1));
    return w === null ? { error: `'${h}' is not an IPv6 address` } : formatIPv6(w);
  }
  if (parseIPv4(h) !== null) return h;
  if (h.includes(':')) return { error: `IPv6 address '${h}' must be written in brackets, e.g. [::1]:53` };
  if (!allowName) return { error: `'${h}' is not an IP address (a name is not allowed here)` };
  const n = normalizeDomainName(h);
  return typeof n === 'string' ? n : { error: `bad host '${h}'` };
}

function parsePort(p: string): number | Err {
  if (!/^[0-9]{1,5}$/.test(p)) return { error: `bad port '${p}'` };
  const n = Number(p);
  return n >= 1 && n <= 65535 ? n : { error: `port ${n} is not in 1..65535` };
}

/** `host:port` or `[v6]:port`. */
export function parseHostPort(s: string, allowName: boolean): HostPort | Err {
  const m = /^(\[[^\]]*\]|[^:[\]]*):([^:]*)$/.exec(s);
  if (!m) return { error: `'${s}' is not host:port (IPv6 in brackets: [::1]:53)` };
  const host = parseHost(m[1]!, allowName);
  if (typeof host !== 'string') return host;
  const port = parsePort(m[2]!);
  if (typeof port !== 'number') return port;
  return { host, port };
}

export interface ProxyUrl {
  scheme: string;
  endpoint: HostPort;
  auth: EgressAuth | null;
}

/** `scheme://[user[:pass]@]host:port[/]` with the port required. */
export function parseProxyUrl(s: string, schemes: readonly string[]): ProxyUrl | Err {
  const m = /^([a-z0-9]+):\/\/(?:([^@/]*)@)?(\[[^\]/]*\]|[^:/@[\]]*)(?::([^/]*))?(\/?)$/i.exec(s);
  if (!m) return { error: `'${redact(s)}' is not a URL like ${schemes[0]}://host:port` };
  const scheme = m[1]!.toLowerCase();
  if (!schemes.includes(scheme)) return { error: `scheme '${scheme}://' is not ${schemes.map((x) => `${x}://`).join(' or ')}` };
  if (m[3] === '') return { error: `'${redact(s)}' has no host` };
  if (m[4] === undefined) return { error: `'${redact(s)}' has no port` };
  const host = parseHost(m[3]!, true);
  if (typeof host !== 'string') return host;
  const port = parsePort(m[4]);
  if (typeof port !== 'number') return port;
  let auth: EgressAuth | null = null;
  if (m[2] !== undefined) {
    const colon = m[2].indexOf(':');
    try {
      const username = decodeURIComponent(colon < 0 ? m[2] : m[2].slice(0, colon));
      const password = colon < 0 ? '' : decodeURIComponent(m[2].slice(colon + 1));
      if (username.length === 0 || username.length > 255 || password.length > 255) {
        return { error: 'user name must be 1..255 and password 0..255 characters (RFC 1929)' };
      }
      auth = { username, password };
    } catch {
      return { error: 'bad percent-encoding in user:password' };
    }
  }
  return { scheme, endpoint: { host, port }, auth };
}

const UPSTREAM_PORTS: Record<string, number> = { udp: 53, tcp: 53, tls: 853, https: 443 };

/** DNS upstream: udp://, tcp://, tls:// host[:port]; https://host[:port]/path. */
export function checkUpstreamUrl(s: string): string | null {
  const m = /^([a-z]+):\/\/(\[[^\]/]*\]|[^:/@[\]]+)(?::([0-9]+))?(\/[^\s#]*)?$/i.exec(s);
  if (!m) return `'${s}' is not a resolver URL like udp://1.1.1.1:53 or https://dns.example/dns-query`;
  const scheme = m[1]!.toLowerCase();
  if (!(scheme in UPSTREAM_PORTS)) return `scheme '${scheme}://' is not udp://, tcp://, tls:// or https://`;
  const host = parseHost(m[2]!, true);
  if (typeof host !== 'string') return host.error;
  if (m[3] !== undefined) {
    const port = parsePort(m[3]);
    if (typeof port !== 'number') return port.error;
  }
  if (scheme !== 'https' && m[4] !== undefined && m[4] !== '/') return `a ${scheme}:// resolver has no path`;
  return null;
}

function redact(s: string): string {
  return s.replace(/\/\/[^@/]*@/, '//***@');
}
