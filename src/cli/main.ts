// `switchyard` command dispatcher. Each command lives in src/cli/commands/<name>.ts and exports
// `run(argv): Promise<number>` (the exit code) and a one-line `summary`.
import { SwitchyardError, UsageError, isSwitchyardError } from '../errors.ts';

interface CommandModule {
  summary: string;
  run(argv: string[]): Promise<number>;
}

// One line per command; loaded lazily so `switchyard explain` does not load the daemon.
const COMMANDS: Record<string, () => Promise<CommandModule>> = {
  version: () => import('./commands/version.ts'),
  explain: () => import('./client-explain.ts'), // live wrapper around commands/explain.ts (daemon)
  'check-config': () => import('./commands/check-config.ts'),
  config: () => import('./commands/config.ts'),
  up: () => import('./commands/up.ts'),
  status: () => import('./commands/status.ts'),
  reload: () => import('./commands/reload.ts'),
  stop: () => import('./commands/stop.ts'),
  conns: () => import('./commands/conns.ts'),
  close: () => import('./commands/close.ts'),
  rdns: () => import('./commands/rdns.ts'),
  cache: () => import('./commands/cache.ts'),
  egress: () => import('./commands/egress.ts'),
  rules: () => import('./commands/rules.ts'),
  service: () => import('./commands/service.ts'),
  exec: () => import('./commands/exec.ts'),
  down: () => import('./commands/down.ts'),
  enforce: () => import('./commands/enforce.ts'),
  dns: () => import('./commands/dns.ts'),
  lists: () => import('./commands/lists.ts'),
  revisions: () => import('./commands/revisions.ts'),
  diff: () => import('./commands/diff.ts'),
  approve: () => import('./commands/approve.ts'),
  reject: () => import('./commands/reject.ts'),
  rollback: () => import('./commands/rollback.ts'),
  alerts: () => import('./commands/alerts.ts'),
  audit: () => import('./commands/audit.ts'),
  import: () => import('./commands/import.ts'),
};

function usage(): string {
  const lines = ['usage: switchyard <command> [options]', '', 'commands:'];
  return lines.join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  try {
    if (cmd === undefined || cmd === '--help' || cmd === '-h' || cmd === 'help') {
      const out = [usage()];
      for (const [name, load] of Object.entries(COMMANDS)) out.push(`  ${name.padEnd(14)} ${(await load()).summary}`);
      out.push('', 'Run `switchyard <command> --help` for its options.');
      process.stdout.write(out.join('\n') + '\n');
      return cmd === undefined ? 2 : 0;
    }
    const load = COMMANDS[cmd];
    if (!load) throw new UsageError(`unknown command '${cmd}' (try: switchyard --help)`);
    return await (await load()).run(rest);
  } catch (err) {
    return reportError(err, rest.includes('json'));
  }
}

/** Prints an error the way scripts can rely on: `code: message` on stderr, or JSON with --format json. */
export function reportError(err: unknown, json: boolean): number {
  const e: SwitchyardError = isSwitchyardError(err)
    ? err
    : new SwitchyardError('SY_ERR_INTERNAL', err instanceof Error ? (err.stack ?? err.message) : String(err));
  if (json) {
    process.stdout.write(JSON.stringify({ error: { code: e.code, message: e.message } }) + '\n');
  } else {
    process.stderr.write(`switchyard: ${e.code}: ${e.message}\n`);
  }
  return e.exitCode;
}
