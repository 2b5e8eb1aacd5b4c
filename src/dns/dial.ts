// How the forwarder opens TCP connections to resolvers: directly, or through an egress (SOCKS5
// CONNECT, HTTP CONNECT). The first hop always comes from `connectTcp`, which the daemon injects
// (exempt, marked sockets); by default it is a plain net.connect.
import { connect as netConnect, isIP } from 'node:net';
import type { Socket } from 'node:net';
import { SocksClient } from 'socks';
import type { EgressConfig } from '../policy/types.ts';

/** Opens a connected TCP socket to an IP address. */
export type ConnectTcp = (host: string, port: number, timeoutMs: number) => Promise<Socket>;

/** Opens a connected stream to host:port; host may be a name when the far side resolves it. */
export type Dialer = (host: string, port: number, timeoutMs: number) => Promise<Socket>;

export const defaultConnectTcp: ConnectTcp = (host, port, timeoutMs) =>
  new Promise((resolve, reject) => {
    const s = netConnect({ host, port, noDelay: true });
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`connect to ${host}:${port} timed out`));
    }, timeoutMs);
    s.once('connect', () => {
      clearTimeout(timer);
      s.removeListener('error', onError);
      resolve(s);
    });
    const onError = (err: Error): void => {
      clearTimeout(timer);
      reject(err);
    };
    s.once('error', onError);
  });

export type ResolveHost = (name: string) => Promise<string[]>;

/** A dialer that connects directly (names resolved by bootstrap, never the OS resolver). */
export function directDialer(connectTcp: ConnectTcp, resolveHost: ResolveHost): Dialer {
  return async (host, port, timeoutMs) => {
    const ip = isIP(host) ? host : (await resolveHost(host))[0];
    if (ip === undefined) throw new Error(`no address for ${host}`);
    return connectTcp(ip, port, timeoutMs);
  };
}

/**
 * A dialer through a proxy egress. The proxy's own host name is resolved by bootstrap; the
 * destination name (if any) is sent to the proxy, which resolves it on its side.
 */
export function egressDialer(egress: EgressConfig, connectTcp: ConnectTcp, resolveHost: ResolveHost): Dialer | null {
  if (egress.type !== 'socks5' && egress.type !== 'http') return null;
  const ep = egress.endpoint;
  const auth = egress.auth;
  const toProxy = directDialer(connectTcp, resolveHost);
  if (egress.type === 'socks5') {
    return async (host, port, timeoutMs) => {
      const first = await toProxy(ep.host, ep.port, timeoutMs);
      try {
        const { socket } = await SocksClient.createConnection({
          command: 'connect',
          destination: { host, port },
          proxy: {
            host: ep.host,
            port: ep.port,
            type: 5,
            ...(auth ? { userId: auth.username, password: auth.password } : {}),
          },
          timeout: timeoutMs,
          existing_socket: first,
        });
        return socket;
      } catch (err) {
        first.destroy();
        throw err;
      }
    };
  }
  return async (host, port, timeoutMs) => {
    const s = await toProxy(ep.host, ep.port, timeoutMs);
    try {
      await httpConnect(s, host, port, auth, timeoutMs);
      return s;
    } catch (err) {
      s.destroy();
      throw err;
    }
  };
}

/** RFC 9110 §9.3.6 CONNECT: send the request, read the status line and headers (bounded). */
function httpConnect(s: Socket, host: string, port: number, auth: { username: string; password: string } | null, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const target = isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
    let head = `CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n`;
    if (auth) head += `Proxy-Authorization: Basic ${Buffer.from(`${auth.username}:${auth.password}`).toString('base64')}\r\n`;
    s.write(head + '\r\n');
    let got = Buffer.alloc(0);
    const timer = setTimeout(() => done(new Error('HTTP CONNECT timed out')), timeoutMs);
    const onData = (d: Buffer): void => {
      got = Buffer.concat([got, d]);
      const end = got.indexOf('\r\n\r\n');
      if (end < 0) {
        if (got.length > 8192) done(new Error('HTTP CONNECT reply too long'));
        return;
      }
      const status = /^HTTP\/1\.[01] (\d{3})/.exec(got.subarray(0, end).toString('latin1'));
      if (!status || status[1] !== '200') return done(new Error(`HTTP CONNECT refused: ${got.subarray(0, Math.min(end, 80)).toString('latin1')}`));
      const rest = got.subarray(end + 4);
      done(null);
      if (rest.length) s.unshift(rest);
    };
    const onErr = (e: Error): void => done(e);
    const onClose = (): void => done(new Error('proxy closed during CONNECT'));
    function done(err: Error | null): void {
      clearTimeout(timer);
      s.removeListener('data', onData);
      s.removeListener('error', onErr);
      s.removeListener('close', onClose);
      if (err) reject(err);
      else resolve();
    }
    s.on('data', onData);
    s.once('error', onErr);
    s.once('close', onClose);
  });
}
