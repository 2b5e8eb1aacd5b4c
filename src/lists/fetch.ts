// Remote lists over HTTPS: certificate checks always on (a test may replace the trusted CAs, never
// turn checking off), the size limit enforced while the body streams in, conditional requests
// (If-None-Match / If-Modified-Since → 304 = unchanged), an optional pinned sha256, redirects only
// to https, and a pluggable `connect` so the download can go through an egress later.
//
// The result is data, not an activation: the caller (the revision store) decides what a change
// becomes. Nothing here writes to disk.
import { createHash } from 'node:crypto';
import { request as httpsRequest, type RequestOptions } from 'node:https';
import { isIP } from 'node:net';
import { connect as tlsConnect, type SecureContextOptions } from 'node:tls';
import type { Duplex } from 'node:stream';
import type { IncomingMessage } from 'node:http';
import { ListError } from '../errors.ts';

/** Opens a raw byte stream to host:port (e.g. through a SOCKS egress); TLS is layered on top here. */
export type ConnectFn = (host: string, port: number) => Promise<Duplex>;

export interface FetchOptions {
  url: string;
  /** List name, for messages. */
  list?: string;
  /** Largest body accepted, in bytes. Default 64 MiB. */
  maxBytes?: number;
  /** Pinned sha256 (hex) the body must have. */
  sha256?: string;
  /** What the last successful fetch returned: enables conditional requests. */
  previous?: { etag?: string | null; lastModified?: string | null; sha256?: string | null };
  /** Trusted CA certificates (PEM). Default: Node's bundled roots. Checking is never disabled. */
  ca?: SecureContextOptions['ca'];
  connect?: ConnectFn;
  /** Whole-transfer deadline. Default 60 s. */
  timeoutMs?: number;
  maxRedirects?: number;
  userAgent?: string;
}

export interface FetchResult {
  /** `unchanged`: a 304, or a 200 whose body hashes like `previous.sha256`. */
  status: 'changed' | 'unchanged';
  /** The body on a 200; null on a 304. */
  body: Buffer | null;
  etag: string | null;
  lastModified: string | null;
  /** sha256 of the body (hex); on a 304 the previous one. */
  sha256: string | null;
  /** Where the body finally came from (after redirects). */
  url: string;
}

export const DEFAULT_FETCH_MAX_BYTES = 64 * 1024 * 1024;

const TLS_CODES = /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER|ALTNAME|ERR_TLS|ERR_SSL|HOSTNAME_MISMATCH/;

export async function fetchList(opts: FetchOptions): Promise<FetchResult> {
  const maxBytes = opts.maxBytes ?? DEFAULT_FETCH_MAX_BYTES;
  const maxRedirects = opts.maxRedirects ?? 5;
  const where = { ...(opts.list === undefined ? {} : { list: opts.list }), file: opts.url };
  if (opts.sha256 !== undefined && !/^[0-9a-fA-F]{64}$/.test(opts.sha256)) {
    throw new ListError('SY_ERR_LIST_DEF', 'sha256 must be 64 hex digits', where);
  }
  let url = parseHttps(opts.url, where);
  const deadline = Date.now() + (opts.timeoutMs ?? 60_000);
  for (let hop = 0; ; hop++) {
    const res = await once(url, opts, maxBytes, deadline, where);
    if (res.redirect !== undefined) {
      if (hop >= maxRedirects) throw new ListError('SY_ERR_LIST_FETCH', `more than ${maxRedirects} redirects`, where);
      url = parseHttps(new URL(res.redirect, url).href, where, 'redirect to');
      continue;
    }
    if (res.status === 304) {
      return {
        status: 'unchanged',
        body: null,
        etag: res.etag ?? opts.previous?.etag ?? null,
        lastModified: res.lastModified ?? opts.previous?.lastModified ?? null,
        sha256: opts.previous?.sha256 ?? null,
        url: url.href,
      };
    }
    const body = res.body!;
    const sha256 = createHash('sha256').update(body).digest('hex');
    if (opts.sha256 !== undefined && sha256 !== opts.sha256.toLowerCase()) {
      throw new ListError('SY_ERR_LIST_FETCH_HASH', `sha256 is ${sha256}, the pinned value is ${opts.sha256.toLowerCase()}`, where);
    }
    return {
      status: opts.previous?.sha256 === sha256 ? 'unchanged' : 'changed',
      body,
      etag: res.etag ?? null,
      lastModified: res.lastModified ?? null,
      sha256,
      url: url.href,
    };
  }
}

function parseHttps(text: string, where: { list?: string; file: string }, what = 'url'): URL {
  let u: URL;
  try {
    u = new URL(text);
  } catch {
    throw new ListError('SY_ERR_LIST_FETCH', `${what} '${text}' is not a URL`, where);
  }
  if (u.protocol !== 'https:') throw new ListError('SY_ERR_LIST_FETCH', `${what} '${text}' is not https://; lists are fetched over HTTPS only`, where);
  if (u.username || u.password) throw new ListError('SY_ERR_LIST_FETCH', `${what} holds credentials; they are not sent`, where);
  return u;
}

interface Once {
  status: number;
  redirect?: string;
  body?: Buffer;
  etag?: string;
  lastModified?: string;
}

