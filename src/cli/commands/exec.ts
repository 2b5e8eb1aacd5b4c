// `switchyard exec --egress NAME -- CMD [ARGS...]`: runs a program inside an egress group from its
// first instruction (no watcher window). Needs the group to exist (switchyard enforcing) and the
// right to write its cgroup.procs (root, or a delegated cgroup).
import { spawn } from 'node:child_process';
import { UsageError, RedirectError } from '../../errors.ts';
import { createRedirectBackend } from '../../redirect/index.ts';

export const summary = 'run a program inside an egress group (its connections take that egress)';

const HELP = `usage: switchyard exec --egress NAME -- CMD [ARGS...]

Runs CMD inside the OS group of egress NAME (Linux: cgroup switchyard/egress-NAME), so its TCP
connections go through the front door for that group from the very first one. Use --egress exempt
to run a program that is never redirected. Exits with CMD's exit code.

options:
  --egress NAME   the egress group (required)
  --help          this text

environment:
  SWITCHYARD_CGROUP_ROOT   cgroup root of switchyard's groups (default: switchyard; for tests)
`;

export function parseExecArgs(argv: string[]): { egress: string; command: string[] } | 'help' {
  let egress: string | undefined;
  let i = 0;
  for (; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      i++;
      break;
    }
    if (a === '--help' || a === '-h') return 'help';
    if (a === '--egress') {
      egress = argv[++i];
      if (egress === undefined) throw new UsageError('--egress needs a name');
    } else if (a.startsWith('--egress=')) egress = a.slice('--egress='.length);
    else if (a.startsWith('-')) throw new UsageError(`exec: unknown option '${a}' (the command goes after --)`);
    else break; // the command, without --
  }
  const command = argv.slice(i);
  if (!egress) throw new UsageError('exec: --egress NAME is required');
  if (command.length === 0) throw new UsageError('exec: no command given (switchyard exec --egress NAME -- CMD)');
  return { egress, command };
}

export async function run(argv: string[]): Promise<number> {
  const args = parseExecArgs(argv);
  if (args === 'help') {
    process.stdout.write(HELP);
    return 0;
  }
  const root = process.env['SWITCHYARD_CGROUP_ROOT'];
  const backend = await createRedirectBackend(root ? { linux: { cgroupRoot: root } } : {});
  const wrapped = backend.commandInGroup(args.egress, args.command);
  await backend.close();
  const child = spawn(wrapped[0]!, wrapped.slice(1), { stdio: 'inherit' });
  // The child is the program itself; pass on the signals a terminal or supervisor sends us.
  const forward = (sig: NodeJS.Signals) => () => child.kill(sig);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, forward(sig));
  return new Promise((resolve, reject) => {
    child.on('error', (e) => reject(new RedirectError('SY_ERR_REDIRECT_CGROUP', `cannot start ${wrapped[0]}: ${e.message}`, e)));
    child.on('close', (code, signal) => {
      if (code === 96) reject(new RedirectError('SY_ERR_REDIRECT_CGROUP', `cannot join group '${args.egress}' (writing its cgroup.procs needs root or a delegated cgroup)`));
      else resolve(code ?? (signal ? 128 + (signalNumber(signal) ?? 0) : 1));
    });
  });
}

function signalNumber(sig: NodeJS.Signals): number | undefined {
  return ({ SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGTERM: 15 } as Record<string, number>)[sig];
}
