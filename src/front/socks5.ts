// SOCKS5 server side (RFC 1928, RFC 1929), as an explicit sequence of states:
//
//   GREETING ──(method chosen)──▶ [AUTH] ──(status 0)──▶ REQUEST ──▶ CONNECTING ──▶ RELAY
//        │                           │                      │             │
//        └─ no acceptable method     └─ bad credentials     └─ BIND /     └─ refused/failed:
//           (X'FF', close)              (status 1, close)      bad ATYP      reply byte, close
//                                                              (07/08)
// The success reply (REP 0) is sent only after the egress connection exists; a refused flow gets
// the real reply code, never success followed by a reset.
import { timingSafeEqual } from 'node:crypto';
import net from 'node:net';
import { HandshakeError } from '../errors.ts';
import type { ByteReader } from '../egress/reader.ts';
import { SOCKS_VERSION, AUTH_VERSION, METHOD, CMD, REP, ATYP, encodeAddress, readAddress, type SocksAddress } from '../egress/socks5-wire.ts';
import type { EgressAuth } from '../policy/types.ts';

export const SOCKS_STATE = { GREETING: 'greeting', AUTH: 'auth', REQUEST: 'request', CONNECTING: 'connecting', RELAY: 'relay', UDP: 'udp', CLOSED: 'closed' } as const;
export type SocksState = (typeof SOCKS_STATE)[keyof typeof SOCKS_STATE];

export interface SocksRequest {
  command: typeof CMD.CONNECT | typeof CMD.UDP_ASSOCIATE;
  address: SocksAddress;
}

function sameSecret(a: Buffer, b: string): boolean {
  const bb = Buffer.from(b, 'utf8');
  return a.length === bb.length && timingSafeEqual(a, bb);
}

/** Writes dotted-quad `s` into out[4..8]; false when `s` is not exactly four decimal octets. */
function putIpv4(out: Buffer, s: string): boolean {
  let at = 4;
  let v = 0;
  let digits = 0;
  for (let i = 0; i <= s.length; i++) {
    const c = i < s.length ? s.charCodeAt(i) : 0x2e;
    if (c === 0x2e) {
      if (digits === 0 || at > 7) return false;
      out[at++] = v;
      v = 0;
      digits = 0;
    } else if (c >= 0x30 && c <= 0x39 && digits < 3) {
      if (digits > 0 && v === 0) return false; // no leading zeros, as net.isIP
      v = v * 10 + (c - 0x30);
      if (v > 255) return false;
      digits++;
    } else return false;
  }
  return at === 8;
}

/** Builds a reply: VER REP RSV ATYP BND.ADDR BND.PORT. */
export function socksReply(rep: number, bndHost = '0.0.0.0', bndPort = 0): Buffer {
  // IPv4 (every reply of an IPv4 flow, and every refusal): ten bytes written in place; this runs
  // once per connection, and the general encoder's concatenations (and even net.isIP plus
  // split) showed in connection-rate profiles.
  const out = Buffer.allocUnsafe(10);
  if (putIpv4(out, bndHost)) {
    out[0] = SOCKS_VERSION;
    out[1] = rep;
    out[2] = 0x00;
    out[3] = ATYP.IPV4;
    out[8] = (bndPort >>> 8) & 0xff;
    out[9] = bndPort & 0xff;
    return out;
  }
  return Buffer.concat([Buffer.from([SOCKS_VERSION, rep, 0x00]), encodeAddress(bndHost, bndPort)]);
}

/**
 * Runs GREETING, AUTH and REQUEST. Resolves with the request; on refusal it has already written
 * the refusal to the socket and throws HandshakeError (the caller closes).
 */
export async function socksHandshake(r: ByteReader, socket: net.Socket, auth: EgressAuth | null, onState?: (s: SocksState) => void): Promise<SocksRequest> {
  onState?.(SOCKS_STATE.GREETING);
  //   +----+----------+----------+
  //   |VER | NMETHODS | METHODS  |
  //   +----+----------+----------+
  //   | 1  |    1     | 1 to 255 |
  const ver = await r.u8();
  if (ver !== SOCKS_VERSION) throw new HandshakeError('bad-version', `SOCKS version ${ver}`);
  const n = await r.u8();
  const methods = n > 0 ? await r.read(n) : Buffer.alloc(0);
  const wanted = auth ? METHOD.USERPASS : METHOD.NO_AUTH;
  //   +----+--------+
  //   |VER | METHOD |
  if (!methods.includes(wanted)) {
    socket.end(Buffer.from([SOCKS_VERSION, METHOD.NO_ACCEPTABLE]));
    throw new HandshakeError('no-method', auth ? 'client offered no username/password method' : 'client offered no no-auth method');
  }
  socket.write(Buffer.from([SOCKS_VERSION, wanted]));
  if (auth) {
    onState?.(SOCKS_STATE.AUTH);
    //   +----+------+----------+------+----------+
    //   |VER | ULEN |  UNAME   | PLEN |  PASSWD  |
    //   | 1  |  1   | 1 to 255 |  1   | 1 to 255 |
    const av = await r.u8();
    if (av !== AUTH_VERSION) throw new HandshakeError('bad-auth-version', `auth sub-negotiation version ${av}`);
    const user = await r.read(await r.u8());
    const pass = await r.read(await r.u8());
    const ok = sameSecret(user, auth.username) && sameSecret(pass, auth.password);
    //   +----+--------+
    //   |VER | STATUS |
    if (!ok) {
      socket.end(Buffer.from([AUTH_VERSION, 0x01]));
      throw new HandshakeError('bad-credentials', 'wrong username or password');
    }
    socket.write(Buffer.from([AUTH_VERSION, 0x00]));
  }
  onState?.(SOCKS_STATE.REQUEST);
  //   +----+-----+-------+------+----------+----------+
  //   |VER | CMD |  RSV  | ATYP | DST.ADDR | DST.PORT |
  //   | 1  |  1  | X'00' |  1   | Variable |    2     |
  const [rv, cmd] = await r.read(3);
  if (rv !== SOCKS_VERSION) throw new HandshakeError('bad-version', `request version ${rv}`);
  let address: SocksAddress;
  try {
    address = await readAddress(r);
  } catch (err) {
    if (err instanceof HandshakeError && err.reason === 'bad-atyp') socket.end(socksReply(REP.ADDRESS_TYPE_NOT_SUPPORTED));
    else if (err instanceof HandshakeError && err.reason === 'bad-domain') socket.end(socksReply(REP.GENERAL_FAILURE));
    throw err;
  }
  if (cmd === CMD.CONNECT || cmd === CMD.UDP_ASSOCIATE) return { command: cmd, address };
  socket.end(socksReply(REP.COMMAND_NOT_SUPPORTED));
  throw new HandshakeError('bad-command', `command 0x${cmd?.toString(16)} not supported`);
}
