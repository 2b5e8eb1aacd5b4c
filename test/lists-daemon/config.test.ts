// `[[list]]` in config v1: the loader's checks name the key path and the line, the defaults are
// the documented ones, and configToToml writes lists back (the import path round-trips configs).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadConfigFromString, configToToml } from '../../src/policy/index.ts';
import { ConfigError } from '../../src/errors.ts';

const base = `version = 1
[egress.vpn]
type = "socks5"
endpoint = "socks5://127.0.0.1:1080"
`;

function errorOf(text: string): ConfigError {
  try {
    loadConfigFromString(text, 'test.toml');
  } catch (e) {
    assert.ok(e instanceof ConfigError, String(e));
    return e;
  }
  assert.fail('loaded a bad config');
}

test('a valid [[list]] normalises with its defaults and line', () => {
  const c = loadConfigFromString(`${base}
[[list]]
name = "yt"
url = "https://example.org/yt.list"
format = "v2fly"
egress = "vpn"
attrs = ["cn", "-ads"]
via = "vpn"
refresh = "30m"
sha256 = "${'AB'.repeat(32)}"

[[list]]
name = "local"
path = "lists/local.txt"
format = "netrulerouter"
egress = "direct"
granularity = "entry"
`, 'test.toml');
  assert.equal(c.lists?.length, 2);
  const [yt, local] = c.lists!;
  assert.deepEqual(
    { ...yt, line: yt!.line },
    { name: 'yt', path: null, url: 'https://example.org/yt.list', format: 'v2fly', egress: 'vpn', attrs: ['cn', '-ads'], unsupported: 'error', granularity: 'auto', sha256: 'ab'.repeat(32), maxBytes: null, via: 'vpn', refreshSeconds: 1800, line: 6 },
  );
  assert.equal(local!.line, 16);
  assert.equal(local!.granularity, 'entry');
  assert.equal(local!.refreshSeconds, 6 * 3600);
  // Written back and read again: the same lists.
  const again = loadConfigFromString(configToToml(c), 'again.toml');
  assert.deepEqual(again.lists!.map(({ line: _l, ...l }) => l), c.lists!.map(({ line: _l, ...l }) => l));
});

const cases: [string, string, RegExp][] = [
  ['no source', `[[list]]\nname = "a"\nformat = "plain"\negress = "direct"\n`, /test\.toml:6: list\[0\]: give exactly one of path and url/],
  ['both sources', `[[list]]\nname = "a"\npath = "x"\nurl = "https://e.org/x"\nformat = "plain"\negress = "direct"\n`, /test\.toml:6: list\[0\]: give exactly one/],
  ['http url', `[[list]]\nname = "a"\nurl = "http://e.org/x"\nformat = "plain"\negress = "direct"\n`, /test\.toml:8: list\[0\]\.url: a list url must be https/],
  ['unknown format', `[[list]]\nname = "a"\npath = "x"\nformat = "hosts"\negress = "direct"\n`, /test\.toml:9: list\[0\]\.format: /],
  ['undeclared egress', `[[list]]\nname = "a"\npath = "x"\nformat = "plain"\negress = "tor"\n`, /test\.toml:10: list\[0\]\.egress: egress 'tor' is not declared/],
  ['undeclared via', `[[list]]\nname = "a"\nurl = "https://e.org/x"\nformat = "plain"\negress = "vpn"\nvia = "tor"\n`, /test\.toml:11: list\[0\]\.via: egress 'tor' is not declared/],
  ['url key on a path list', `[[list]]\nname = "a"\npath = "x"\nformat = "plain"\negress = "vpn"\nsha256 = "00"\n`, /test\.toml:11: list\[0\]\.sha256: sha256 applies to url lists only/],
  ['bad sha256', `[[list]]\nname = "a"\nurl = "https://e.org/x"\nformat = "plain"\negress = "vpn"\nsha256 = "xyz"\n`, /test\.toml:11: list\[0\]\.sha256: sha256 is 64 hex digits/],
  ['attrs on plain', `[[list]]\nname = "a"\npath = "x"\nformat = "plain"\negress = "vpn"\nattrs = ["cn"]\n`, /list\[0\]\.attrs: attrs filters v2fly attributes/],
  ['bad refresh', `[[list]]\nname = "a"\nurl = "https://e.org/x"\nformat = "plain"\negress = "vpn"\nrefresh = "soon"\n`, /test\.toml:11: list\[0\]\.refresh: 'soon' is not an interval/],
  ['unknown key', `[[list]]\nname = "a"\npath = "x"\nformat = "plain"\negress = "vpn"\ncolour = "red"\n`, /list\[0\]/],
  ['duplicate name', `[[list]]\nname = "a"\npath = "x"\nformat = "plain"\negress = "vpn"\n\n[[list]]\nname = "a"\npath = "y"\nformat = "plain"\negress = "vpn"\n`, /test\.toml:13: list\[1\]\.name: list name 'a' is already used by list\[0\]/],
  ['bad name', `[[list]]\nname = "a b"\npath = "x"\nformat = "plain"\negress = "vpn"\n`, /test\.toml:7: list\[0\]\.name: list name 'a b' must be/],
  ['wrong type', `[[list]]\nname = "a"\npath = "x"\nformat = "plain"\negress = "vpn"\nmax_bytes = "big"\n`, /list\[0\]\.max_bytes/],
];

for (const [what, toml, want] of cases) {
  test(`[[list]] error: ${what} — names key path and line`, () => {
    const e = errorOf(`${base}\n${toml}`);
    assert.match(e.message, want);
  });
}

test('fail closed (no trusted revision) runs no list rules either', async () => {
  const { blockAll } = await import('../../src/daemon/revisions.ts');
  const c = loadConfigFromString(`${base}\n[[list]]\nname = "a"\npath = "x"\nformat = "plain"\negress = "direct"\n`, 'test.toml');
  const b = blockAll(c);
  assert.equal(b.default, 'block');
  assert.deepEqual([b.rules, b.lists], [[], []]);
});
