// fetchList against a real HTTPS server on 127.0.0.1 with certificates made here by openssl:
// first fetch, 304, change, wrong certificate, wrong host name, oversize (declared and streamed),
// pinned sha256, redirect to http, and the pluggable connect function.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:https';
import { connect as netConnect, type AddressInfo, type Socket } from 'node:net';
import { fetchList } from '../../src/lists/fetch.ts';
import { ListError } from '../../src/errors.ts';
import { makeTestCerts, type TestCerts } from './tls-helpers.ts';

let certs: TestCerts | null = null;
let ca = '';
let otherCa = '';
let server: Server | undefined;
let port = 0;
let openssl = true;
const sockets = new Set<Socket>();

// What the server serves and what it saw.
let body = 'example.com\nfull:www.example.org\n';
let etag = '"v1"';
const seen: { path: string; ifNoneMatch?: string; ifModifiedSince?: string }[] = [];
let streamedBytes = 0;
let streamClosedEarly = false;

before(async () => {
  certs = makeTestCerts();
  if (!certs) {
    openssl = false;
    return;
  }
  ca = certs.ca;
  otherCa = certs.otherCa;
  server = createServer({ key: certs.key, cert: certs.cert }, (req, res) => {
    seen.push({
      path: req.url ?? '',
      ...(req.headers['if-none-match'] ? { ifNoneMatch: String(req.headers['if-none-match']) } : {}),
      ...(req.headers['if-modified-since'] ? { ifModifiedSince: String(req.headers['if-modified-since']) } : {}),
    });
    if (req.url === '/list') {
      if (req.headers['if-none-match'] === etag) {
        res.writeHead(304, { etag });
        res.end();
        return;
      }
      res.writeHead(200, { etag, 'last-modified': 'Sat, 21 Nov 2026 10:00:00 GMT', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    } else if (req.url === '/big-declared') {
      res.writeHead(200, { 'content-length': 10_000_000 });
      res.end(); // never sends: the declared length alone must be refused
    } else if (req.url === '/big-stream') {
      // Chunked, no Content-Length: 64 KiB at a time until 8 MiB or the client hangs up.
      res.writeHead(200, { 'content-type': 'text/plain' });
      const chunk = Buffer.alloc(65536, 0x61);
      res.on('close', () => { if (streamedBytes < 8 * 1024 * 1024) streamClosedEarly = true; });
      const pump = (): void => {
        while (streamedBytes < 8 * 1024 * 1024) {
          streamedBytes += chunk.length;
          if (!res.write(chunk)) { res.once('drain', pump); return; }
        }
        res.end();
      };
      pump();
    } else if (req.url === '/to-http') {
      res.writeHead(302, { location: `http://127.0.0.1:${port}/list` });
      res.end();
    } else if (req.url === '/redirect') {
      res.writeHead(301, { location: '/list' });
      res.end();
    } else {
      res.writeHead(404);
      res.end();
    }
  });
  server.on('connection', (s: Socket) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
  port = (server.address() as AddressInfo).port;
});

after(async () => {
  for (const s of sockets) s.destroy();
  if (server) await new Promise<void>((r) => server!.close(() => r()));
  certs?.cleanup();
});

const url = (p: string): string => `https://127.0.0.1:${port}${p}`;

async function rejectsWith(p: Promise<unknown>, code: string, re?: RegExp): Promise<ListError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof ListError, `expected a ListError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    if (re) assert.match(e.message, re);
    return e;
  }
  assert.fail(`expected ${code}`);
}

test('first fetch returns the body, validators and sha256; then 304 → unchanged; then changed', async (t) => {
  if (!openssl) return t.skip('needs openssl');
  const first = await fetchList({ url: url('/list'), ca, list: 'remote' });
  assert.equal(first.status, 'changed');
  assert.equal(first.body?.toString(), body);
  assert.equal(first.etag, '"v1"');
  assert.equal(first.lastModified, 'Sat, 21 Nov 2026 10:00:00 GMT');
  assert.equal(first.sha256, createHash('sha256').update(body).digest('hex'));

  const n = seen.length;
  const second = await fetchList({ url: url('/list'), ca, previous: first });
  assert.equal(seen[n]?.ifNoneMatch, '"v1"', 'the conditional request carried the ETag');
  assert.equal(seen[n]?.ifModifiedSince, 'Sat, 21 Nov 2026 10:00:00 GMT');
  assert.equal(second.status, 'unchanged');
  assert.equal(second.body, null);
  assert.equal(second.sha256, first.sha256);

  body = 'example.com\nnew.example.net\n';
  etag = '"v2"';
  const third = await fetchList({ url: url('/list'), ca, previous: second });
  assert.equal(third.status, 'changed');
  assert.equal(third.body?.toString(), body);
  assert.equal(third.etag, '"v2"');
  assert.notEqual(third.sha256, first.sha256);

  // A server that ignores validators but sends the same bytes: unchanged by hash.
  const fourth = await fetchList({ url: url('/list'), ca, previous: { sha256: third.sha256 } });
  assert.equal(fourth.status, 'unchanged');
});

test('a certificate from an untrusted CA is refused', async (t) => {
  if (!openssl) return t.skip('needs openssl');
  const e = await rejectsWith(fetchList({ url: url('/list'), ca: otherCa }), 'SY_ERR_LIST_FETCH_TLS', /certificate refused/);
  assert.equal((e.cause as NodeJS.ErrnoException).code, 'UNABLE_TO_VERIFY_LEAF_SIGNATURE');
  // Node's default roots do not know the test CA either.
  await rejectsWith(fetchList({ url: url('/list') }), 'SY_ERR_LIST_FETCH_TLS');
});

test('a certificate for another name is refused (connect function routes wrong.test to the server)', async (t) => {
  if (!openssl) return t.skip('needs openssl');
  const dialed: string[] = [];
  const connect = async (host: string, p: number): Promise<Socket> => {
    dialed.push(`${host}:${p}`);
    return netConnect(port, '127.0.0.1');
  };
  const e = await rejectsWith(fetchList({ url: 'https://wrong.test/list', ca, connect }), 'SY_ERR_LIST_FETCH_TLS');
  assert.equal((e.cause as NodeJS.ErrnoException).code, 'ERR_TLS_CERT_ALTNAME_INVALID', 'refused for the name, the CA being trusted');
  assert.deepEqual(dialed, ['wrong.test:443']);
});

test('the connect function carries the whole transfer', async (t) => {
  if (!openssl) return t.skip('needs openssl');
  let calls = 0;
  const connect = async (host: string, p: number): Promise<Socket> => {
    calls++;
    assert.equal(host, 'localhost');
    return netConnect(p, '127.0.0.1');
  };
  const r = await fetchList({ url: `https://localhost:${port}/list`, ca, connect });
  assert.equal(r.status, 'changed');
  assert.equal(r.body?.toString(), body);
  assert.equal(calls, 1);
});

test('a declared Content-Length over the limit is refused before the body', async (t) => {
  if (!openssl) return t.skip('needs openssl');
  await rejectsWith(fetchList({ url: url('/big-declared'), ca, maxBytes: 1_000_000 }), 'SY_ERR_LIST_FETCH_TOO_LARGE', /Content-Length 10000000/);
});

test('a streamed body is cut off as soon as it passes the limit', async (t) => {
  if (!openssl) return t.skip('needs openssl');
  await rejectsWith(fetchList({ url: url('/big-stream'), ca, maxBytes: 1024 * 1024 }), 'SY_ERR_LIST_FETCH_TOO_LARGE', /passed the 1048576-byte limit/);
  await new Promise((r) => setTimeout(r, 200));
  assert.ok(streamClosedEarly, 'the server saw the connection close before it had sent everything');
  assert.ok(streamedBytes < 8 * 1024 * 1024, `server wrote ${streamedBytes} bytes, not all 8 MiB`);
});

test('a pinned sha256 is enforced', async (t) => {
  if (!openssl) return t.skip('needs openssl');
  const good = createHash('sha256').update(body).digest('hex');
  const ok = await fetchList({ url: url('/list'), ca, sha256: good.toUpperCase() });
  assert.equal(ok.sha256, good);
  await rejectsWith(fetchList({ url: url('/list'), ca, sha256: '0'.repeat(64) }), 'SY_ERR_LIST_FETCH_HASH', /pinned value is 0{64}/);
});

test('redirects are followed on https only; http URLs and bad statuses are refused', async (t) => {
  if (!openssl) return t.skip('needs openssl');
  const r = await fetchList({ url: url('/redirect'), ca });
  assert.equal(r.url, url('/list'));
  await rejectsWith(fetchList({ url: url('/to-http'), ca }), 'SY_ERR_LIST_FETCH', /not https/);
  await rejectsWith(fetchList({ url: `http://127.0.0.1:${port}/list`, ca }), 'SY_ERR_LIST_FETCH', /not https/);
  await rejectsWith(fetchList({ url: url('/missing'), ca }), 'SY_ERR_LIST_FETCH', /HTTP 404/);
});