function once(url: URL, opts: FetchOptions, maxBytes: number, deadline: number, where: { list?: string; file: string }): Promise<Once> {
  return new Promise<Once>((resolve, reject) => {
    const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
    const port = url.port === '' ? 443 : Number(url.port);
    const headers: Record<string, string> = {
      'user-agent': opts.userAgent ?? 'switchyard-lists',
      accept: '*/*',
      'accept-encoding': 'identity',
    };
    if (opts.previous?.etag) headers['if-none-match'] = opts.previous.etag;
    if (opts.previous?.lastModified) headers['if-modified-since'] = opts.previous.lastModified;
    let settled = false;
    const done = (err: Error | null, v?: Once): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (err) {
        req.destroy();
        reject(err);
      } else resolve(v!);
    };
    const fail = (err: unknown): void => {
      if (err instanceof ListError) return done(err);
      const e = err as NodeJS.ErrnoException;
      const code = String(e?.code ?? '');
      if (TLS_CODES.test(code) || /certificate|self[- ]signed/i.test(String(e?.message))) {
        done(new ListError('SY_ERR_LIST_FETCH_TLS', `certificate refused for ${host}: ${e.message}${code ? ` (${code})` : ''}`, where, err));
      } else {
        done(new ListError('SY_ERR_LIST_FETCH', `${url.origin}: ${e?.message ?? String(err)}${code ? ` (${code})` : ''}`, where, err));
      }
    };
    const reqOpts: RequestOptions = {
      method: 'GET',
      host,
      port,
      path: url.pathname + url.search,
      headers,
      // No pooling; with a connect function there must be no agent at all, or Node ignores createConnection.
      ...(opts.connect ? {} : { agent: false }),
      rejectUnauthorized: true,
      ...(opts.ca === undefined ? {} : { ca: opts.ca }),
      ...(isIP(host) ? {} : { servername: host }),
    };
    if (opts.connect) {
      const connect = opts.connect;
      // Node's client calls createConnection(options, callback) and accepts the socket through the callback.
      reqOpts.createConnection = (_o, cb) => {
        connect(host, port).then(
          (raw) => {
            const s = tlsConnect({
              socket: raw,
              host,
              ...(isIP(host) ? {} : { servername: host }),
              rejectUnauthorized: true,
              ...(opts.ca === undefined ? {} : { ca: opts.ca }),
              ALPNProtocols: ['http/1.1'],
            });
            cb(null, s);
          },
          (err: unknown) => cb(err instanceof Error ? err : new Error(String(err)), undefined as unknown as Duplex),
        );
        return undefined;
      };
    }
    const req = httpsRequest(reqOpts, (res: IncomingMessage) => {
      const status = res.statusCode ?? 0;
      const header = (n: string): string | undefined => {
        const v = res.headers[n];
        return Array.isArray(v) ? v[0] : v;
      };
      if ([301, 302, 303, 307, 308].includes(status)) {
        const loc = header('location');
        res.resume();
        if (!loc) return fail(new ListError('SY_ERR_LIST_FETCH', `HTTP ${status} without a Location`, where));
        return done(null, { status, redirect: loc });
      }
      if (status === 304) {
        res.resume();
        return done(null, { status, ...opt('etag', header('etag')), ...opt('lastModified', header('last-modified')) });
      }
      if (status !== 200) {
        res.resume();
        return fail(new ListError('SY_ERR_LIST_FETCH', `HTTP ${status} from ${url.origin}${url.pathname}`, where));
      }
      const enc = header('content-encoding');
      if (enc && enc !== 'identity') {
        res.resume();
        return fail(new ListError('SY_ERR_LIST_FETCH', `content-encoding '${enc}' is not supported (identity was asked for)`, where));
      }
      const declared = header('content-length');
      if (declared !== undefined && Number(declared) > maxBytes) {
        return fail(new ListError('SY_ERR_LIST_FETCH_TOO_LARGE', `Content-Length ${declared} is over the ${maxBytes}-byte limit`, where));
      }
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > maxBytes) {
          // Stop the transfer now, not after the whole body has arrived (done() destroys the request).
          fail(new ListError('SY_ERR_LIST_FETCH_TOO_LARGE', `body passed the ${maxBytes}-byte limit`, where));
          res.destroy();
          return;
        }
        chunks.push(chunk);
      });
      res.on('end', () => {
        if (!res.complete) return fail(new ListError('SY_ERR_LIST_FETCH', 'connection closed before the body was complete', where));
        done(null, { status, body: Buffer.concat(chunks, size), ...opt('etag', header('etag')), ...opt('lastModified', header('last-modified')) });
      });
      res.on('error', fail);
      res.on('aborted', () => fail(new ListError('SY_ERR_LIST_FETCH', 'connection closed before the body was complete', where)));
    });
    const timer = setTimeout(() => fail(new ListError('SY_ERR_LIST_FETCH', `no complete answer within the deadline`, where)), Math.max(0, deadline - Date.now()));
    req.on('error', fail);
    req.end();
  });
}

function opt<K extends string>(k: K, v: string | undefined): { [P in K]?: string } {
  return (v === undefined ? {} : { [k]: v }) as { [P in K]?: string };
}
