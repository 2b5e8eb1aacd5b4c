// Egress connectors against real peers: microsocks (-b), dante (external:) and tinyproxy (Bind)
// each dial out from their own loopback address, and a recording server tells which path a flow
// took. Fail-closed cases use a destination that IS reachable directly and show it saw nothing.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createEgressSet } from '../../src/egress/set.ts';
import { EgressError } from '../../src/errors.ts';
import * as h from '../front/helpers.ts';

const need = ['microsocks', 'danted', 'tinyproxy'].filter((c) => !h.has(c));
const skip = need.length ? `needs ${need.join(', ')}` : false;

let srv: h.RecordingServer;
let ms: h.Peer, msAuth: h.Peer, dante: h.Peer, tp: h.Peer;

before(async () => {
  if (skip) return;
  srv = await h.recordingServer('127.0.0.1', (s) => s.end('hello'));
  ms = await h.startMicrosocks('127.0.0.2');
  msAuth = await h.startMicrosocks('127.0.0.5', { user: 'u1', pass: 'p1' });
  dante = await h.startDante('127.0.0.3');
  tp = await h.startTinyproxy('127.0.0.4');
});

after(async () => {
  if (skip) return;
  await Promise.all([ms.stop(), msAuth.stop(), dante.stop(), tp.stop(), srv.close()]);
});

async function readAll(s: import('node:net').Socket, pending: Buffer[]): Promise<string> {
  const parts = [...pending];
  return new Promise((resolve) => {
    s.on('data', (d) => parts.push(d));
    s.on('end', () => resolve(Buffer.concat(parts).toString()));
  });
}

function set(extra: Parameters<typeof h.testConfig>[0]) {
  const cfg = h.testConfig(extra);
  const resolver = h.staticResolver({ 'svc.test': ['127.0.0.1'] });
  return { egress: createEgressSet({ egresses: cfg.egress, resolver, connectTimeoutMs: 3000 }), resolver };
}

/** Connects through an egress and reads the server's greeting via the Upstream's onData. */
async function through(es: ReturnType<typeof set>['egress'], name: string, req: Parameters<typeof es.connect>[1]) {
  const c = await es.connect(name, req);
  const up = c.upstream;
  const chunks: Buffer[] = [...up.takePending()];
  up.onData = (b) => (chunks.push(b), true);
  await new Promise((r) => up.socket.once('end', r));
  up.destroy();
  return { text: Buffer.concat(chunks).toString(), egress: c.egress };
}

test('each proxy egress dials out from its own address', { skip }, async () => {
  const { egress } = set([h.egressSocks('ms', ms.port, { sendDomain: false }), h.egressSocks('dante', dante.port), h.egressHttp('tp', tp.port)]);
  const cases: [string, string][] = [['ms', '127.0.0.2'], ['dante', '127.0.0.3'], ['tp', '127.0.0.4'], ['direct', '127.0.0.1']];
  for (const [name, from] of cases) {
    const before = srv.arrivals.length;
    const r = await through(egress, name, { ip: '127.0.0.1', port: srv.port, domainTrusted: false });
    assert.equal(r.text, 'hello');
    assert.equal(r.egress, name);
    await h.waitFor(() => srv.arrivals.length > before);
    assert.deepEqual(srv.arrivals.slice(before), [from], `${name} should arrive from ${from}`);
  }
});

test('names are resolved through the injected resolver for the flow egress, never the OS', { skip }, async () => {
  const { egress, resolver } = set([h.egressSocks('ms', ms.port, { sendDomain: false })]);
  const r = await through(egress, 'ms', { domain: 'svc.test', port: srv.port, domainTrusted: true });
  assert.equal(r.text, 'hello');
  assert.deepEqual(resolver.asked, [['svc.test', 'ms']]);
  // direct: the same, for egress `direct`
  await through(egress, 'direct', { domain: 'svc.test', port: srv.port, domainTrusted: false });
  assert.deepEqual(resolver.asked.at(-1), ['svc.test', 'direct']);
});

test('a trusted name is sent to the proxy as a name; the proxy reply code is kept', { skip }, async () => {
  const { egress, resolver } = set([h.egressSocks('dante', dante.port)]);
  // dante cannot resolve svc.test: it answers with its own failure code, which is passed on.
  await assert.rejects(egress.connect('dante', { domain: 'svc.test', port: srv.port, domainTrusted: true }), (e: unknown) => {
    assert.ok(e instanceof EgressError);
    assert.ok(e.upstreamReply !== undefined && e.upstreamReply > 0, 'upstream reply byte recorded');
    return true;
  });
  assert.equal(resolver.asked.length, 0, 'the name went to the proxy, not to our resolver');
  // An untrusted (store-hint) name is never sent: it is resolved locally and the IP goes out.
  const r = await through(egress, 'dante', { domain: 'svc.test', port: srv.port, domainTrusted: false });
  assert.equal(r.text, 'hello');
  assert.deepEqual(resolver.asked, [['svc.test', 'dante']]);
});

