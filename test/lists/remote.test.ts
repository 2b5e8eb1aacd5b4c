// checkRemoteList against a local HTTPS server: first fetch → a pending candidate whose diff adds
// everything; 304 → unchanged; a changed body → a pending candidate with added and removed
// entries; a body that does not parse, a wrong certificate, an oversize body → refused with a
// clear error, and the active state the caller holds is never modified.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { checkRemoteList, type ActiveRemote } from '../../src/lists/remote.ts';
import { formatDiff } from '../../src/lists/diff.ts';
import type { ListDef } from '../../src/lists/index.ts';
import { ListError } from '../../src/errors.ts';
import { makeTestCerts, type TestCerts } from './tls-helpers.ts';

let certs: TestCerts | null = null;
let server: Server | undefined;
let port = 0;
const sockets = new Set<Socket>();
let body = 'youtube.com\ngooglevideo.com\n';
let version = 1;

before(async () => {
  certs = makeTestCerts();
  if (!certs) return;
  server = createServer({ key: certs.key, cert: certs.cert }, (req, res) => {
    const etag = `"v${version}"`;
    if (req.headers['if-none-match'] === etag) {
      res.writeHead(304, { etag });
      res.end();
      return;
    }
    res.writeHead(200, { etag, 'content-length': Buffer.byteLength(body) });
    res.end(body);
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

const def = (): ListDef => ({ name: 'yt', url: `https://127.0.0.1:${port}/yt.list`, format: 'plain', egress: 'dpi' });

async function refused(p: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(p, (e: unknown) => e instanceof ListError && e.code === code);
}

test('first fetch, 304, change, then refusals — the active state is never touched', async (t) => {
  if (!certs) return t.skip('needs openssl');
  const ca = certs.ca;

  const first = await checkRemoteList(def(), null, { ca });
  assert.equal(first.status, 'pending');
  if (first.status !== 'pending') return;
  assert.deepEqual(first.diff.added.map((e) => e.domain!.value), ['youtube.com', 'googlevideo.com']);
  assert.deepEqual(first.diff.removed, []);
  assert.equal(first.entries, 2);

  // The caller approves: this is now the active version.
  const active: ActiveRemote = { body: first.body, etag: first.etag, lastModified: first.lastModified, sha256: first.sha256 };
  const snapshot = JSON.stringify(active);

  const again = await checkRemoteList(def(), active, { ca });
  assert.deepEqual(again, { status: 'unchanged', etag: '"v1"', lastModified: null });

  body = 'youtube.com\nytimg.com\n';
  version = 2;
  const changed = await checkRemoteList(def(), active, { ca });
  assert.equal(changed.status, 'pending');
  if (changed.status !== 'pending') return;
  assert.deepEqual(changed.diff.added.map((e) => e.domain!.value), ['ytimg.com']);
  assert.deepEqual(changed.diff.removed.map((e) => e.domain!.value), ['googlevideo.com']);
  assert.equal(changed.diff.kept, 1);
  assert.deepEqual(formatDiff(changed.diff), ['+ suffix ytimg.com (line 2)', '- suffix googlevideo.com (line 2)']);

  // A body that does not parse is refused, with its line.
  body = 'youtube.com\nnot a domain\n';
  version = 3;
  await assert.rejects(checkRemoteList(def(), active, { ca }), (e: unknown) => e instanceof ListError && e.code === 'SY_ERR_LIST_SYNTAX' && e.line === 2);

  // Wrong certificate; oversize; pinned hash mismatch.
  await refused(checkRemoteList(def(), active, { ca: certs.otherCa }), 'SY_ERR_LIST_FETCH_TLS');
  await refused(checkRemoteList({ ...def(), maxBytes: 8 }, active, { ca }), 'SY_ERR_LIST_FETCH_TOO_LARGE');
  await refused(checkRemoteList({ ...def(), sha256: 'a'.repeat(64) }, active, { ca }), 'SY_ERR_LIST_FETCH_HASH');

  assert.equal(JSON.stringify(active), snapshot, 'the active version the caller holds is unchanged');
});
