// The WinDivert reflection wired into the daemon, in-process on Linux (fixtures/reflection-daemon.ts,
// inside `unshare --net`): the Daemon with the Windows backend binds its transparent listeners on the
// interface address the reflection chose, the reflection classifies with the live policy, a stub
// WinDivert loop replays captured SYNs and CONNECT events, scapy checks the packets that would be
// sent, and real TCP clients standing in for the reflected packets reach a server through the
// `proxy` egress (microsocks, bound to its own address) — or are reset without a NAT entry. What is
// not here: koffi and the real WinDivert.dll calls (the Diverter loop under Wine is wine.test.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { tempDir } from '../helpers/daemon.ts';
import { scapyMissing } from './helpers/scapy.ts';

const FIXTURE = fileURLToPath(new URL('./fixtures/reflection-daemon.ts', import.meta.url));

function have(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

function missing(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (unshare --net)';
  for (const c of ['unshare', 'ip', 'microsocks']) if (!have(c)) return `needs ${c}`;
  return scapyMissing();
}

interface Pkt {
  src: string;
  dst: string;
  sport: number;
  dport: number;
  flags: string;
  ip_chksum_ok: boolean;
  tcp_chksum_ok: boolean;
  outbound: boolean;
}

test('daemon + Windows backend + reflection: listeners on the interface address, selected/captured reflected, own/exempt/unselected passed, strangers reset, re-bind on address change', (t) => {
  const why = missing();
  if (why) return t.skip(why);
  const dir = tempDir('sy-winx-');
  try {
    const p = spawnSync('unshare', ['--net', process.execPath, '--import', 'tsx', FIXTURE], {
      env: { ...process.env, SY_TEST_DIR: dir },
      encoding: 'utf8',
      timeout: 40_000,
    });
    const line = p.stdout.trim().split('\n').pop() ?? '';
    let r: Record<string, any>;
    try {
      r = JSON.parse(line);
    } catch {
      assert.fail(`fixture printed no result (status ${p.status}): ${p.stdout.slice(-500)} ${p.stderr.slice(-1500)}`);
    }
    t.diagnostic(JSON.stringify({ arrivals: r['arrivals'], dropped: r['oldAddress']?.dropped }));
    assert.equal(r['fatal'], undefined, r['fatal']);
    const IF1 = '198.18.0.10';
    const IF2 = '198.18.0.20';
    // Listeners on the chosen interface address, not 127.0.0.1; WFP applied, the loop started.
    assert.deepEqual(r['bound'], [{ group: 'proxy', addrs: [IF1] }, { group: null, addrs: [IF1] }]);
    assert.equal(r['status'], 'active');
    assert.ok(r['wfpFilters'] > 0);
    assert.deepEqual(r['loop'], { started: 1, stopped: 0 });

    const reflected = (out: Pkt[], src: string, sport: number, dst: string, dport: number) => {
      assert.equal(out.length, 1);
      const o = out[0]!;
      assert.deepEqual([o.src, o.sport, o.dst, o.dport, o.flags, o.outbound], [src, sport, dst, dport, 'S', false]);
      assert.ok(o.ip_chksum_ok && o.tcp_chksum_ok, 'checksums (scapy)');
    };
    const passed = (out: Pkt[], src: string, sport: number) => {
      assert.equal(out.length, 1);
      assert.deepEqual([out[0]!.src, out[0]!.sport, out[0]!.outbound], [src, sport, true], 'sent back unchanged, outbound');
    };
    // Selected app (zen.exe by PID): held until its CONNECT event, then reflected to the proxy listener.
    assert.equal(r['selected'].held, 0);
    reflected(r['selected'].out, '198.19.7.7', 50001, IF1, r['selected'].proxyPort);
    // Through the front door and the proxy egress: the server saw microsocks' bind address.
    assert.equal(r['selectedFlow'], 'from 198.18.0.30');
    // createFlowIdentity('windows', { backend }) reads the same NAT table.
    assert.deepEqual(r['prodIdentity'], { origDst: { address: '198.19.7.7', port: 8443, family: 4 }, group: 'proxy' });
    // No NAT entry: reset, and the (directly reachable) server saw nothing.
    assert.match(r['stranger'], /ECONNRESET|closed without data/);
    assert.equal(r['strangerArrivals'], 0);
    passed(r['unselected'], IF1, 50003);
    reflected(r['captured'].out, '198.19.7.8', 50004, IF1, r['captured'].capturedPort);
    passed(r['directBinding'], IF1, 50005);
    passed(r['own'], IF1, 50006);
    passed(r['exempt'], IF1, 50007);
    // Address change: re-bound, reflected to the new listener, the old address fails closed.
    assert.deepEqual(r['rebound'], [{ group: 'proxy', addrs: [IF2] }, { group: null, addrs: [IF2] }]);
    reflected(r['afterRebind'].out, '198.19.7.7', 50010, IF2, r['afterRebind'].proxyPort);
    assert.equal(r['afterRebindFlow'], 'from 198.18.0.30');
    assert.equal(r['oldAddress'].out, 0);
    assert.equal(r['oldAddress'].dropped['source-not-listener-address'], 1);
    assert.deepEqual(r['arrivals'], ['198.18.0.30', '198.18.0.30']);
    // stop: the loop is stopped and WFP's dynamic permits are gone.
    assert.equal(r['stopError'], undefined);
    assert.deepEqual(r['loopAfterStop'], { started: 1, stopped: 1 });
    assert.equal(r['wfpAfterStop'].dynamic, 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
