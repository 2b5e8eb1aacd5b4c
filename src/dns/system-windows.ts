// The system's resolvers on Windows, used when `[dns] upstreams` is empty: the servers saved before
// switchyard became the system resolver (the same `saved-resolv.conf` file as on Linux, when a
// backend wrote one), then the DNS servers of every adapter that is up, in the order Windows lists
// them. `switchyard dns system on` on Windows adds an NRPT rule and leaves the adapters' servers
// alone, so those are normally exactly the servers in use before switchyard — unless someone
// pointed an adapter at switchyard itself, which the filter below removes.
//
// Removed: switchyard's own listeners (on port 53 — the port resolvers are asked on; a wildcard
// listener also answers on this machine's loopback and adapter addresses), every loopback address
// (local stubs: switchyard or another forwarder; never the way out), the placeholder site-local
// servers fec0:0:0:ffff::1..3 Windows shows on adapters with no IPv6 DNS (RFC 3879 deprecated
// site-local; they only time out), link-local IPv6 servers (their zone is lost here and a URL
// cannot carry one), and unspecified addresses.
//
// The selection is pure (tested on Linux); the OS call is injected (src/sys/windows/iphlpapi.ts
// `adapterDnsServers`), so this module loads no DLL by itself.
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import type { HostPort } from '../policy/types.ts';
import { canonicalIp } from './store.ts';
import { parseResolvConf } from './system.ts';

/** What selection needs from one adapter (iphlpapi's AdapterDns has this shape). */
export interface AdapterDnsInfo {
  name: string;
  up: boolean;
  loopback: boolean;
  servers: string[];
  addresses: string[];
}

export interface WindowsResolverOptions {
  /** switchyard's own listeners, never used as upstreams. */
  ownListeners: HostPort[];
  /** Servers saved before switchyard became the system resolver (first when usable). */
  saved?: string[];
}

/** At most this many servers (as parseResolvConf keeps). */
export const MAX_SYSTEM_SERVERS = 8;

const PLACEHOLDER_V6 = new Set(['fec0:0:0:ffff::1', 'fec0:0:0:ffff::2', 'fec0:0:0:ffff::3']);

function isLoopback(ip: string): boolean {
  return ip.startsWith('127.') || ip === '::1';
}

/** Why a server is not used, or null when it is usable. */
export function unusableReason(ip: string, own: HostPort[], localAddresses: ReadonlySet<string>): string | null {
  if (ip === '0.0.0.0' || ip === '::') return 'unspecified';
  if (isLoopback(ip)) return 'loopback';
  if (PLACEHOLDER_V6.has(ip)) return 'placeholder fec0:0:0:ffff::';
  if (/^fe[89ab]/i.test(ip)) return 'link-local';
  for (const l of own) {
    if (l.port !== 53) continue;
    const h = canonicalIp(l.host);
    if (h === ip) return 'own listener';
    if ((h === '0.0.0.0' || h === '::') && localAddresses.has(ip)) return 'own listener (wildcard)';
  }
  return null;
}

/** Upstream URLs (udp://IP:53) from saved servers and adapters, in that order, deduplicated. */
export function selectWindowsResolvers(adapters: readonly AdapterDnsInfo[], opts: WindowsResolverOptions): string[] {
  const local = new Set<string>();
  for (const a of adapters) for (const x of a.addresses) {
    const c = canonicalIp(x);
    if (c !== null) local.add(c);
  }
  const take = (list: readonly string[]): string[] => {
    const out: string[] = [];
    for (const raw of list) {
      const ip = canonicalIp(raw);
      if (ip === null || out.includes(ip) || unusableReason(ip, opts.ownListeners, local) !== null) continue;
      out.push(ip);
    }
    return out;
  };
  const saved = take(opts.saved ?? []);
  const fromAdapters = take(adapters.filter((a) => a.up && !a.loopback).flatMap((a) => a.servers));
  const all = [...saved, ...fromAdapters.filter((ip) => !saved.includes(ip))].slice(0, MAX_SYSTEM_SERVERS);
  return all.map((ip) => (isIP(ip) === 6 ? `udp://[${ip}]:53` : `udp://${ip}:53`));
}

/**
 * The Windows system resolvers for the forwarder's `systemResolvers` option: `readAdapters` is
 * iphlpapi's `adapterDnsServers`; `savedConf` the state directory's saved-resolv.conf. A failing
 * adapter query is reported by `onError` and leaves only the saved servers.
 */
export function windowsSystemResolvers(opts: {
  readAdapters: () => AdapterDnsInfo[];
  ownListeners: HostPort[];
  savedConf?: string;
  readFile?: (path: string) => string;
  onError?: (err: unknown) => void;
}): string[] {
  const read = opts.readFile ?? ((p: string) => readFileSync(p, 'utf8'));
  let saved: string[] = [];
  if (opts.savedConf) {
    try {
      saved = parseResolvConf(read(opts.savedConf));
    } catch {
      // no saved servers
    }
  }
  let adapters: AdapterDnsInfo[] = [];
  try {
    adapters = opts.readAdapters();
  } catch (err) {
    opts.onError?.(err);
  }
  return selectWindowsResolvers(adapters, { ownListeners: opts.ownListeners, saved });
}
