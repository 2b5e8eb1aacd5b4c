// A real TLS ClientHello, captured from Node's own TLS client (an independent producer).
import net from 'node:net';
import tls from 'node:tls';
import { once } from 'node:events';

/** Captures the first flight a real TLS client sends. */
export async function realClientHello(servername: string, alpnCount = 120): Promise<Buffer> {
  const srv = net.createServer();
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const got = new Promise<Buffer>((resolve) => {
    srv.on('connection', (s) => {
      const chunks: Buffer[] = [];
      s.on('data', (d) => {
        chunks.push(d);
        const all = Buffer.concat(chunks);
        if (all.length >= 5 && all.length >= 5 + all.readUInt16BE(3)) {
          resolve(all);
          s.destroy();
        }
      });
    });
  });
  const alpn = Array.from({ length: alpnCount }, (_, i) => `proto-${i}-${'x'.repeat(8)}`);
  const c = tls.connect({ host: '127.0.0.1', port: (srv.address() as net.AddressInfo).port, servername, ALPNProtocols: alpn, rejectUnauthorized: false });
  c.on('error', () => {});
  const hello = await got;
  c.destroy();
  srv.close();
  return hello;
}

