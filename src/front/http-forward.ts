// Absolute-form HTTP proxying with keep-alive. One client connection may carry many requests:
// each is decided by the policy on its own (its host may differ from the last), requests to the
// same origin reuse the egress connection while it stays reusable, and a request to another
// origin waits until every response on the current connection has ended, then connects anew.
// Request bodies are framed by Content-Length; a chunked request body ends the keep-alive (the
// rest of the client stream is relayed as is, and the upstream is told to close after it).
// Back-pressure both ways: the client is paused while its unread bytes exceed PAUSE_AT, and the
// upstream is paused while the client's write queue is full.
import type net from 'node:net';
import { once } from 'node:events';
import { ByteReader } from '../egress/reader.ts';
import { recycleChunk, type Upstream } from '../egress/upstream.ts';
import type { CancelSignal } from '../egress/cancel.ts';
import { SwitchyardError } from '../errors.ts';
import type { EgressAuth } from '../policy/types.ts';
import type { Endpoint, ProcessInfo } from '../flow/types.ts';
import { decideAndConnect, type FrontDeps, type FlowRequest } from './flow.ts';
import { readHttpProxyRequest, HttpRequestError, type HttpProxyRequest } from './http-proxy.ts';
import { httpError, httpStatusFor } from './replies.ts';
import { ResponseFramer } from './http-response.ts';
import type { SessionHandle } from './sessions.ts';
import net2 from 'node:net';

const READER_MAX = 1 << 20;
const PAUSE_AT = 256 * 1024;
const RESUME_AT = 64 * 1024;
const BODY_PIECE = 64 * 1024;

interface Origin {
  key: string;
  up: Upstream;
  framer: ResponseFramer;
  /** The upstream has ended or closed: not usable for another request. */
  gone: boolean;
  /** Tell the client it is the last response (Connection: close was sent upstream). */
  last: boolean;
}

export interface HttpForwardOptions {
  client: Endpoint;
  auth: EgressAuth | null;
  process?: () => Promise<ProcessInfo | undefined>;
  signal: CancelSignal;
}