test('socks5 username/password (RFC 1929) against microsocks -u/-P', { skip }, async () => {
  const good = set([h.egressSocks('a', msAuth.port, { auth: { username: 'u1', password: 'p1' } })]).egress;
  const before = srv.arrivals.length;
  assert.equal((await through(good, 'a', { ip: '127.0.0.1', port: srv.port, domainTrusted: false })).text, 'hello');
  await h.waitFor(() => srv.arrivals.length > before);
  assert.deepEqual(srv.arrivals.slice(before), ['127.0.0.5']);
  const bad = set([h.egressSocks('a', msAuth.port, { auth: { username: 'u1', password: 'wrong' } })]).egress;
  await assert.rejects(bad.connect('a', { ip: '127.0.0.1', port: srv.port, domainTrusted: false }), (e: unknown) => e instanceof EgressError && e.code === 'SY_ERR_EGRESS_PROXY');
  const none = set([h.egressSocks('a', msAuth.port)]).egress;
  await assert.rejects(none.connect('a', { ip: '127.0.0.1', port: srv.port, domainTrusted: false }), /requires authentication/);
});

test('block refuses without touching the network', { skip }, async () => {
  const { egress } = set([]);
  const before = srv.arrivals.length;
  await assert.rejects(egress.connect('block', { ip: '127.0.0.1', port: srv.port, domainTrusted: false }), (e: unknown) => e instanceof EgressError && e.failure === 'blocked');
  await assert.rejects(egress.connect('nope', { ip: '127.0.0.1', port: srv.port, domainTrusted: false }), (e: unknown) => e instanceof EgressError && e.failure === 'unknown-egress');
  assert.equal(srv.arrivals.length, before);
});

test('fail closed: a stopped proxy turns health down through the egress; flows are refused, the reachable target sees nothing', { skip }, async () => {
  const target = await h.recordingServer('127.0.0.1', (s) => s.end('x'));
  const victim = await h.startMicrosocks('127.0.0.6');
  const cfg = h.testConfig([h.egressSocks('vpn', victim.port, { health: { target: { host: '127.0.0.1', port: target.port }, intervalMs: 60_000, timeoutMs: 4000 } })]);
  const egress = createEgressSet({ egresses: cfg.egress, resolver: h.staticResolver({}), connectTimeoutMs: 4000 });
  try {
    assert.equal((await egress.probe('vpn')).state, 'up');
    await h.waitFor(() => target.arrivals.length > 0);
    assert.deepEqual(target.arrivals, ['127.0.0.6'], 'the probe went through the proxy');
    await victim.stop();
    const s = await egress.probe('vpn');
    assert.equal(s.state, 'down');
    const arrivals = target.arrivals.length;
    await assert.rejects(egress.connect('vpn', { ip: '127.0.0.1', port: target.port, domainTrusted: false }), (e: unknown) => e instanceof EgressError && e.code === 'SY_ERR_EGRESS_DOWN' && e.failure === 'down');
    assert.equal(target.arrivals.length, arrivals, 'nothing reached the target another way');
  } finally {
    egress.stop();
    await victim.stop();
    await target.close();
  }
});

test('a proxy that dies is marked down by the first failing flow; only an explicit fallback reroutes', { skip }, async () => {
  const target = await h.recordingServer('127.0.0.1', (s) => s.end('y'));
  const victim = await h.startMicrosocks('127.0.0.7');
  const cfg = h.testConfig([h.egressSocks('vpn', victim.port), { ...h.egressSocks('vpn2', victim.port), fallback: 'ms' }, h.egressSocks('ms', ms.port)]);
  const egress = createEgressSet({ egresses: cfg.egress, resolver: h.staticResolver({}), connectTimeoutMs: 4000 });
  const states: string[] = [];
  egress.on('health', (s) => states.push(`${s.egress}:${s.state}`));
  try {
    await victim.stop();
    const req = { ip: '127.0.0.1', port: target.port, domainTrusted: false };
    await assert.rejects(egress.connect('vpn', req), (e: unknown) => e instanceof EgressError && e.code === 'SY_ERR_EGRESS_PROXY');
    assert.equal(egress.health('vpn')?.state, 'down');
    assert.ok(states.includes('vpn:down'));
    await assert.rejects(egress.connect('vpn', req), (e: unknown) => e instanceof EgressError && e.failure === 'down');
    assert.equal(target.arrivals.length, 0);
    // vpn2 names a fallback: once down, its flows take `ms` (and say so).
    await assert.rejects(egress.connect('vpn2', req));
    const c = await egress.connect('vpn2', req);
    assert.equal(c.egress, 'ms');
    assert.equal(c.fallbackFrom, 'vpn2');
    c.upstream.destroy();
    await h.waitFor(() => target.arrivals.length > 0);
    assert.deepEqual(target.arrivals, ['127.0.0.2']);
  } finally {
    egress.stop();
    await target.close();
  }
});
