// The SOCKS5 client side a socks5 egress speaks to its proxy (RFC 1928, RFC 1929 auth), run over
// an already connected Upstream. Sequence, each step awaiting exactly the bytes it needs:
//   greeting → method selection → [username/password] → request → reply.
import { EgressError } from '../errors.ts';
import { ByteReader } from './reader.ts';
import type { Upstream } from './upstream.ts';
import { SOCKS_VERSION, AUTH_VERSION, METHOD, CMD, REP, encodeAddress, readAddress, type SocksAddress } from './socks5-wire.ts';
import type { EgressAuth } from '../policy/types.ts';

export interface Socks5ClientOptions {
  egress: string;
  auth: EgressAuth | null;
  command: typeof CMD.CONNECT | typeof CMD.UDP_ASSOCIATE;
  host: string;
  port: number;
  timeoutMs: number;
}

/** Attaches a handshake reader to the upstream; returns it and a function that detaches it. */
export function attachReader(up: Upstream, max = 8192): { reader: ByteReader; detach(): void } {
  const reader = new ByteReader(max);
  up.onData = (chunk) => {
    reader.push(chunk);
    return true;
  };
  const onEnd = () => reader.end();
  const onError = (e: Error) => reader.fail(e);
  const onClose = () => reader.end();
  up.socket.on('end', onEnd);
  up.socket.on('error', onError);
  up.socket.on('close', onClose);
  return {
    reader,
    detach() {
      up.onData = null;
      up.socket.off('end', onEnd);
      up.socket.off('error', onError);
      up.socket.off('close', onClose);
      up.pending = [...reader.drain(), ...up.pending];
    },
  };
}

function proxyError(egress: string, msg: string, reply?: number, cause?: unknown): EgressError {
  return new EgressError('SY_ERR_EGRESS_PROXY', 'proxy', egress, msg, { upstreamReply: reply, cause });
}

/** Runs the handshake; resolves with the proxy's BND address. Rejects with EgressError. */
export async function socks5Handshake(up: Upstream, o: Socks5ClientOptions): Promise<SocksAddress> {
  const { reader, detach } = attachReader(up);
  const timer = setTimeout(() => reader.fail(new EgressError('SY_ERR_EGRESS_CONNECT', 'timeout', o.egress, `SOCKS5 handshake timed out after ${o.timeoutMs} ms`)), o.timeoutMs);
  try {
    //   +----+----------+----------+
    //   |VER | NMETHODS | METHODS  |
    //   +----+----------+----------+
    //   | 1  |    1     | 1 to 255 |
    const methods = o.auth ? [METHOD.NO_AUTH, METHOD.USERPASS] : [METHOD.NO_AUTH];
    // Greeting and (optimistically) nothing else: the method decides what follows.
    up.socket.write(Buffer.from([SOCKS_VERSION, methods.length, ...methods]));
    //   +----+--------+
    //   |VER | METHOD |
    const [ver, method] = await reader.read(2);
    if (ver !== SOCKS_VERSION) throw proxyError(o.egress, `proxy answered version ${ver}, not 5`);
    if (method === METHOD.USERPASS && o.auth) {
      //   +----+------+----------+------+----------+
      //   |VER | ULEN |  UNAME   | PLEN |  PASSWD  |
      //   | 1  |  1   | 1 to 255 |  1   | 1 to 255 |
      const u = Buffer.from(o.auth.username, 'utf8');
      const p = Buffer.from(o.auth.password, 'utf8');
      if (u.length < 1 || u.length > 255 || p.length < 1 || p.length > 255) throw proxyError(o.egress, 'username/password must be 1..255 bytes');
      up.socket.write(Buffer.concat([Buffer.from([AUTH_VERSION, u.length]), u, Buffer.from([p.length]), p]));
      //   +----+--------+
      //   |VER | STATUS |   STATUS 0 = success
      const [, status] = await reader.read(2);
      if (status !== 0) throw proxyError(o.egress, 'proxy rejected the username/password');
    } else if (method === METHOD.NO_ACCEPTABLE) {
      throw proxyError(o.egress, o.auth ? 'proxy accepted none of our methods' : 'proxy requires authentication; none configured');
    } else if (method !== METHOD.NO_AUTH) {
      throw proxyError(o.egress, `proxy chose method 0x${method?.toString(16)} we did not offer`);
    }
    //   +----+-----+-------+------+----------+----------+
    //   |VER | CMD |  RSV  | ATYP | DST.ADDR | DST.PORT |
    //   | 1  |  1  | X'00' |  1   | Variable |    2     |
    up.socket.write(Buffer.concat([Buffer.from([SOCKS_VERSION, o.command, 0x00]), encodeAddress(o.host, o.port)]));
    //   +----+-----+-------+------+----------+----------+
    //   |VER | REP |  RSV  | ATYP | BND.ADDR | BND.PORT |
    const [rver, rep] = await reader.read(3);
    if (rver !== SOCKS_VERSION) throw proxyError(o.egress, `reply version ${rver}`);
    if (rep !== REP.SUCCEEDED) {
      // The proxy reached its side and the destination failed: keep its reply code for our client.
      const failure = rep === REP.CONNECTION_REFUSED ? 'refused' : rep === REP.NETWORK_UNREACHABLE ? 'net-unreachable' : rep === REP.HOST_UNREACHABLE ? 'host-unreachable' : rep === REP.TTL_EXPIRED ? 'timeout' : rep === REP.NOT_ALLOWED ? 'proxy' : 'proxy';
      throw new EgressError(failure === 'proxy' ? 'SY_ERR_EGRESS_PROXY' : 'SY_ERR_EGRESS_CONNECT', failure, o.egress, `proxy replied 0x${rep!.toString(16).padStart(2, '0')} for ${o.host}:${o.port}`, { upstreamReply: rep });
    }
    const bnd = await readAddress(reader);
    return bnd;
  } catch (err) {
    if (err instanceof EgressError) throw err;
    throw proxyError(o.egress, `SOCKS5 handshake failed: ${(err as Error).message}`, undefined, err);
  } finally {
    clearTimeout(timer);
    detach();
  }
}
