// Lists → RuleConfigs → the real policy engine: decide() takes the list's egress and explain()
// names the list, the file and the line the match came from. Also: +block, a v2fly include's
// origin, and a list entry more specific than a config rule.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { compilePolicy, loadConfigFromString, type Config } from '../../src/policy/index.ts';
import { listOriginOf, listsToRules, type ListDef, type ListsToRulesOptions } from '../../src/lists/index.ts';
import { FIXTURES } from './helpers.ts';

const CONFIG = `
version = 1
default = "direct"
[egress.dpi]
type = "socks5"
endpoint = "socks5://127.0.0.1:1080"
[egress.vpn]
type = "socks5"
endpoint = "socks5://127.0.0.1:1488"
[[rule]]
name = "config-rule"
egress = "direct"
domains = ["example.org"]
`;

const files: Record<string, string> = {
  '/lists/video.txt': '# video\nyoutube.com\ngooglevideo.com\nfull:www.example.org\n',
  '/lists/nrr.txt': '--- Domains\n*.telegram.org\nads.example.net +block\n--- IP\n149.154.160.0/20\n--- Linux\ntelegram-desktop\n',
  '/lists/ruleset.json': '{\n  "version": 3,\n  "rules": [\n    {\n      "domain_suffix": ["stream.example"],\n      "port": [443]\n    }\n  ]\n}\n',
};

async function build(defs: ListDef[], opts: ListsToRulesOptions = {}) {
  const base = loadConfigFromString(CONFIG, 'test.toml');
  const r = await listsToRules(defs, async (p) => files[p] ?? readFile(p), {
    startIndex: base.rules.length,
    egresses: new Set(Object.keys(base.egress)),
    ...opts,
  });
  assert.deepEqual(r.errors, []);
  const config: Config = { ...base, rules: [...base.rules, ...r.rules] };
  return { config, policy: compilePolicy(config), result: r };
}

test('decide() uses the list\'s egress; explain() names list, file and line', async () => {
  const { policy } = await build([
    { name: 'video', path: '/lists/video.txt', format: 'plain', egress: 'dpi' },
    { name: 'telegram', path: '/lists/nrr.txt', format: 'netrulerouter', egress: 'vpn' },
    { name: 'streams', path: '/lists/ruleset.json', format: 'singbox', egress: 'vpn' },
  ]);

  const d = policy.decide({ network: 'tcp', domain: 'r3---sn-abc.googlevideo.com' });
  assert.equal(d.egress, 'dpi');
  assert.equal(d.stage, 'domain');
  assert.deepEqual(d.rule?.origin, { list: 'video', file: '/lists/video.txt', line: 3 });

  const x = policy.explain({ network: 'tcp', domain: 'www.youtube.com' });
  assert.equal(x.egress, 'dpi');
  assert.deepEqual(x.rule?.origin, { list: 'video', file: '/lists/video.txt', line: 2 });
  assert.ok(x.matched.some((m) => m.condition === 'domain' && m.pattern.includes('youtube.com')));

  // full:www.example.org from the list is more specific than the config's example.org rule.
  const y = policy.explain({ network: 'tcp', domain: 'www.example.org' });
  assert.equal(y.egress, 'dpi');
  assert.deepEqual(y.rule?.origin, { list: 'video', file: '/lists/video.txt', line: 4 });
  assert.ok(y.candidates.some((c) => c.rule.id === 'config-rule'), 'the config rule is a losing candidate');
  assert.equal(policy.decide({ network: 'tcp', domain: 'mail.example.org' }).rule?.id, 'config-rule');

  // NetRuleRouter: suffix, +block, IP section, Linux app.
  assert.deepEqual(policy.decide({ network: 'tcp', domain: 'web.telegram.org' }).rule?.origin, { list: 'telegram', file: '/lists/nrr.txt', line: 2 });
  const blocked = policy.decide({ network: 'tcp', domain: 'ads.example.net' });
  assert.equal(blocked.egress, 'block');
  assert.deepEqual(blocked.rule?.origin, { list: 'telegram', file: '/lists/nrr.txt', line: 3 });
  const ip = policy.decide({ network: 'tcp', ip: '149.154.167.51', port: 443 });
  assert.equal(ip.egress, 'vpn');
  assert.deepEqual(ip.rule?.origin, { list: 'telegram', file: '/lists/nrr.txt', line: 5 });
  const app = policy.decide({ network: 'tcp', process: 'telegram-desktop', ip: '192.0.2.10' });
  assert.equal(app.egress, 'vpn');
  assert.deepEqual(app.rule?.origin, { list: 'telegram', file: '/lists/nrr.txt', line: 7 });

  // sing-box rule: domain AND port.
  const s = policy.decide({ network: 'tcp', domain: 'a.stream.example', port: 443 });
  assert.deepEqual([s.egress, s.rule?.origin], ['vpn', { list: 'streams', file: '/lists/ruleset.json', line: 5 }]);
  assert.equal(policy.decide({ network: 'tcp', domain: 'a.stream.example', port: 80 }).egress, 'direct', 'the port condition is kept');

  // Nothing matches: the default.
  assert.equal(policy.decide({ network: 'tcp', domain: 'unrelated.example' }).rule, null);
});

