// `switchyard down`: removes everything switchyard put into the OS — the nft table, the cgroups
// (processes go back to their original cgroup when the state file says where, else to the parent
// of switchyard's root). Works without a daemon and without a state file, by the fixed
// identifiers in src/ids.ts: this is the crash cleanup.
import { UsageError } from '../../errors.ts';
import { createRedirectBackend } from '../../redirect/index.ts';

export const summary = 'remove the firewall table and groups (undo enforcement; crash cleanup)';

const HELP = `usage: switchyard down [--format text|json]

Removes switchyard's OS state: on Linux the nft table inet switchyard and the cgroups under
switchyard/ (processes are moved back to where they were). Safe to run when nothing is installed.

options:
  --format text|json   output format (default text)
  --help               this text
`;

export async function run(argv: string[]): Promise<number> {
  let format = 'text';
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--help' || a === '-h') {
      process.stdout.write(HELP);
      return 0;
    }
    if (a === '--format') format = argv[++i] ?? '';
    else if (a.startsWith('--format=')) format = a.slice(9);
    else throw new UsageError(`down: unknown argument '${a}'`);
  }
  if (format !== 'text' && format !== 'json') throw new UsageError(`down: --format must be text or json`);
  const root = process.env['SWITCHYARD_CGROUP_ROOT'];
  const backend = await createRedirectBackend(root ? { linux: { cgroupRoot: root } } : {});
  const before = await backend.status();
  await backend.down();
  await backend.close();
  // `dns system on` is undone by down too (nothing happens when it was never on).
  let dnsRestored: string | null = null;
  if (backend.os === 'linux') {
    const { systemDnsOff } = await import('../../redirect/linux/system-dns.ts');
    const { systemDnsOptions } = await import('../dns-system/linux.ts');
    dnsRestored = systemDnsOff(systemDnsOptions())?.path ?? null;
  }
  const moved = before.groups.reduce((n, g) => n + g.pids.length, 0);
  if (format === 'json') {
    process.stdout.write(JSON.stringify({ os: backend.os, table: before.state !== 'absent' ? 'removed' : 'absent', groups: before.groups.map((g) => g.name), processesRestored: moved, systemDnsRestored: dnsRestored }) + '\n');
  } else {
    process.stdout.write(
      `${before.state !== 'absent' ? 'removed the firewall table' : 'no firewall table was installed'}; ` +
        `${before.groups.length > 0 ? `removed ${before.groups.length} group(s), ${moved} process(es) moved back` : 'no groups'}` +
        `${dnsRestored ? `; restored ${dnsRestored}` : ''}\n`,
    );
  }
  return 0;
}