export function startHttpForward(deps: FrontDeps, session: SessionHandle, socket: net.Socket, first: HttpProxyRequest, leftover: Buffer[], o: HttpForwardOptions): void {
  const reader = new ByteReader(READER_MAX);
  for (const b of leftover) reader.push(b);
  const counters = { bytesUp: 0, bytesDown: 0 };
  session.counters = counters;
  let cur: Origin | undefined;
  let finished = false;
  let upPaused = false;

  const finish = () => {
    if (finished) return;
    finished = true;
    socket.destroy();
    cur?.up.destroy();
    deps.sessions.release(session.id);
  };
  session.close = finish;
  socket.on('data', (c: Buffer) => {
    reader.push(c);
    if (reader.buffered > PAUSE_AT) socket.pause();
  });
  socket.on('end', () => reader.end());
  socket.on('error', (e) => {
    reader.fail(e);
    finish();
  });
  socket.on('close', finish);
  socket.on('drain', () => {
    if (upPaused && cur) {
      upPaused = false;
      cur.up.socket.resume();
    }
  });
  if (deps.inbound.idleTimeoutMs > 0) socket.setTimeout(deps.inbound.idleTimeoutMs, finish);
  const maybeResume = () => {
    if (socket.isPaused() && reader.buffered < RESUME_AT && !finished) socket.resume();
  };

  /** Resolves once no response is outstanding on `org` (or it is gone). */
  const idle = (org: Origin): Promise<void> =>
    org.framer.pending === 0 || org.gone
      ? Promise.resolve()
      : new Promise((resolve) => {
          org.framer.onIdle = () => resolve();
          org.up.socket.once('close', () => resolve());
        });

  const attach = (org: Origin) => {
    const down = (chunk: Buffer): boolean => {
      if (finished) return false;
      if (!org.framer.feed(chunk)) {
        if (process.env.SY_DEBUG) console.error('http forward: upstream protocol error:', org.framer.error);
        finish();
        return false;
      }
      counters.bytesDown += chunk.length;
      if (!socket.write(chunk, (err) => err || recycleChunk(chunk))) {
        upPaused = true;
        return false;
      }
      return true;
    };
    for (const b of org.up.takePending()) down(b);
    org.up.onData = down;
    const onGone = () => {
      if (org.gone) return;
      org.gone = true;
      if (cur !== org) return;
      // Outstanding responses cut short, or a close-delimited / last response: the client is done.
      if (org.framer.pending > 0 || org.last) {
        if (org.framer.pending > 0 && !org.framer.untilClose) finish();
        else socket.end();
      }
    };
    org.up.socket.on('end', onGone);
    org.up.socket.on('close', onGone);
    org.up.socket.on('error', onGone);
  };

  const flowRequest = (r: HttpProxyRequest): FlowRequest => ({
    inbound: 'http',
    network: 'tcp',
    client: o.client,
    port: r.port,
    domainSource: 'http-proxy',
    domainTrusted: true,
    ...(net2.isIP(r.host) ? { ip: r.host } : { domain: r.host }),
    ...(o.process ? { process: o.process } : {}),
  });

  const writeUp = async (org: Origin, b: Buffer) => {
    counters.bytesUp += b.length;
    if (!org.up.socket.write(b)) await Promise.race([once(org.up.socket, 'drain'), once(org.up.socket, 'close')]);
  };

  /** Answers the client with an error (after earlier responses) and ends the connection. */
  const refuse = (status: number, text: string, extra = '') => {
    if (!socket.destroyed && !socket.writableEnded) socket.end(httpError(status, text, extra));
    cur?.up.destroy();
  };

  const run = async () => {
    let req = first;
    for (;;) {
      const key = `${req.host}|${req.port}`;
      if (!cur || cur.key !== key || !cur.framer.reusable || cur.gone) {
        if (cur) {
          await idle(cur);
          cur.up.destroy();
          cur = undefined;
        }
        if (finished) return;
        let d;
        try {
          d = await decideAndConnect(deps, flowRequest(req), o.signal);
        } catch (err) {
          const code = err instanceof SwitchyardError ? err.code : 'SY_ERR_INTERNAL';
          refuse(httpStatusFor(err), err instanceof SwitchyardError ? `${err.code}: ${err.message}` : String(err), `X-Switchyard-Error: ${code}\r\n`);
          return;
        }
        if (finished) {
          d.connection.upstream.destroy();
          return;
        }
        cur = { key, up: d.connection.upstream, framer: new ResponseFramer(), gone: false, last: false };
        d.record.id = session.id;
        session.record = d.record;
        if (d.lookupProcess) session.lookupProcess = d.lookupProcess;
        d.connection.upstream.socket.setNoDelay(true);
        attach(cur);
        deps.onFlow?.({ record: d.record, outcome: 'connected' });
      }
      const org = cur;
      const last = req.clientClose === true || req.chunked === true;
      org.last = last;
      org.framer.expect(req.method ?? 'GET');
      await writeUp(org, last ? req.forwardHead! : req.keepAliveHead!);
      if (req.chunked) {
        // The body's end is not tracked: the rest of the client stream goes up as is.
        for (const b of reader.drain()) await writeUp(org, b);
        socket.removeAllListeners('data');
        socket.on('data', (c: Buffer) => {
          counters.bytesUp += c.length;
          if (!org.up.socket.write(c)) socket.pause();
        });
        org.up.socket.on('drain', () => socket.resume());
        socket.on('end', () => org.up.socket.end());
        socket.resume();
        return;
      }
      let left = req.contentLength ?? 0;
      while (left > 0) {
        const piece = await reader.readUpTo(Math.min(left, BODY_PIECE));
        left -= piece.length;
        maybeResume();
        await writeUp(org, piece);
      }
      if (last) return; // the upstream closes after this response; onGone ends the client
      maybeResume();
      try {
        req = await readHttpProxyRequest(reader, o.auth);
      } catch (err) {
        // The client closed (the usual end of a kept-alive connection) or sent garbage.
        await idle(org);
        if (err instanceof HttpRequestError) refuse(err.status, err.message, err.extraHeaders);
        else if (!socket.destroyed) socket.end();
        org.up.destroy();
        return;
      }
      maybeResume();
      if (req.kind === 'connect') {
        await idle(org);
        refuse(400, 'CONNECT after forwarded requests needs a new connection');
        return;
      }
    }
  };
  socket.resume();
  run().catch((err) => {
    if (process.env.SY_DEBUG) console.error('http forward failed:', err);
    finish();
  });
}
