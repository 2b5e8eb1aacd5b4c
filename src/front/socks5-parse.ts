// SOCKS5 server handshake (RFC 1928, RFC 1929) parsed synchronously from whatever bytes have
// arrived, one stage at a time. The mixed inbound's fast path runs this straight from 'data'
// events: no promise per field, so a greeting is answered in the same tick it arrives and a
// greeting and request that come in one chunk are both handled in one call.
//
// Same outcomes as the awaiting reference parser (socks5.ts, socksHandshake), checked by a
// differential fuzz test: each field is checked as soon as its bytes are present, so a bad byte
// is named at the same point whether the input came in one chunk or one byte at a time; the
// refusal bytes to send for each failure are given by refusalReply().
import { timingSafeEqual } from 'node:crypto';
import { HandshakeError } from '../errors.ts';
import { SOCKS_VERSION, AUTH_VERSION, METHOD, CMD, REP, ATYP, decodeDomain, ipv6Text, type SocksAddress } from '../egress/socks5-wire.ts';
import type { EgressAuth } from '../policy/types.ts';
import type { SocksRequest } from './socks5.ts';
import { socksReply } from './socks5.ts';

/** step() result: the current stage needs more bytes than `b` holds. */
export const NEED_MORE = -1;

const STAGE_GREETING = 0;
const STAGE_AUTH = 1;
const STAGE_REQUEST = 2;
const STAGE_DONE = 3;

const REPLY_NO_AUTH = Buffer.from([SOCKS_VERSION, METHOD.NO_AUTH]);
const REPLY_USERPASS = Buffer.from([SOCKS_VERSION, METHOD.USERPASS]);
const REPLY_AUTH_OK = Buffer.from([AUTH_VERSION, 0x00]);

/**
 * What to send before closing for a HandshakeError of the given reason (as socksHandshake does);
 * undefined: close without a reply.
 */
export function refusalReply(reason: string): Buffer | undefined {
  switch (reason) {
    case 'no-method':
      return Buffer.from([SOCKS_VERSION, METHOD.NO_ACCEPTABLE]);
    case 'bad-credentials':
      return Buffer.from([AUTH_VERSION, 0x01]);
    case 'bad-atyp':
      return socksReply(REP.ADDRESS_TYPE_NOT_SUPPORTED);
    case 'bad-domain':
      return socksReply(REP.GENERAL_FAILURE);
    case 'bad-command':
      return socksReply(REP.COMMAND_NOT_SUPPORTED);
    default:
      return undefined;
  }
}

function sameSecret(a: Buffer, b: string): boolean {
  const bb = Buffer.from(b, 'utf8');
  return a.length === bb.length && timingSafeEqual(a, bb);
}

export class SocksParser {
  private stage = STAGE_GREETING;
  private readonly auth: EgressAuth | null;
  /** Set by a step that must be answered (method choice, auth status); the caller writes it. */
  reply: Buffer | null = null;
  /** Set by the step that completed the request. */
  request: SocksRequest | null = null;
  /** Bytes of a stage that has not fully arrived (push()). */
  private pending: Buffer | null = null;

  constructor(auth: EgressAuth | null) {
    this.auth = auth;
  }

  get done(): boolean {
    return this.stage === STAGE_DONE;
  }

  /**
   * Feeds newly arrived bytes: parses every stage they complete and writes each stage's answer
   * (method choice, auth status) to `out`. Returns the bytes that followed the request once it
   * is complete (possibly empty; `request` is then set), or null while more are needed — the
   * unfinished stage is kept here, and it is never longer than one stage (< 520 bytes).
   * Throws HandshakeError; refusalReply(reason) says what to send before closing.
   */
  push(chunk: Buffer, out: { write(b: Buffer): unknown }): Buffer | null {
    const b = this.pending ? Buffer.concat([this.pending, chunk]) : chunk;
    this.pending = null;
    let at = 0;
    for (;;) {
      const next = this.step(b, at);
      if (next === NEED_MORE) break;
      at = next;
      if (this.reply) out.write(this.reply);
      if (this.stage === STAGE_DONE) return b.subarray(at);
    }
    if (at < b.length) this.pending = b.subarray(at);
    return null;
  }

  /**
   * Parses the current stage from b[at..]. Returns the offset just after it (and advances to the
   * next stage), or NEED_MORE when its bytes are not all there yet (call again with the same
   * start and more bytes). Throws HandshakeError for a malformed or refused stage.
   */
  step(b: Buffer, at: number): number {
    this.reply = null;
    switch (this.stage) {
      case STAGE_GREETING:
        return this.greeting(b, at);
      case STAGE_AUTH:
        return this.userPass(b, at);
      case STAGE_REQUEST:
        return this.connectRequest(b, at);
      default:
        throw new HandshakeError('bad-state', 'handshake already complete');
    }
  }

