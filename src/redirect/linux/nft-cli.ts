// Runs the `nft` program for whole-table transactions and read-back. nft resolves the path in
// `socket cgroupv2 level N "path"` under /sys/fs/cgroup when it parses the rule (the kernel keeps
// only the cgroup's id). On a hybrid host cgroup2 lives at /sys/fs/cgroup/unified, so nft runs in
// a private mount namespace where the cgroup2 hierarchy is bind-mounted at /sys/fs/cgroup; the
// host's mounts are untouched (propagation private). Listing runs the same way so that nft prints
// paths, not ids.
import { spawn } from 'node:child_process';
import { RedirectError } from '../../errors.ts';
import type { Cgroup2Mount } from './cgroup-mount.ts';
import { TABLE_REF } from './nft-script.ts';

export interface NftResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface NftRunner {
  /** Runs nft with args (and the script on stdin when given). */
  run(args: string[], stdin?: string): Promise<NftResult>;
  /** How nft is run, for messages. */
  readonly describe: string;
}

function spawnCollect(cmd: string, args: string[], stdin: string | undefined): Promise<NftResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', (e) => reject(new RedirectError('SY_ERR_REDIRECT_NFT', `cannot run ${cmd}: ${e.message}`, e)));
    child.on('close', (code, signal) =>
      resolve({ code: code ?? (signal ? 128 : 1), stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') }),
    );
    child.stdin.on('error', () => {}); // nft may exit before reading everything; its exit code tells.
    child.stdin.end(stdin ?? '');
  });
}

export function nftRunner(mount: Cgroup2Mount, nftBin = 'nft'): NftRunner {
  if (mount.mountPoint === '/sys/fs/cgroup') {
    return { describe: nftBin, run: (args, stdin) => spawnCollect(nftBin, args, stdin) };
  }
  // Hybrid layout: `unshare --mount` makes a private copy of the mount table (propagation private
  // by default), `mount --bind` puts cgroup2 where nft looks, then nft runs there.
  const script = 'mount --bind "$0" /sys/fs/cgroup || exit 97; exec "$@"';
  return {
    describe: `unshare --mount (cgroup2 ${mount.mountPoint} bound at /sys/fs/cgroup) ${nftBin}`,
    run: async (args, stdin) => {
      const r = await spawnCollect('unshare', ['--mount', '--propagation', 'private', '--', 'sh', '-c', script, mount.mountPoint, nftBin, ...args], stdin);
      if (r.code === 97) {
        throw new RedirectError(
          'SY_ERR_REDIRECT_CGROUP',
          `hybrid cgroup layout: cannot bind-mount ${mount.mountPoint} at /sys/fs/cgroup in a private mount namespace: ${r.stderr.trim()}`,
        );
      }
      return r;
    },
  };
}

// ---------------------------------------------------------------- read-back

export interface ListedSet {
  name: string;
  type: string;
  flags: string[];
  elements: { value: string; timeout?: number; expires?: number }[];
}

export interface ListedRule {
  chain: string;
  /** Right-hand values of `socket cgroupv2` matches: a path, or a bare id when the path is gone. */
  cgroupv2: string[];
}

export interface ListedTable {
  sets: Map<string, ListedSet>;
  chains: Map<string, { hook?: string; type?: string; prio?: number }>;
  rules: ListedRule[];
}

type Json = Record<string, unknown>;
const isObj = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Walks an expression tree for `{match: {left: {socket: {key: 'cgroupv2'}}, right}}`. */
function collectCgroups(expr: unknown, out: string[]): void {
  if (Array.isArray(expr)) {
    for (const e of expr) collectCgroups(e, out);
    return;
  }
  if (!isObj(expr)) return;
  const m = expr['match'];
  if (isObj(m) && isObj(m['left']) && isObj(m['left']['socket']) && m['left']['socket']['key'] === 'cgroupv2') {
    out.push(String(m['right']));
  }
  for (const v of Object.values(expr)) collectCgroups(v, out);
}

