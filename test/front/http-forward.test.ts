// Absolute-form HTTP proxying with keep-alive (src/front/http-forward.ts), with curl as client:
// two requests to one origin in one curl run reuse the egress connection (the origin server
// counts its connections); a request to another host on the same client connection is decided
// again, and its path is proven by the address it arrives from (microsocks dials from 127.0.0.2).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { once } from 'node:events';
import * as h from './helpers.ts';

const run = promisify(execFile);
const need = ['curl', 'microsocks'].filter((c) => !h.has(c));
const skip = need.length ? `needs ${need.join(', ')}` : false;

let web: http.Server;
let webPort: number;
let connections = 0;
let ms: h.Peer;

before(async () => {
  web = http.createServer({ keepAlive: true }, (req, res) => {
    const s = req.socket as typeof req.socket & { n?: number };
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => res.end(`conn=${s.n} host=${req.headers.host} from=${s.remoteAddress} path=${req.url} body=${body}\n`));
  });
  web.on('connection', (s: typeof web extends never ? never : import('node:net').Socket & { n?: number }) => (s.n = ++connections));
  web.listen(0, '127.0.0.1');
  await once(web, 'listening');
  webPort = (web.address() as import('node:net').AddressInfo).port;
  if (!skip) ms = await h.startMicrosocks('127.0.0.2');
});

after(async () => {
  web.closeAllConnections();
  web.close();
  if (!skip) await ms.stop();
});

const names = { 'a.test': ['127.0.0.1'], 'b.test': ['127.0.0.1'] };

async function curl(args: string[]): Promise<string> {
  const { stdout } = await run('curl', ['-sS', '--max-time', '10', ...args]);
  return stdout;
}

test('two requests to one origin on one client connection reuse the egress connection', { skip }, async () => {
  const f = await h.startFront({ pick: () => 'direct', resolve: names });
  try {
    const before = connections;
    const out = await curl(['-x', `http://127.0.0.1:${f.port}`, '-w', 'connects=%{num_connects}\n', `http://a.test:${webPort}/1`, '--next', '-x', `http://127.0.0.1:${f.port}`, '-w', 'connects=%{num_connects}\n', '-d', 'posted', `http://a.test:${webPort}/2`]);
    const lines = out.trim().split('\n');
    assert.equal(lines.length, 4, out);
    assert.match(lines[0]!, new RegExp(`^conn=${before + 1} host=a.test:${webPort} from=127.0.0.1 path=/1 body=$`));
    assert.equal(lines[1], 'connects=1');
    assert.match(lines[2]!, new RegExp(`^conn=${before + 1} host=a.test:${webPort} from=127.0.0.1 path=/2 body=posted$`), 'same origin connection, body framed');
    assert.equal(lines[3], 'connects=0', 'curl reused its proxy connection');
    assert.equal(connections, before + 1, 'the origin saw one connection');
    assert.equal(f.flows.filter((e) => e.outcome === 'connected').length, 1, 'decided once');
  } finally {
    await f.close();
  }
});

test('a request to another host on the same client connection is decided again', { skip }, async () => {
  const asked: string[] = [];
  const f = await h.startFront({
    egresses: [h.egressSocks('ms', ms.port, { sendDomain: false })],
    pick: (q) => (asked.push(q.domain ?? ''), q.domain === 'b.test' ? 'ms' : 'direct'),
    resolve: names,
  });
  try {
    const before = connections;
    const out = await curl(['-x', `http://127.0.0.1:${f.port}`, '-w', 'connects=%{num_connects}\n', `http://a.test:${webPort}/1`, `http://b.test:${webPort}/2`, `http://a.test:${webPort}/3`]);
    const lines = out.trim().split('\n');
    assert.equal(lines.length, 6, out);
    assert.match(lines[0]!, /host=a\.test:\d+ from=127\.0\.0\.1 path=\/1/, 'a.test direct');
    assert.match(lines[2]!, /host=b\.test:\d+ from=127\.0\.0\.2 path=\/2/, 'b.test through microsocks (127.0.0.2)');
    assert.match(lines[4]!, /host=a\.test:\d+ from=127\.0\.0\.1 path=\/3/, 'a.test direct again');
    assert.deepEqual([lines[1], lines[3], lines[5]], ['connects=1', 'connects=0', 'connects=0'], 'one client connection carried all three');
    assert.deepEqual(asked, ['a.test', 'b.test', 'a.test'], 'policy asked per request');
    assert.deepEqual(f.flows.map((e) => e.record.egress), ['direct', 'ms', 'direct']);
    assert.equal(connections, before + 3, 'each change of origin is a new egress connection');
  } finally {
    await f.close();
  }
});

test('response framing: lengths, chunks across any split, interim, HEAD/204/304, close-delimited, garbage', async () => {
  const { ResponseFramer } = await import('../../src/front/http-response.ts');
  const stream = Buffer.from(
    'HTTP/1.1 100 Continue\r\n\r\n' +
      'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello' +
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=1\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nTrailer: t\r\n\r\n' +
      'HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n' + // HEAD: no body despite the length
      'HTTP/1.1 304 Not Modified\r\nContent-Length: 7\r\n\r\n',
  );
  const methods = ['POST', 'GET', 'HEAD', 'GET'];
  // Every split point: the framer must find the same four ends.
  for (let cut = 0; cut <= stream.length; cut++) {
    const f = new ResponseFramer();
    let idle = 0;
    f.onIdle = () => idle++;
    for (const m of methods) f.expect(m);
    assert.equal(f.feed(stream.subarray(0, cut)) && f.feed(stream.subarray(cut)), true, `cut ${cut}: ${f.error}`);
    assert.equal(f.pending, 0, `cut ${cut}`);
    assert.equal(idle, 1);
    assert.equal(f.reusable, true);
  }
  const close = new ResponseFramer();
  close.expect('GET');
  assert.equal(close.feed(Buffer.from('HTTP/1.0 200 OK\r\n\r\nbody until close')), true);
  assert.equal(close.untilClose, true);
  assert.equal(close.reusable, false);
  const hostile = ['HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nabEXTRA', 'garbage\r\n\r\n', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n', 'HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n', `HTTP/1.1 200 OK\r\nX: ${'a'.repeat(70_000)}`];
  for (const text of hostile) {
    const f = new ResponseFramer();
    f.expect('GET');
    assert.equal(f.feed(Buffer.from(text)), false, JSON.stringify(text.slice(0, 60)));
    assert.ok(f.error);
  }
  const none = new ResponseFramer();
  assert.equal(none.feed(Buffer.from('HTTP/1.1 200 OK\r\n\r\n')), false, 'a response nobody asked for');
});
