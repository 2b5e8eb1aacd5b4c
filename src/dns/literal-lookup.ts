// A `lookup` for listener sockets. Replies only ever go to `rinfo.address`, an IP literal, yet
// dgram's default lookup (dns.lookup) re-checks it and defers every send by a process.nextTick:
// about a fifth of a cache hit's CPU on the dgram path. This one answers at once with the
// socket's family.
import type { SocketOptions } from 'node:dgram';

export function literalLookup(family: 4 | 6): SocketOptions['lookup'] {
  const lookup = (address: string, _family: unknown, cb: (err: Error | null, address: string, family: number) => void): void =>
    cb(null, address, family);
  return lookup as unknown as SocketOptions['lookup'];
}
