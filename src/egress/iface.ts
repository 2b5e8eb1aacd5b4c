// Interfaces for `interface` egresses: the named one, or `auto` — the physical interface that
// carries the default route. "Physical" means /sys/class/net/<if>/device exists (a real NIC, not
// a tun, wg, veth-without-device or bridge), so a VPN that installs its own default route is not
// mistaken for the way out. Roots are injectable so tests can hand in fixture files.
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import os from 'node:os';

export interface IfaceRoots {
  procRoute: string;
  procRoute6: string;
  sysClassNet: string;
}

export const DEFAULT_ROOTS: IfaceRoots = {
  procRoute: '/proc/net/route',
  procRoute6: '/proc/net/ipv6_route',
  sysClassNet: '/sys/class/net',
};

const RTF_UP = 0x0001;

interface DefaultRoute {
  iface: string;
  metric: number;
}

/** Default routes from /proc/net/route (IPv4): Destination and Mask both 00000000, flag RTF_UP. */
export function parseRoute4(text: string): DefaultRoute[] {
  const out: DefaultRoute[] = [];
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 8) continue;
    const [iface, dest, , flags, , , metric, mask] = f;
    if (dest !== '00000000' || mask !== '00000000') continue;
    if ((parseInt(flags!, 16) & RTF_UP) === 0) continue;
    out.push({ iface: iface!, metric: parseInt(metric!, 10) || 0 });
  }
  return out;
}

/** Default routes from /proc/net/ipv6_route: dest ::/0 (32 zero hex digits, length 00). */
export function parseRoute6(text: string): DefaultRoute[] {
  const out: DefaultRoute[] = [];
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10) continue;
    const [dest, len, , , , metric, , , flags, iface] = f;
    if (dest !== '0'.repeat(32) || len !== '00' || iface === 'lo') continue;
    if ((parseInt(flags!, 16) & RTF_UP) === 0) continue;
    out.push({ iface: iface!, metric: parseInt(metric!, 16) || 0 });
  }
  return out;
}

function readOr(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

/** The physical interface carrying the lowest-metric default route (IPv4 first, then IPv6). */
export function findDefaultPhysical(roots: IfaceRoots = DEFAULT_ROOTS): string | undefined {
  const routes = [...parseRoute4(readOr(roots.procRoute)).sort((a, b) => a.metric - b.metric), ...parseRoute6(readOr(roots.procRoute6)).sort((a, b) => a.metric - b.metric)];
  for (const r of routes) if (existsSync(join(roots.sysClassNet, r.iface, 'device'))) return r.iface;
  return undefined;
}

export interface InterfaceAddresses {
  name: string;
  v4: string | undefined;
  v6: string | undefined;
}

/** Addresses of an interface (global first for IPv6; link-local cannot source routed traffic). */
export function interfaceAddresses(name: string): InterfaceAddresses | undefined {
  const list = os.networkInterfaces()[name];
  if (!list) return undefined;
  const v4 = list.find((a) => a.family === 'IPv4')?.address;
  const v6 = list.find((a) => a.family === 'IPv6' && !a.address.startsWith('fe80'))?.address;
  return { name, v4, v6 };
}

/**
 * Resolves an interface egress's `interface` setting, re-reading the routing table at most every
 * `refreshMs` so a network change (Wi-Fi to Ethernet) is picked up without a restart.
 */
export class InterfaceResolver {
  private cached: { at: number; name: string | undefined } | undefined;
  readonly setting: string;
  readonly roots: IfaceRoots;
  readonly refreshMs: number;
  constructor(setting: string, roots: IfaceRoots = DEFAULT_ROOTS, refreshMs = 2000) {
    this.setting = setting;
    this.roots = roots;
    this.refreshMs = refreshMs;
  }

  current(now = Date.now()): string | undefined {
    if (this.setting !== 'auto') return this.setting;
    if (!this.cached || now - this.cached.at >= this.refreshMs) this.cached = { at: now, name: findDefaultPhysical(this.roots) };
    return this.cached.name;
  }
}