function elemValue(e: unknown): { value: string; timeout?: number; expires?: number } | null {
  if (typeof e === 'string') return { value: e };
  if (!isObj(e)) return null;
  const inner = e['elem'];
  if (isObj(inner)) {
    const v = inner['val'];
    if (typeof v !== 'string') return null;
    const r: { value: string; timeout?: number; expires?: number } = { value: v };
    if (typeof inner['timeout'] === 'number') r.timeout = inner['timeout'];
    if (typeof inner['expires'] === 'number') r.expires = inner['expires'];
    return r;
  }
  if (isObj(e['prefix'])) {
    const p = e['prefix'];
    return { value: `${String(p['addr'])}/${String(p['len'])}` };
  }
  return null;
}

/** Parses `nft -j list table inet switchyard` output (our own table: anything odd is an error). */
export function parseListedTable(text: string): ListedTable {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new RedirectError('SY_ERR_REDIRECT_VERIFY', 'nft -j output is not JSON', err);
  }
  if (!isObj(doc) || !Array.isArray(doc['nftables'])) throw new RedirectError('SY_ERR_REDIRECT_VERIFY', 'nft -j output lacks the nftables array');
  const t: ListedTable = { sets: new Map(), chains: new Map(), rules: [] };
  for (const item of doc['nftables'] as unknown[]) {
    if (!isObj(item)) continue;
    const set = item['set'];
    if (isObj(set) && typeof set['name'] === 'string') {
      const elems = Array.isArray(set['elem']) ? (set['elem'] as unknown[]).map(elemValue).filter((x) => x !== null) : [];
      t.sets.set(set['name'], {
        name: set['name'],
        type: String(set['type']),
        flags: Array.isArray(set['flags']) ? (set['flags'] as unknown[]).map(String) : [],
        elements: elems,
      });
    }
    const chain = item['chain'];
    if (isObj(chain) && typeof chain['name'] === 'string') {
      const c: { hook?: string; type?: string; prio?: number } = {};
      if (typeof chain['hook'] === 'string') c.hook = chain['hook'];
      if (typeof chain['type'] === 'string') c.type = chain['type'];
      if (typeof chain['prio'] === 'number') c.prio = chain['prio'];
      t.chains.set(chain['name'], c);
    }
    const rule = item['rule'];
    if (isObj(rule) && typeof rule['chain'] === 'string') {
      const cg: string[] = [];
      collectCgroups(rule['expr'], cg);
      t.rules.push({ chain: rule['chain'], cgroupv2: cg });
    }
  }
  return t;
}

/** Lists our table; null when it does not exist. */
export async function listTable(runner: NftRunner): Promise<{ json: ListedTable; text: string } | null> {
  const j = await runner.run(['-j', 'list', 'table', ...TABLE_REF.split(' ')]);
  if (j.code !== 0) {
    if (/No such file or directory|does not exist/i.test(j.stderr)) return null;
    throw new RedirectError('SY_ERR_REDIRECT_NFT', `nft list table ${TABLE_REF} failed: ${j.stderr.trim()}`);
  }
  const t = await runner.run(['list', 'table', ...TABLE_REF.split(' ')]);
  return { json: parseListedTable(j.stdout), text: t.code === 0 ? t.stdout : '' };
}

/** Runs a script as one transaction; throws with nft's message when refused. */
export async function runScript(runner: NftRunner, script: string): Promise<void> {
  const r = await runner.run(['-f', '-'], script);
  if (r.code !== 0) throw new RedirectError('SY_ERR_REDIRECT_NFT', `nft -f refused the ruleset (${runner.describe}): ${r.stderr.trim()}`);
}

export async function deleteTable(runner: NftRunner): Promise<boolean> {
  const r = await runner.run(['delete', 'table', ...TABLE_REF.split(' ')]);
  if (r.code === 0) return true;
  if (/No such file or directory|does not exist/i.test(r.stderr)) return false;
  throw new RedirectError('SY_ERR_REDIRECT_NFT', `nft delete table ${TABLE_REF} failed: ${r.stderr.trim()}`);
}
