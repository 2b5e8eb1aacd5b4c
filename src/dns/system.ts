// The system's resolvers, used when `[dns] upstreams` is empty. First the servers saved before
// switchyard became the system resolver (SAVED_RESOLVERS_FILE in the state directory, written by the
// OS backend), then resolv.conf; when it
// names only systemd-resolved's stub (127.0.0.53 / 127.0.0.54), from the file listing resolved's
// own upstreams. Any address that is one of switchyard's listeners is skipped: once switchyard is
// the system resolver, resolv.conf points at it, and asking ourselves would loop.
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import type { HostPort } from '../policy/types.ts';
import { canonicalIp } from './store.ts';

export const RESOLV_CONF = '/etc/resolv.conf';
/** File name, inside the state directory, of the servers saved before switchyard took over DNS. */
export const SAVED_RESOLVERS_FILE = 'saved-resolv.conf';
export const RESOLVED_UPSTREAMS = '/run/systemd/resolve/resolv.conf';
const RESOLVED_STUBS = new Set(['127.0.0.53', '127.0.0.54']);

export interface SystemResolverOptions {
  /**
   * resolv.conf-format file of the servers in use before switchyard became the system resolver
   * (written by the OS backend when it takes over); preferred when it names a usable server.
   */
  savedConf?: string;
  resolvConf?: string;
  resolvedConf?: string;
  /** switchyard's own listeners, never used as upstreams. */
  ownListeners: HostPort[];
  readFile?: (path: string) => string;
}

/** Nameserver addresses in a resolv.conf text (IPv6 zone ids dropped), at most the first 8. */
export function parseResolvConf(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*nameserver\s+(\S+)/.exec(line);
    if (!m) continue;
    const ip = canonicalIp(m[1]!);
    if (ip !== null && !out.includes(ip)) out.push(ip);
  }
  return out.slice(0, 8);
}

function isOwn(ip: string, own: HostPort[]): boolean {
  // resolv.conf servers are always asked on port 53.
  return own.some((l) => {
    if (l.port !== 53) return false;
    const h = canonicalIp(l.host);
    if (h === ip) return true;
    // A wildcard listener answers on every local address; treat loopback as ours then.
    const wildcard = h === '0.0.0.0' || h === '::';
    return wildcard && (ip.startsWith('127.') || ip === '::1');
  });
}

/** Upstream URLs for the system's resolvers (udp://IP:53), never switchyard's own listener. */
export function systemUpstreams(opts: SystemResolverOptions): string[] {
  const read = opts.readFile ?? ((p: string) => readFileSync(p, 'utf8'));
  const tryRead = (p: string): string[] => {
    try {
      return parseResolvConf(read(p));
    } catch {
      return [];
    }
  };
  if (opts.savedConf) {
    const saved = tryRead(opts.savedConf).filter((s) => !RESOLVED_STUBS.has(s) && !isOwn(s, opts.ownListeners));
    if (saved.length > 0) return saved.map((s) => (isIP(s) === 6 ? `udp://[${s}]:53` : `udp://${s}:53`));
  }
  let servers = tryRead(opts.resolvConf ?? RESOLV_CONF);
  if (servers.length > 0 && servers.every((s) => RESOLVED_STUBS.has(s))) {
    const behind = tryRead(opts.resolvedConf ?? RESOLVED_UPSTREAMS).filter((s) => !RESOLVED_STUBS.has(s));
    if (behind.length > 0) servers = behind;
  }
  return servers.filter((s) => !isOwn(s, opts.ownListeners)).map((s) => (isIP(s) === 6 ? `udp://[${s}]:53` : `udp://${s}:53`));
}
