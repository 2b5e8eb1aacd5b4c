// `[[list]]` through the real daemon and CLI: a remote list served by a local HTTPS server (a test
// CA made by openssl, trusted by the daemon through NODE_EXTRA_CA_CERTS) becomes a pending
// revision; approval makes it route (a flow through the mixed inbound is refused, the echo server
// sees nothing); 304 changes nothing; a changed body is a new pending revision; a wrong host
// certificate and an oversize body are refused with their codes while the active list stays;
// explain names list, file and line; `lists export` round-trips; a restart without the network
// runs the approved list from the cache.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:https';
import { once } from 'node:events';
import { createHash } from 'node:crypto';
import { mkdirSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeTestCerts, type TestCerts } from '../lists/tls-helpers.ts';
import { spawn } from 'node:child_process';
import { call, cliIn, listening, connectVia, countServer, freePort, startDaemon, tempDir, until, type CountServer, type DaemonProc } from '../helpers/daemon.ts';
import { parseList } from '../../src/lists/index.ts';
import { describeEntry } from '../../src/lists/collect.ts';

let certs: TestCerts | null = null;
let dir = '';
let d: DaemonProc | null = null;
let echo: CountServer;
const servers: Server[] = [];
let port = 0;
let body = '# remote list\nlisted.test\nfull:other.test\n';
const hits = { list: 0, notModified: 0, big: 0 };
/** Source address of every request for the remote list (microsocks binds its outgoing side to 127.0.0.3). */
const fromAddrs: string[] = [];
let socksProc: import('node:child_process').ChildProcess | null = null;
let configPath = '';
let extraEnv: NodeJS.ProcessEnv = {};

const etagOf = (b: string) => `"${createHash('sha256').update(b).digest('hex').slice(0, 16)}"`;

function handler(req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse): void {
  if (req.url === '/remote.list') {
    hits.list++;
    fromAddrs.push(req.socket.remoteAddress ?? '?');
    const etag = etagOf(body);
    if (req.headers['if-none-match'] === etag) {
      hits.notModified++;
      res.writeHead(304, { ETag: etag }).end();
      return;
    }
    res.writeHead(200, { 'Content-Type': 'text/plain', ETag: etag }).end(body);
  } else if (req.url === '/big.list') {
    hits.big++;
    res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': '5000' }).end('x'.repeat(5000));
  } else res.writeHead(404).end();
}

async function listen(host: string, p: number): Promise<Server> {
  const s = createServer({ key: certs!.key, cert: certs!.cert }, handler);
  s.listen(p, host);
  await once(s, 'listening');
  servers.push(s);
  return s;
}

before(async () => {
  certs = makeTestCerts();
  if (!certs) return;
  dir = tempDir('sy-lists-daemon-');
  writeFileSync(join(dir, 'ca.pem'), certs.ca);
  extraEnv = { NODE_EXTRA_CA_CERTS: join(dir, 'ca.pem') };
  echo = await countServer();
  const s = await listen('127.0.0.1', 0);
  port = (s.address() as { port: number }).port;
  // Same certificate (localhost, 127.0.0.1) on another loopback address: a host-name mismatch.
  await listen('127.0.0.2', port);
  mkdirSync(join(dir, 'lists'));
  writeFileSync(join(dir, 'lists', 'local.list'), '# local list\nlocal.test\n\nfull:www.local.test\nkeyword:localkw\n192.0.2.0/24\n');
  const [dns, mixed, socks] = [await freePort(), await freePort(), await freePort()];
  socksProc = spawn('microsocks', ['-i', '127.0.0.1', '-p', String(socks), '-b', '127.0.0.3'], { stdio: 'ignore' });
  await until(() => listening(socks), 'microsocks');
  configPath = join(dir, 'config.toml');
  writeFileSync(
    configPath,
    `version = 1
[dns]
listen = ["127.0.0.1:${dns}"]
upstreams = ["udp://127.0.0.1:9"]
hosts = { "listed.test" = ["127.0.0.1"] }

[inbound]
mixed = "127.0.0.1:${mixed}"

[enforce]
lan = "policy"   # loopback is the test's only network: let the policy decide it

[egress.ms]
type = "socks5"
endpoint = "socks5://127.0.0.1:${socks}"

[[list]]
name = "remote"
url = "https://127.0.0.1:${port}/remote.list"
format = "plain"
egress = "block"
refresh = "1d"

[[list]]
name = "local"
path = "lists/local.list"
format = "plain"
egress = "direct"

[[list]]
name = "wronghost"
url = "https://127.0.0.2:${port}/remote.list"
format = "plain"
egress = "block"

[[list]]
name = "viaproxy"
url = "https://127.0.0.1:${port}/remote.list"
format = "plain"
egress = "ms"
via = "ms"

[[list]]
name = "big"
url = "https://127.0.0.1:${port}/big.list"
format = "plain"
egress = "block"
max_bytes = 1000
`,
  );
  d = await startDaemon(dir, configPath, [], extraEnv);
});