  //   +----+----------+----------+
  //   |VER | NMETHODS | METHODS  |
  //   | 1  |    1     | 1 to 255 |
  private greeting(b: Buffer, at: number): number {
    const avail = b.length - at;
    if (avail < 1) return NEED_MORE;
    const ver = b[at]!;
    if (ver !== SOCKS_VERSION) throw new HandshakeError('bad-version', `SOCKS version ${ver}`);
    if (avail < 2) return NEED_MORE;
    const n = b[at + 1]!;
    if (avail < 2 + n) return NEED_MORE;
    const wanted = this.auth ? METHOD.USERPASS : METHOD.NO_AUTH;
    let offered = false;
    for (let i = at + 2; i < at + 2 + n; i++) if (b[i] === wanted) offered = true;
    if (!offered) throw new HandshakeError('no-method', this.auth ? 'client offered no username/password method' : 'client offered no no-auth method');
    this.reply = this.auth ? REPLY_USERPASS : REPLY_NO_AUTH;
    this.stage = this.auth ? STAGE_AUTH : STAGE_REQUEST;
    return at + 2 + n;
  }

  //   +----+------+----------+------+----------+
  //   |VER | ULEN |  UNAME   | PLEN |  PASSWD  |
  //   | 1  |  1   | 1 to 255 |  1   | 1 to 255 |
  private userPass(b: Buffer, at: number): number {
    const avail = b.length - at;
    if (avail < 1) return NEED_MORE;
    const av = b[at]!;
    if (av !== AUTH_VERSION) throw new HandshakeError('bad-auth-version', `auth sub-negotiation version ${av}`);
    if (avail < 2) return NEED_MORE;
    const ulen = b[at + 1]!;
    if (avail < 3 + ulen) return NEED_MORE;
    const plen = b[at + 2 + ulen]!;
    if (avail < 3 + ulen + plen) return NEED_MORE;
    const auth = this.auth!;
    const user = b.subarray(at + 2, at + 2 + ulen);
    const pass = b.subarray(at + 3 + ulen, at + 3 + ulen + plen);
    if (!(sameSecret(user, auth.username) && sameSecret(pass, auth.password))) throw new HandshakeError('bad-credentials', 'wrong username or password');
    this.reply = REPLY_AUTH_OK;
    this.stage = STAGE_REQUEST;
    return at + 3 + ulen + plen;
  }

  //   +----+-----+-------+------+----------+----------+
  //   |VER | CMD |  RSV  | ATYP | DST.ADDR | DST.PORT |
  //   | 1  |  1  | X'00' |  1   | Variable |    2     |
  private connectRequest(b: Buffer, at: number): number {
    const avail = b.length - at;
    if (avail < 3) return NEED_MORE;
    const rv = b[at]!;
    if (rv !== SOCKS_VERSION) throw new HandshakeError('bad-version', `request version ${rv}`);
    if (avail < 4) return NEED_MORE;
    const atyp = b[at + 3]!;
    const p = at + 4;
    let host: string;
    let family: 0 | 4 | 6;
    let end: number;
    if (atyp === ATYP.IPV4) {
      if (avail < 4 + 4 + 2) return NEED_MORE;
      host = `${b[p]}.${b[p + 1]}.${b[p + 2]}.${b[p + 3]}`;
      family = 4;
      end = p + 4;
    } else if (atyp === ATYP.IPV6) {
      if (avail < 4 + 16 + 2) return NEED_MORE;
      host = ipv6Text(Buffer.from(b.subarray(p, p + 16)));
      family = 6;
      end = p + 16;
    } else if (atyp === ATYP.DOMAIN) {
      if (avail < 5) return NEED_MORE;
      const len = b[p]!;
      if (len === 0) throw new HandshakeError('bad-domain', 'empty domain name');
      if (avail < 5 + len) return NEED_MORE;
      // Checked before the port arrives, as the reference parser does.
      host = decodeDomain(b.subarray(p + 1, p + 1 + len));
      if (avail < 5 + len + 2) return NEED_MORE;
      family = 0;
      end = p + 1 + len;
    } else throw new HandshakeError('bad-atyp', `unknown address type 0x${atyp.toString(16)}`);
    const address: SocksAddress = { host, port: (b[end]! << 8) | b[end + 1]!, family };
    const cmd = b[at + 1]!;
    if (cmd !== CMD.CONNECT && cmd !== CMD.UDP_ASSOCIATE) throw new HandshakeError('bad-command', `command 0x${cmd.toString(16)} not supported`);
    this.request = { command: cmd, address };
    this.stage = STAGE_DONE;
    return end + 2;
  }
}
