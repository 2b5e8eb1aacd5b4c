// Known DNS-over-HTTPS endpoints, refused with `[enforce] block_doh = true`: a browser that cannot
// reach its DoH resolver falls back to system DNS, which switchyard sees (and so can correlate).
// Two halves, because DoH hides in ordinary HTTPS: the names are answered by the forwarder as
// blocked (the browser cannot find the resolver), and the addresses get TCP and UDP 443 refused
// (a browser that has the address built in, e.g. Chrome's "secure DNS" upgrade for 8.8.8.8).
// Pure: the daemon reads the optional list file and passes its text to parseDohList().
import { isIP } from 'node:net';
import type { Cidr } from '../policy/types.ts';

export interface DohList {
  /** Lower-case names without a trailing dot; a name also covers its subdomains. */
  names: string[];
  /** Host addresses and CIDRs whose port 443 is refused. */
  cidrs: Cidr[];
}

/**
 * A small built-in list: the public resolvers browsers offer in their settings. Not exhaustive by
 * design (a list file adds more); addresses are the providers' documented anycast addresses.
 */
export const BUILTIN_DOH = {
  names: [
    'dns.google',
    'dns.google.com',
    'cloudflare-dns.com',
    'one.one.one.one',
    'dns.quad9.net',
    'doh.opendns.com',
    'dns.adguard-dns.com',
    'dns.nextdns.io',
    'doh.cleanbrowsing.org',
    'doh.mullvad.net',
    'dns.mullvad.net',
  ],
  addresses: [
    '8.8.8.8', '8.8.4.4', '2001:4860:4860::8888', '2001:4860:4860::8844',
    '1.1.1.1', '1.0.0.1', '2606:4700:4700::1111', '2606:4700:4700::1001',
    '9.9.9.9', '149.112.112.112', '2620:fe::fe', '2620:fe::9',
    '208.67.222.222', '208.67.220.220', '2620:119:35::35', '2620:119:53::53',
    '94.140.14.14', '94.140.15.15', '2a10:50c0::ad1:ff', '2a10:50c0::ad2:ff',
  ],
} as const;

const NAME = /^(?=.{1,253}$)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*$/;

export class DohListError extends Error {
  readonly line: number;
  constructor(line: number, message: string) {
    super(`DoH list line ${line}: ${message}`);
    this.line = line;
  }
}

function cidrOf(text: string): Cidr | null {
  const [addr, len, extra] = text.split('/');
  if (extra !== undefined || addr === undefined) return null;
  const fam = isIP(addr);
  if (fam === 0) return null;
  const max = fam === 4 ? 32 : 128;
  if (len !== undefined && !/^\d{1,3}$/.test(len)) return null;
  const prefix = len === undefined ? max : Number(len);
  if (prefix > max) return null;
  return { family: fam as 4 | 6, address: addr, prefix };
}

/**
 * One entry per line: a DNS name or an IP address (optionally /prefix). `#` starts a comment;
 * blank lines are skipped. Lines of several words (hosts-file style `ADDR NAME…`) give each word.
 * Bad entries are errors naming the line: a typo must not silently leave a resolver open.
 */
export function parseDohList(text: string, maxEntries = 100_000): DohList {
  const names: string[] = [];
  const cidrs: Cidr[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const body = lines[i]!.replace(/#.*$/, '').trim();
    if (body === '') continue;
    for (const word of body.split(/\s+/)) {
      if (names.length + cidrs.length >= maxEntries) throw new DohListError(i + 1, `more than ${maxEntries} entries`);
      const c = cidrOf(word);
      if (c) {
        cidrs.push(c);
        continue;
      }
      const n = word.toLowerCase().replace(/\.$/, '');
      if (!NAME.test(n) || /^[\d.]+$/.test(n)) throw new DohListError(i + 1, `'${word.slice(0, 80)}' is neither a DNS name nor an IP address`);
      names.push(n);
    }
  }
  return { names, cidrs };
}

/** The built-in list plus the file's entries (duplicates removed). */
export function dohList(extra: DohList | null): DohList {
  const base = parseDohList([...BUILTIN_DOH.names, ...BUILTIN_DOH.addresses].join('\n'));
  const names = [...new Set([...base.names, ...(extra?.names ?? [])])];
  const seen = new Set<string>();
  const cidrs: Cidr[] = [];
  for (const c of [...base.cidrs, ...(extra?.cidrs ?? [])]) {
    const k = `${c.address}/${c.prefix}`;
    if (!seen.has(k)) {
      seen.add(k);
      cidrs.push(c);
    }
  }
  return { names, cidrs };
}

/** A matcher for names (the listed name itself and its subdomains), case-insensitive. */
export function dohNameMatcher(names: readonly string[]): (name: string) => boolean {
  const set = new Set(names);
  return (name) => {
    let n = name.toLowerCase().replace(/\.$/, '');
    for (;;) {
      if (set.has(n)) return true;
      const dot = n.indexOf('.');
      if (dot < 0) return false;
      n = n.slice(dot + 1);
    }
  };
}
