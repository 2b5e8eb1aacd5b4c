// `switchyard dns system on|off` on Linux: makes switchyard the system resolver and undoes it
// exactly. With systemd-resolved running (its varlink socket exists) a drop-in
// (/etc/systemd/resolved.conf.d/switchyard.conf: DNS=switchyard, Domains=~.) is written and
// resolved restarted; otherwise /etc/resolv.conf is replaced. What was there is saved first — the
// file's bytes and mode, or the symlink's target — in <state dir>/system-dns.json and put back by
// `off` (and by `down`). A symlink to a target we do not know is refused: we could not say what
// restoring it means. Every path is under `root` so tests run in a temporary directory.
import { chmodSync, existsSync, lstatSync, mkdirSync, readFileSync, readlinkSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { RedirectError } from '../../errors.ts';

export const MARKER = '# written by switchyard (`switchyard dns system on`); `switchyard dns system off` or `down` restores the previous file';
const RECORD = 'system-dns.json';
const DROPIN = 'etc/systemd/resolved.conf.d/switchyard.conf';
const RESOLV = 'etc/resolv.conf';
/** Symlink targets of resolv.conf that we know how to put back (resolved, resolvconf, NetworkManager). */
const KNOWN_LINKS = [
  /^(\.\.)?\/run\/systemd\/resolve\/(stub-)?resolv\.conf$/,
  /^(\.\.)?\/run\/resolvconf\/resolv\.conf$/,
  /^(\.\.)?\/run\/NetworkManager\/(no-stub-)?resolv\.conf$/,
  /^(\.\.\/)?(\.\.)?\/?usr\/lib\/systemd\/resolv\.conf$/,
];

export interface SystemDnsOptions {
  /** Filesystem root (default `/`; tests pass a temporary directory). */
  root?: string;
  /** Where the record of what was there is kept. */
  stateDir: string;
  /** Is systemd-resolved running? Default: its varlink socket exists under root. */
  resolvedActive?: () => boolean;
  /** Makes resolved read its config again. Default: systemctl restart (only when root is `/`). */
  restartResolved?: () => void;
}

type Original = { kind: 'absent' } | { kind: 'file'; content: string; mode: number } | { kind: 'symlink'; target: string };

interface Record {
  version: 1;
  method: 'resolved' | 'resolv.conf';
  path: string;
  original: Original;
  written: string;
}

export interface SystemDnsResult {
  method: 'resolved' | 'resolv.conf';
  path: string;
  changed: boolean;
}

const err = (m: string) => new RedirectError('SY_ERR_REDIRECT_SYSTEM_DNS', m);

function defaults(o: SystemDnsOptions) {
  const root = o.root ?? '/';
  return {
    root,
    record: join(o.stateDir, RECORD),
    resolvedActive: o.resolvedActive ?? (() => existsSync(join(root, 'run/systemd/resolve/io.systemd.Resolve'))),
    restart:
      o.restartResolved ??
      (() => {
        if (root !== '/') return;
        const r = spawnSync('systemctl', ['restart', 'systemd-resolved'], { encoding: 'utf8' });
        if (r.status !== 0) throw err(`systemctl restart systemd-resolved failed: ${(r.stderr ?? '').trim() || r.error?.message}`);
      }),
  };
}

function readOriginal(path: string): Original {
  let st;
  try {
    st = lstatSync(path);
  } catch {
    return { kind: 'absent' };
  }
  if (st.isSymbolicLink()) return { kind: 'symlink', target: readlinkSync(path) };
  if (!st.isFile()) throw err(`${path} is neither a file nor a symlink; not touching it`);
  return { kind: 'file', content: readFileSync(path).toString('base64'), mode: st.mode & 0o7777 };
}

function atomicWrite(path: string, text: string | Buffer, mode: number): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.switchyard-${process.pid}.tmp`;
  writeFileSync(tmp, text, { mode });
  chmodSync(tmp, mode);
  // rename replaces a symlink itself, never the file it points to.
  renameSync(tmp, path);
}

function restore(path: string, o: Original): void {
  if (o.kind === 'absent') rmSync(path, { force: true });
  else if (o.kind === 'file') atomicWrite(path, Buffer.from(o.content, 'base64'), o.mode);
  else {
    rmSync(path, { force: true });
    symlinkSync(o.target, path);
  }
}

/** Points the system at switchyard's DNS listener `address:port`. Idempotent while on. */
export function systemDnsOn(opts: SystemDnsOptions, address: string, port: number): SystemDnsResult {
  const d = defaults(opts);
  if (existsSync(d.record)) {
    const rec = JSON.parse(readFileSync(d.record, 'utf8')) as Record;
    return { method: rec.method, path: rec.path, changed: false };
  }
  const resolved = d.resolvedActive();
  const path = join(d.root, resolved ? DROPIN : RESOLV);
  const original = readOriginal(path);
  let text: string;
  if (resolved) {
    const host = address.includes(':') ? `[${address}]` : address;
    text = `${MARKER}\n[Resolve]\nDNS=${port === 53 ? address : `${host}:${port}`}\nDomains=~.\n`;
  } else {
    if (port !== 53) {
      throw err(`resolv.conf cannot name a port and switchyard's DNS listens on ${port}: listen on port 53, or (with enforcement on, which redirects port 53 to the forwarder) pass --address ${address}:53`);
    }
    if (original.kind === 'symlink' && !KNOWN_LINKS.some((re) => re.test(original.target))) {
      throw err(`${path} is a symlink to ${original.target}, which switchyard does not know how to restore; change it by hand`);
    }
    text = `${MARKER}\nnameserver ${address}\noptions edns0 trust-ad\n`;
  }
  const rec: Record = { version: 1, method: resolved ? 'resolved' : 'resolv.conf', path, original, written: text };
  // The record first: should writing fail half-way, `off` still knows what to put back.
  mkdirSync(dirname(d.record), { recursive: true, mode: 0o700 });
  writeFileSync(d.record, JSON.stringify(rec), { mode: 0o600 });
  try {
    atomicWrite(path, text, 0o644);
    if (resolved) d.restart();
  } catch (e) {
    try {
      restore(path, original);
    } catch {}
    rmSync(d.record, { force: true });
    throw e instanceof RedirectError ? e : err(`cannot write ${path}: ${(e as Error).message}`);
  }
  return { method: rec.method, path, changed: true };
}

/** Puts back what `on` replaced. Refuses (and changes nothing) when someone else changed the file since. */
export function systemDnsOff(opts: SystemDnsOptions): SystemDnsResult | null {
  const d = defaults(opts);
  if (!existsSync(d.record)) return null;
  const rec = JSON.parse(readFileSync(d.record, 'utf8')) as Record;
  let now: string | null = null;
  try {
    if (!lstatSync(rec.path).isSymbolicLink() && statSync(rec.path).isFile()) now = readFileSync(rec.path, 'utf8');
  } catch {}
  if (now !== rec.written) {
    throw err(`${rec.path} was changed since \`dns system on\`; not overwriting it. Restore it by hand and remove ${d.record}`);
  }
  restore(rec.path, rec.original);
  if (rec.method === 'resolved') d.restart();
  rmSync(d.record, { force: true });
  return { method: rec.method, path: rec.path, changed: true };
}