after(async () => {
  if (d) {
    d.proc.kill('SIGTERM');
    await d.exited;
  }
  for (const s of servers) s.close();
  socksProc?.kill();
  await echo?.close();
  certs?.cleanup();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

interface Row {
  name: string;
  entries: number | null;
  pending: number | null;
  lastError: string | null;
  lastCheck: string | null;
  pendingDiff: string | null;
}
const rows = async () => ((await call(d!, 'lists')) as { lists: Row[] }).lists;
const row = async (n: string) => (await rows()).find((r) => r.name === n)!;
const explain = async (domain: string) => (await call(d!, 'explain', { query: { domain, network: 'tcp' } })) as { egress: string; listOrigin: { list?: string; file?: string; line?: number } | null };
const revisions = async () => ((await call(d!, 'revisions')) as { revisions: { n: number; state: string; channel: string | null; risk: string | null }[] }).revisions;

async function flowPasses(): Promise<boolean> {
  const before = echo.sources.length;
  try {
    const s = await connectVia(Number(/mixed = "127\.0\.0\.1:(\d+)"/.exec(readFileSync(configPath, 'utf8'))![1]), 'listed.test', echo.port);
    s.destroy();
  } catch {
    assert.equal(echo.sources.length, before, 'a refused flow never reached the echo server');
    return false;
  }
  await until(() => echo.sources.length > before, 'the echo server to see the flow');
  return true;
}

test('remote list: first fetch → pending; approve → active; 304 → nothing; change → new pending; bad cert / oversize refused', async (t) => {
  if (!certs) return t.skip('needs openssl');
  // The check at start: the remote list is pending, the others failed with their reasons.
  const r = await until(async () => ((await row('remote')).pending !== null ? row('remote') : null), 'the first fetch to make a pending revision');
  assert.match(r.pendingDiff ?? '', /\+2 −0 entries/);
  assert.match(r.pendingDiff ?? '', /\+ .*listed\.test.*\(line 2\)/);
  const bad = await until(async () => ((await row('wronghost')).lastError ? row('wronghost') : null), 'the wrong-host check');
  assert.match(bad.lastError!, /SY_ERR_LIST_FETCH_TLS/);
  assert.match(bad.lastError!, /ALTNAME|altname|host/i);
  const big = await until(async () => ((await row('big')).lastError ? row('big') : null), 'the oversize check');
  assert.match(big.lastError!, /SY_ERR_LIST_FETCH_TOO_LARGE/);

  const pend = (await revisions()).find((x) => x.n === r.pending)!;
  assert.equal(pend.state, 'pending');
  assert.equal(pend.channel, 'linked');
  assert.equal(pend.risk, 'medium', 'a list change is never low risk (the rule diff cannot see it)');
  const diff = (await call(d!, 'diff', { revision: r.pending })) as { lines: string[] };
  assert.ok(diff.lines.some((l) => /~ list remote: body none/.test(l)), diff.lines.join('\n'));
  assert.ok(diff.lines.some((l) => /listed\.test/.test(l)));

  // Not active before approval: the flow goes direct, the local list already runs (path list).
  assert.equal((await explain('listed.test')).egress, 'direct');
  assert.equal(await flowPasses(), true);
  const local = await explain('www.local.test');
  assert.deepEqual([local.egress, local.listOrigin?.list, local.listOrigin?.line], ['direct', 'local', 4]);
  assert.equal(local.listOrigin?.file, join(dir, 'lists', 'local.list'));

  const ap = await cliIn(d!.env, ['approve', String(r.pending)]);
  assert.equal(ap.status, 0, ap.stderr);
  const x = await explain('listed.test');
  assert.equal(x.egress, 'block');
  assert.deepEqual([x.listOrigin?.list, x.listOrigin?.file, x.listOrigin?.line], ['remote', `https://127.0.0.1:${port}/remote.list`, 2]);
  assert.equal(await flowPasses(), false, 'the approved list blocks the flow');
  const live = await cliIn(d!.env, ['explain', '--domain', 'a.listed.test', '--process', 'curl']);
  assert.equal(live.status, 0, live.stderr);
  assert.match(live.stdout, /answered by the running daemon/);
  assert.match(live.stdout, new RegExp(`domain listed\\.test matches a\\.listed\\.test\\) from list remote \\(https://127\\.0\\.0\\.1:${port}/remote\\.list:2\\), egress block`));
  const shown = await cliIn(d!.env, ['lists']);
  assert.equal(shown.status, 0, shown.stderr);
  assert.match(shown.stdout, /remote\s+plain\s+block\s+2\s+https:\/\/127\.0\.0\.1/);
  assert.match(shown.stdout, /local\s+plain\s+direct\s+4\s+/);

  // Unchanged: a conditional request answered 304, no revision.
  const nRev = (await revisions()).length;
  const before304 = hits.notModified;
  const ref = await cliIn(d!.env, ['lists', 'refresh', 'remote']);
  assert.equal(ref.status, 0, ref.stderr);
  assert.match(ref.stdout, /remote: unchanged/);
  assert.equal(hits.notModified, before304 + 1);
  assert.equal((await revisions()).length, nRev);

  // Changed: a new pending revision with the diff; the active list stays until approved.
  body = '# remote list v2\nlisted.test\nnew.test\n';
  const ch = await cliIn(d!.env, ['lists', 'refresh', 'remote']);
  assert.equal(ch.status, 0, ch.stderr);
  assert.match(ch.stdout, /pending revision #(\d+)/);
  assert.match(ch.stdout, /\+1 −1 entries/);
  assert.match(ch.stdout, /\+ .*new\.test/);
  assert.match(ch.stdout, /- .*other\.test/);
  assert.equal((await revisions()).length, nRev + 1);
  assert.equal((await explain('new.test')).egress, 'direct');
  assert.equal((await explain('other.test')).egress, 'block');

  // Refused downloads change nothing that runs.
  const refused = await cliIn(d!.env, ['lists', 'refresh', 'big']);
  assert.equal(refused.status, 1);
  assert.match(refused.stdout, /big: refused: SY_ERR_LIST_FETCH_TOO_LARGE/);
  const wrong = await cliIn(d!.env, ['lists', 'refresh', 'wronghost']);
  assert.match(wrong.stdout, /wronghost: refused: SY_ERR_LIST_FETCH_TLS/);
  assert.equal((await explain('listed.test')).egress, 'block');
  assert.equal((await revisions()).length, nRev + 1);
});

test('via = "ms": the download goes through the egress (the server sees microsocks\' bound address)', async (t) => {
  if (!certs) return t.skip('needs openssl');
  const before = fromAddrs.length;
  const r = await cliIn(d!.env, ['lists', 'refresh', 'viaproxy']);
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /viaproxy: (pending revision|unchanged)/);
  assert.deepEqual(fromAddrs.slice(before), ['127.0.0.3']);
  // The lists fetched directly come from 127.0.0.1: the path really differs.
  assert.ok(fromAddrs.slice(0, before).includes('127.0.0.1'));
  socksProc!.kill();
});

test('lists export round-trips the running body', async (t) => {
  if (!certs) return t.skip('needs openssl');
  const src = readFileSync(join(dir, 'lists', 'local.list'));
  const want = (await parseList(src, 'plain', { list: 'local' })).entries.map(describeEntry);
  for (const to of ['plain', 'singbox', 'clash-classical'] as const) {
    const out = await cliIn(d!.env, ['lists', 'export', 'local', '--format', to]);
    assert.equal(out.status, 0, out.stderr);
    // The same entries (sing-box groups rules by their conditions, so the order may differ).
    const back = (await parseList(out.stdout, to, { list: 'back' })).entries.map(describeEntry);
    assert.deepEqual([...back].sort(), [...want].sort(), to);
  }
  const v2 = await cliIn(d!.env, ['lists', 'export', 'local', '--format', 'v2fly']);
  assert.notEqual(v2.status, 0, 'v2fly holds no CIDRs: refused, not dropped');
  assert.match(v2.stderr, /SY_ERR_LIST_EXPORT/);
});

test('offline explain names the list, file and line', async (t) => {
  if (!certs) return t.skip('needs openssl');
  const out = await cliIn(d!.env, ['explain', '--config', configPath, '--domain', 'a.local.test', '--process', 'curl']);
  assert.equal(out.status, 0, out.stderr);
  assert.match(out.stdout, /→ egress direct by .*\[list local, .*lists\/local\.list:2\]/);
  assert.match(out.stdout, /url list 'remote' is not loaded offline/);
});

test('import FILE --format v2fly --egress E --linked: a pending [[list]]; approve routes; a change is a new pending revision', async (t) => {
  if (!certs) return t.skip('needs openssl');
  const file = join(dir, 'imported.v2fly');
  writeFileSync(file, '# v2fly\ndomain:imp.test @ads\nfull:www.imp2.test\n');
  const bad = join(dir, 'bad.v2fly');
  writeFileSync(bad, 'domain:ok.test\nbogus:line\n');
  const refused = await cliIn(d!.env, ['import', bad, '--format', 'v2fly', '--egress', 'block']);
  assert.notEqual(refused.status, 0);
  assert.match(refused.stderr, /SY_ERR_LIST_SYNTAX.*(line 2|:2)/);
  const noEgress = await cliIn(d!.env, ['import', file, '--format', 'v2fly']);
  assert.equal(noEgress.status, 2);
  assert.match(noEgress.stderr, /--egress/);
  const n0 = (await revisions()).length;
  const imp = await cliIn(d!.env, ['import', file, '--format', 'v2fly', '--egress', 'block', '--linked']);
  assert.equal(imp.status, 0, imp.stderr);
  const m = /revision #(\d+) is PENDING \(rule-list, 2 rules/.exec(imp.stdout);
  assert.ok(m, imp.stdout);
  assert.equal((await explain('a.imp.test')).egress, 'direct', 'pending: not active');
  const ap = await cliIn(d!.env, ['approve', m[1]!]);
  assert.equal(ap.status, 0, ap.stderr);
  const x = await explain('a.imp.test');
  assert.deepEqual([x.egress, x.listOrigin?.list, x.listOrigin?.file, x.listOrigin?.line], ['block', 'imported.v2fly', file, 2]);
  writeFileSync(file, '# v2fly\ndomain:imp.test\ndomain:imp3.test\n');
  await until(async () => (await revisions()).length > n0 + 1, 'the linked list change to make a pending revision');
  const last = (await revisions()).at(-1)!;
  assert.deepEqual([last.state, last.channel], ['pending', 'linked']);
  assert.equal((await explain('imp3.test')).egress, 'direct', 'the change waits for approval');
});

test('an edited path list is a pending revision (the watcher never activates it)', async (t) => {
  if (!certs) return t.skip('needs openssl');
  const n0 = (await revisions()).length;
  const file = join(dir, 'lists', 'local.list');
  writeFileSync(file, readFileSync(file, 'utf8') + 'edited.test\n');
  await until(async () => (await revisions()).length > n0, 'the list file change to make a pending revision');
  const last = (await revisions()).at(-1)!;
  assert.deepEqual([last.state, last.channel], ['pending', 'file']);
  assert.equal((await explain('edited.test')).listOrigin, null, 'not active before approval');
  const diff = (await call(d!, 'diff', { revision: last.n })) as { lines: string[] };
  assert.ok(diff.lines.some((l) => /~ list local: body /.test(l)), diff.lines.join('\n'));
});

test('a restart runs the approved remote list from the cache, without the network', async (t) => {
  if (!certs) return t.skip('needs openssl');
  d!.proc.kill('SIGTERM');
  await d!.exited;
  for (const s of servers) s.close();
  const before = hits.list;
  d = await startDaemon(dir, configPath, [], extraEnv);
  assert.equal((await explain('listed.test')).egress, 'block');
  assert.equal((await explain('other.test')).egress, 'block', 'the approved v1 body, not the pending v2');
  const r = await until(async () => ((await row('remote')).lastError ? row('remote') : null), 'the start check to fail (server gone)');
  assert.match(r.lastError!, /SY_ERR_LIST_FETCH/);
  assert.equal(hits.list, before);
  assert.equal((await explain('listed.test')).egress, 'block', 'a failed check leaves the active list');
});
