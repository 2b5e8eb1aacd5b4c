// The mixed inbound driven by the real policy engine (compilePolicy on a TOML config): domain
// rules pick the egress, `block` refuses with 0x02, and `[enforce] lan = "direct"` keeps a
// loopback destination off the proxy even when the default is that proxy.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { compilePolicy, loadConfigFromString } from '../../src/policy/index.ts';
import * as h from './helpers.ts';

const skip = h.has('microsocks') ? false : 'needs microsocks';
let ms: h.Peer;
let web: h.RecordingServer;

before(async () => {
  web = await h.recordingServer('127.0.0.1', (s) => s.end('hi'));
  if (!skip) ms = await h.startMicrosocks('127.0.0.2');
});
after(async () => {
  await web.close();
  if (!skip) await ms.stop();
});

const toml = (lan: string) => `
version = 1
default = "ms"
[enforce]
lan = "${lan}"
[egress.ms]
type = "socks5"
endpoint = "socks5://127.0.0.1:${ms.port}"
send_domain = false
[[rule]]
egress = "ms"
domains = ["ms.test"]
[[rule]]
egress = "block"
domains = ["blocked.test"]
`;
// The names' "hosts entries": ms.test points at loopback, where the test server listens.
const resolve = { 'ms.test': ['127.0.0.1'], 'blocked.test': ['127.0.0.1'] };

test('real policy (lan = policy): domain rule → socks5 egress, block → 0x02', { skip }, async () => {
  const policy = compilePolicy(loadConfigFromString(toml('policy'), 'test.toml'));
  const f = await h.startFront({ policy, egresses: [h.egressSocks('ms', ms.port, { sendDomain: false })], resolve });
  try {
    const a = await h.socksConnect(f.port, 'ms.test', web.port);
    assert.equal(a.rep, 0);
    a.socket.destroy();
    await h.waitFor(() => web.arrivals.length > 0);
    assert.equal(web.arrivals.at(-1), '127.0.0.2', 'domain rule sent it through microsocks');
    const flow = f.flows.at(-1)!.record;
    assert.equal(flow.decision.stage, 'domain');
    assert.equal(flow.egress, 'ms');

    assert.equal((await h.socksConnect(f.port, 'blocked.test', web.port)).rep, 0x02);
    assert.equal(f.flows.at(-1)!.record.decision.egress, 'block');
  } finally {
    await f.close();
  }
});

test('real policy (lan = direct): loopback IP, and a SOCKS5 domain / HTTP CONNECT host resolving to loopback, go direct', { skip }, async () => {
  const policy = compilePolicy(loadConfigFromString(toml('direct'), 'test.toml'));
  const f = await h.startFront({ policy, egresses: [h.egressSocks('ms', ms.port, { sendDomain: false })], resolve });
  try {
    const before0 = web.arrivals.length;
    const l = await h.socksConnect(f.port, '127.0.0.1', web.port);
    assert.equal(l.rep, 0);
    l.socket.destroy();
    await h.waitFor(() => web.arrivals.length > before0);
    assert.equal(web.arrivals.at(-1), '127.0.0.1', 'loopback went direct although the default is ms');
    assert.equal(f.flows.at(-1)!.record.decision.stage, 'lan');

    // A rule sends ms.test to the proxy, but the name resolves to loopback: re-checked, direct.
    const before = web.arrivals.length;
    const d = await h.socksConnect(f.port, 'ms.test', web.port);
    assert.equal(d.rep, 0);
    d.socket.destroy();
    await h.waitFor(() => web.arrivals.length > before);
    assert.equal(web.arrivals.at(-1), '127.0.0.1', 'arrived from 127.0.0.1 (direct), not 127.0.0.2 (microsocks)');
    let rec = f.flows.at(-1)!.record;
    assert.equal(rec.egress, 'direct');
    assert.equal(rec.decision.stage, 'lan');
    assert.equal(rec.domain, 'ms.test');

    const before2 = web.arrivals.length;
    const r = await h.httpProxyRequest(f.port, `CONNECT ms.test:${web.port} HTTP/1.1\r\nHost: ms.test:${web.port}\r\n\r\n`);
    assert.equal(r.status, 200);
    await h.waitFor(() => web.arrivals.length > before2);
    assert.equal(web.arrivals.at(-1), '127.0.0.1', 'HTTP CONNECT by name: direct');
    rec = f.flows.at(-1)!.record;
    assert.equal(rec.egress, 'direct');
    assert.equal(rec.decision.stage, 'lan');
  } finally {
    await f.close();
  }
});
