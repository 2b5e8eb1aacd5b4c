// Transparent inbound end to end inside a network namespace the test creates: nft redirects an
// app's connections to 198.18.5.5 / 2001:2::5 into the listeners; switchyard's own outgoing
// sockets carry the fwmark and are not redirected again.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import * as h from './helpers.ts';

const skip = h.canNetns && h.has('nft') && h.has('curl') ? false : 'needs root, unshare, ip, nft and curl';

test('redirected flows get their original destination (IPv4, IPv6), process, SNI; server-first is not held; refusals fail closed', { skip }, async () => {
  const r = await h.runInNetns(new URL('../fixtures/front/transparent-ns.ts', import.meta.url).pathname);
  assert.equal(r.error, undefined, String(r.error));
  assert.equal(r.curl4, 'origin 198.18.5.5 from 198.18.5.5');
  assert.equal(r.curl6, 'origin 2001:2::5 from 2001:2::5');
  const flows = r.flows as { outcome: string; dst: { address: string; port: number }; domain: string | null; domainSource: string; process: string | null }[];
  const f4 = flows.find((f) => f.dst.address === '198.18.5.5' && f.dst.port === 80);
  const f6 = flows.find((f) => f.dst.address === '2001:2::5' && f.dst.port === 80);
  assert.ok(f4 && f6, JSON.stringify(flows));
  assert.equal(f4.process, 'curl', 'process found by the app socket 4-tuple');
  assert.equal(f6.process, 'curl');
  // curl's Host is an IP literal: no sniffed name, so the store's name is used (a hint).
  assert.equal(f4.domain, 'learned.test');
  assert.equal(f4.domainSource, 'dns');
  assert.equal(f6.domainSource, 'none');
  // Server-first: the greeting came through, held at most by the 300 ms sniff bound (+ slack for a loaded machine).
  assert.equal(r.greeting, '220 hello\r\n');
  assert.ok((r.greetingMs as number) < 3000, `greeting after ${r.greetingMs} ms`);
  // TLS: SNI from a > 1500-byte ClientHello in 200-byte writes; every byte reached the origin.
  assert.ok((r.helloBytes as number) > 1500);
  const ft = flows.find((f) => f.dst.port === 443);
  assert.equal(ft?.domain, 'sni.example.net');
  assert.equal(ft?.domainSource, 'sni');
  assert.deepEqual(r.sinkHashes, [r.helloSha]);
  assert.equal(r.tlsReply, 'thanks', 'half-close carried and the answer came back');
  assert.equal(r.rejected, 1, 'a direct connection to the listener is rejected');
  // Fail closed on the transparent path: reset (curl 56, "Recv failure"), and nothing arrived.
  assert.equal(r.blocked, 'curl exit 56');
  assert.equal(r.vpnDown, 'curl exit 56');
  assert.deepEqual(r.counts, [], 'the reachable targets saw no connection');
  const refused = flows.filter((f) => f.outcome === 'refused').map((f) => f.dst.port).sort();
  assert.deepEqual(refused, [81, 82]);
});

test('process identity on the transparent path: never looked up without an app rule; with one, looked up once, while the first bytes are awaited', async () => {
  const { startTransparentInbounds } = await import('../../src/front/transparent.ts');
  const { createEgressSet } = await import('../../src/egress/set.ts');
  const { SessionTable } = await import('../../src/front/sessions.ts');
  const target = await h.recordingServer();
  try {
    for (const appRule of [false, true]) {
      const cfg = h.testConfig([]);
      if (appRule) cfg.rules.push({ index: 0, name: null, egress: 'direct', domains: [], apps: [{ kind: 'name', value: 'some-app' }], cidrs: [], ports: [], network: null, origin: {} });
      const calls = { process: 0, identify: 0 };
      let lookupStartedBeforeFirstByte = false;
      let firstByteSeen = false;
      // A stand-in identity: every accepted connection "was redirected" from the target server.
      const identity = {
        async identify() {
          calls.identify++;
          let memo: Promise<undefined> | undefined;
          return {
            origDst: { address: '127.0.0.1', port: target.port, family: 4 as const },
            process: () => {
              if (!memo) {
                calls.process++;
                if (!firstByteSeen) lookupStartedBeforeFirstByte = true;
                memo = Promise.resolve(undefined);
              }
              return memo;
            },
          };
        },
      };
      const deps = {
        policy: h.fnPolicy(cfg, () => 'direct'),
        egress: createEgressSet({ egresses: cfg.egress, resolver: h.staticResolver({}) }),
        sessions: new SessionTable({ maxSessions: 10 }),
        inbound: cfg.inbound,
        identity,
      };
      const t = await startTransparentInbounds(deps, { groups: [], host6: null });
      try {
        const c = net.connect(t.listeners[0]!.port4!, '127.0.0.1');
        await once(c, 'connect');
        await new Promise((r) => setTimeout(r, 50)); // the app is slow to speak
        firstByteSeen = true;
        c.write('hello');
        const [echo] = (await once(c, 'data')) as [Buffer];
        assert.equal(echo.toString(), 'hello', 'relayed to the original destination');
        c.destroy();
      } finally {
        await t.close();
        deps.sessions.closeAll();
      }
      assert.equal(calls.identify, 1);
      assert.equal(calls.process, appRule ? 1 : 0, appRule ? 'looked up once' : 'never looked up');
      if (appRule) assert.ok(lookupStartedBeforeFirstByte, 'the lookup overlapped the wait for the first bytes');
    }
  } finally {
    await target.close();
  }
});
