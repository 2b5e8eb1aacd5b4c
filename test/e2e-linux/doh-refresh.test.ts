// [enforce] block_doh and the near-expiry refresh of captured set entries, end to end: a real
// `switchyard up` inside `unshare --mount --net`, real dig and curl, a microsocks egress that dials
// out from its own address (-b) so the server proves the path. See fixtures/doh-refresh.ts.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { missing, removeCgroupTree, runFixture, uniqueCgroupRoot } from './helpers.ts';

const root = uniqueCgroupRoot('doh');
after(() => removeCgroupTree(root));

test('e2e: block_doh (names blocked, listed addresses refused on 443), short-TTL captured entries refreshed while a client keeps resolving', async (t) => {
  const why = missing(['curl', 'dig', 'dnsmasq', 'microsocks']);
  if (why) return t.skip(why);
  const hostBefore = spawnSync('nft', ['list', 'ruleset'], { encoding: 'utf8' }).stdout;
  const run = await runFixture('doh-refresh.ts', root, 60_000);
  const r = run.result;
  assert.equal(r['error'], undefined, `${r['error']}\n${r['daemonLog'] ?? ''}\n${run.stderr}`);
  t.diagnostic(`refresh: ${r['refreshRounds']} rounds, ${r['cacheHits']} cache hits, ${r['misses']} misses, ${r['rehooks']} near-expiry re-hooks`);

  // DoH names: answered by switchyard as blocked; an unlisted name resolves.
  assert.deepEqual(r['digDohFile'], ['status: NXDOMAIN'], 'a name from the list file (upstream would answer it)');
  assert.deepEqual(r['digDohSub'], ['status: NXDOMAIN'], 'a subdomain of a listed name');
  assert.deepEqual(r['digDohBuiltin'], ['status: NXDOMAIN'], 'a built-in name (the upstream would refuse it: REFUSED)');
  assert.deepEqual(r['digFine'], ['status: NOERROR', '198.18.0.41']);

  // DoH addresses: TCP 443 reset, for unselected and selected apps; nothing arrives.
  assert.match(r['doh443'], /^failed/);
  assert.match(r['doh443Group'], /^failed/);
  assert.equal(r['doh443Arrivals'], 0, 'the listed DoH server saw nothing');
  // A direct connection between two local addresses comes from the destination address itself.
  assert.equal(r['other443'], 'from 198.18.0.41', 'an unlisted server on 443 works (directly)');
  assert.equal(r['other443Arrivals'], 1);
  assert.equal(r['doh8080'], 'from 198.18.0.40', 'other ports of the listed address work');
  assert.match(r['doh4'], /198\.18\.0\.40/);
  assert.match(r['doh4'], /1\.1\.1\.1/, 'the built-in list is in the set too');
  assert.match(r['doh6'], /2606:4700:4700::1111/);

  // Refresh: every connection of a client that keeps resolving went through the egress.
  assert.ok((r['refreshRounds'] as number) >= 8, `enough rounds: ${r['refreshRounds']}`);
  assert.equal(r['refreshDirect'], 0, `no direct arrival: ${JSON.stringify(r['refreshOutputs'])}`);
  assert.equal(r['refreshFailed'], 0, `no failed round: ${JSON.stringify(r['refreshOutputs'])}`);
  assert.equal(r['refreshVia'], r['refreshRounds']);
  assert.ok((r['cacheHits'] as number) > 0 && (r['misses'] as number) >= 2, 'both cache hits and expiries happened');
  assert.ok((r['rehooks'] as number) > 0, 'cache hits close to the entry expiry re-ran the hook');
  // ...and the entries do expire: a client that stops resolving falls out after TTL + grace.
  assert.equal(r['capturedAfterQuiet'], false);
  assert.equal(r['afterQuiet'], 'from 198.18.0.30', 'arrives directly');
  assert.equal(run.code, 0);
  assert.equal(spawnSync('nft', ['list', 'ruleset'], { encoding: 'utf8' }).stdout, hostBefore, 'host ruleset untouched');
});
