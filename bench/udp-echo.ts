// The floor for any Node.js DNS responder on this machine: answers every query with a fixed A
// record by copying bytes, nothing else. bench/dns.bench.ts runs it next to switchyard and dnsmasq
// so the report can tell Node's own UDP cost from the forwarder's. argv[2]: port.
import { createSocket } from 'node:dgram';
import type { SocketOptions } from 'node:dgram';

// The same per-send shortcut the forwarder's listener uses (src/dns/listen.ts): the reply address
// is an IP literal, so skip dgram's dns.lookup and its process.nextTick per send.
const lookup = (address: string, _family: unknown, cb: (err: null, address: string, family: number) => void): void => cb(null, address, 4);
const sock = createSocket({ type: 'udp4', lookup: lookup as unknown as SocketOptions['lookup'] });
const rr = Buffer.from([0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0x0e, 0x10, 0, 4, 127, 0, 0, 1]);
sock.on('message', (m, r) => {
  if (m.length < 12) return;
  const out = Buffer.allocUnsafe(m.length + rr.length);
  m.copy(out);
  out[2]! |= 0x80;
  out[7] = 1;
  rr.copy(out, m.length);
  sock.send(out, r.port, r.address);
});
sock.bind(Number(process.argv[2]), '127.0.0.1', () => process.stdout.write('READY\n'));
