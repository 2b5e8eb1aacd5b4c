// `switchyard up`: runs the daemon in the foreground until SIGINT/SIGTERM or `switchyard stop`.
import { Daemon } from '../../daemon/daemon.ts';
import { createLogger } from '../../log.ts';
import { parseCommandArgs } from '../args.ts';

export const summary = 'run the daemon (DNS forwarder, proxy, enforcement, control socket) in the foreground';

const HELP = `usage: switchyard up [--config FILE] [--log-level LEVEL] [--no-watch]

Runs the daemon until SIGINT/SIGTERM or \`switchyard stop\`. Without --config the embedded default
runs: unprivileged, DNS on 127.0.0.1:1053, SOCKS5 + HTTP proxy on 127.0.0.1:7890, enforcement off.
With --config the file is watched: a change is validated and applied (an invalid one is refused
and the running policy stays). Logs go to stderr: JSON, or one readable line per record on a
terminal.

  --config FILE       config file (v1 TOML, or a policy-router-rs config)
  --log-level LEVEL   trace, debug, info (default; no names or addresses), warn, error, fatal,
                      silent; SWITCHYARD_LOG sets it too
  --no-watch          do not watch the config file (\`switchyard reload\` still works)
`;

export async function run(argv: string[]): Promise<number> {
  const { values } = parseCommandArgs(
    argv,
    { config: { type: 'string' }, 'log-level': { type: 'string' }, 'no-watch': { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
    false,
  );
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const log = createLogger({ level: values['log-level'], component: 'daemon' });
  // SWITCHYARD_CGROUP_ROOT: the same override `switchyard down` honours (tests use a per-run root).
  const cgroupRoot = process.env['SWITCHYARD_CGROUP_ROOT'];
  // SWITCHYARD_REPAIR_MS: interval of the OS-state check while enforcing (tests shorten it).
  const connectorNetns = process.env['SWITCHYARD_PROC_CONNECTOR_NETNS'];
  const repairMs = Number(process.env['SWITCHYARD_REPAIR_MS'] ?? '');
  const daemon = new Daemon({
    configPath: values.config ?? null,
    log,
    watch: !values['no-watch'],
    // SWITCHYARD_PROC_CONNECTOR_NETNS: tests that run the daemon in their own network namespace
    // let the watcher open the proc connector in the initial one (docs/linux.md).
    ...(cgroupRoot || connectorNetns ? { backend: { linux: { ...(cgroupRoot ? { cgroupRoot } : {}), ...(connectorNetns ? { connectorNetns } : {}) } } } : {}),
    ...(Number.isFinite(repairMs) && repairMs > 0 ? { repairIntervalMs: repairMs } : {}),
  });
  const onSignal = (sig: NodeJS.Signals) => void daemon.stop(sig);
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    await daemon.start();
    await daemon.done;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  // Everything is released; should a stray handle remain, it must not keep a stopped daemon alive.
  setTimeout(() => process.exit(process.exitCode ?? 0), 2000).unref();
  return 0;
}