test('a v2fly include\'s entries name the included file and its line', async () => {
  const { policy } = await build([{ name: 'geo', path: join(FIXTURES, 'v2fly/main'), format: 'v2fly', egress: 'vpn' }]);
  assert.deepEqual(policy.decide({ network: 'tcp', domain: 'fonts.gstatic.com' }).rule?.origin, { list: 'geo', file: 'gstatic', line: 1 });
  assert.deepEqual(policy.decide({ network: 'tcp', domain: 'www.example.net' }).rule?.origin, { list: 'geo', file: join(FIXTURES, 'v2fly/main'), line: 6 });
  // include:ads @-skip left skipme.example.com out: it matches only main's domain:example.com (line 4).
  assert.deepEqual(policy.decide({ network: 'tcp', domain: 'skipme.example.com' }).rule?.origin, { list: 'geo', file: join(FIXTURES, 'v2fly/main'), line: 4 });
  assert.deepEqual(policy.decide({ network: 'tcp', domain: 'ads.example.com' }).rule?.origin, { list: 'geo', file: 'ads', line: 1 });
  assert.equal(policy.decide({ network: 'tcp', domain: 'x1.example.com' }).egress, 'vpn', 'regexp entry');
  assert.equal(policy.projectDomain('youtube.com').egress, 'direct');
});

test('granularity list: the engine decides the same; listOriginOf recovers the line of the match', async () => {
  const defs: ListDef[] = [
    { name: 'video', path: '/lists/video.txt', format: 'plain', egress: 'dpi' },
    { name: 'telegram', path: '/lists/nrr.txt', format: 'netrulerouter', egress: 'vpn' },
    { name: 'geo', path: join(FIXTURES, 'v2fly/main'), format: 'v2fly', egress: 'vpn' },
  ];
  const entry = await build(defs);
  const grouped = await build(defs, { granularity: 'list' });
  assert.ok(grouped.config.rules.length < entry.config.rules.length);
  const queries = [
    { network: 'tcp' as const, domain: 'r3---sn-abc.googlevideo.com' },
    { network: 'tcp' as const, domain: 'www.example.org' },
    { network: 'tcp' as const, domain: 'mail.example.org' },
    { network: 'tcp' as const, domain: 'web.telegram.org' },
    { network: 'tcp' as const, domain: 'ads.example.net' },
    { network: 'tcp' as const, ip: '149.154.167.51', port: 443 },
    { network: 'tcp' as const, process: 'telegram-desktop', ip: '192.0.2.10' },
    { network: 'tcp' as const, domain: 'fonts.gstatic.com' },
    { network: 'tcp' as const, domain: 'x1.example.com' },
    { network: 'tcp' as const, domain: 'unrelated.example' },
  ];
  for (const q of queries) {
    const a = entry.policy.explain(q);
    const b = grouped.policy.explain(q);
    assert.equal(b.egress, a.egress, JSON.stringify(q));
    assert.deepEqual(listOriginOf(grouped.result, b), listOriginOf(entry.result, a), `origin for ${JSON.stringify(q)}`);
  }
  const g = grouped.policy.explain({ network: 'tcp', domain: 'fonts.gstatic.com' });
  assert.deepEqual(g.rule?.origin, { list: 'geo', file: join(FIXTURES, 'v2fly/main') }, 'the grouped rule itself names the list only');
  assert.deepEqual(listOriginOf(grouped.result, g), { list: 'geo', file: 'gstatic', line: 1 });
  const ip = grouped.policy.explain({ network: 'tcp', ip: '149.154.167.51' });
  assert.deepEqual(listOriginOf(grouped.result, ip), { list: 'telegram', file: '/lists/nrr.txt', line: 5 });
});
