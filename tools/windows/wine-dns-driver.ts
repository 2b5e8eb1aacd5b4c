// Runs inside the Windows build of Node under Wine (bundled by test/windows/adapter-dns.test.ts with
// esbuild, koffi left external so the win32 koffi.node is used): reads the adapters' DNS servers
// through the real koffi binding (GetAdaptersAddresses, IP_ADAPTER_DNS_SERVER_ADDRESS_XP lists),
// selects the system resolvers, starts the forwarder with no upstream configured, and asks it one
// name over UDP. Writes its result as JSON to argv[2] (under Wine, Node's stdout must be a file).
import { writeFileSync } from 'node:fs';
import { createSocket } from 'node:dgram';
import { adapterDnsServers } from '../../src/sys/windows/iphlpapi.ts';
import { startDnsForwarder, windowsSystemResolvers } from '../../src/dns/index.ts';
import { builtinEgresses, dnsConfig } from '../../test/dns/helpers.ts';

const outFile = process.argv[2]!;

/** A query for `name` A with RD set (RFC 1035 §4.1), ID 0x5359. */
function query(name: string): Buffer {
  const labels = name.split('.').flatMap((l) => [Buffer.from([l.length]), Buffer.from(l, 'ascii')]);
  return Buffer.concat([Buffer.from([0x53, 0x59, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]), ...labels, Buffer.from([0, 0, 1, 0, 1])]);
}

/** The first A record's address in an answer (bounded walk; names in answers are pointers or labels). */
function firstA(msg: Buffer): { rcode: number; a: string | null } {
  const rcode = msg[3]! & 0xf;
  let off = 12;
  const skipName = (): void => {
    for (let guard = 0; guard < 128 && off < msg.length; guard++) {
      const len = msg[off]!;
      if (len === 0) return void off++;
      if ((len & 0xc0) === 0xc0) return void (off += 2);
      off += 1 + len;
    }
  };
  skipName();
  off += 4;
  const an = msg.readUInt16BE(6);
  for (let i = 0; i < an && off + 10 <= msg.length; i++) {
    skipName();
    const type = msg.readUInt16BE(off);
    const rdlen = msg.readUInt16BE(off + 8);
    off += 10;
    if (type === 1 && rdlen === 4 && off + 4 <= msg.length) return { rcode, a: [...msg.subarray(off, off + 4)].join('.') };
    off += rdlen;
  }
  return { rcode, a: null };
}

const out: Record<string, unknown> = {};
try {
  const adapters = adapterDnsServers();
  out['adapters'] = adapters;
  out['selected'] = windowsSystemResolvers({ readAdapters: () => adapters, ownListeners: [{ host: '127.0.0.1', port: 53 }] });
  const fwd = await startDnsForwarder({
    config: { dns: dnsConfig({ timeoutMs: 3000 }), egress: builtinEgresses() },
    projectDomain: () => ({ egresses: ['direct'], uniform: true, egress: 'direct', rule: null }),
    readAdapters: adapterDnsServers,
    stateDir: null,
  });
  out['upstreams'] = fwd.forwarder.upstreamHealth().map((h) => h.upstream);
  const { host, port } = fwd.addresses[0]!;
  const s = createSocket('udp4');
  const reply = await new Promise<Buffer>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no answer from the forwarder in 8 s')), 8000);
    s.on('message', (m) => {
      clearTimeout(timer);
      resolve(m);
    });
    s.send(query(process.env['SY_ASK'] ?? 'win.test'), port, host);
  });
  s.close();
  out['answer'] = firstA(reply);
  await fwd.close();
} catch (e) {
  out['error'] = { message: (e as Error).message, code: (e as { code?: string }).code, stack: (e as Error).stack };
}
writeFileSync(outFile, JSON.stringify(out, null, 2));
process.exit(0);
