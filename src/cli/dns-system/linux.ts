// `switchyard dns system on|off`: makes switchyard the system resolver (Linux: systemd-resolved
// drop-in or resolv.conf) and puts back exactly what was there. `down` undoes it too.
import { loadConfigFile } from '../../config-file.ts';
import { UsageError } from '../../errors.ts';
import { resolvePaths } from '../../paths.ts';
import { defaultConfig } from '../../policy/index.ts';
import { systemDnsOff, systemDnsOn } from '../../redirect/linux/system-dns.ts';
import { parseCommandArgs } from '../args.ts';



const HELP = `usage: switchyard dns system on [--config FILE | --address HOST:PORT]
       switchyard dns system off

on    with systemd-resolved running: writes /etc/systemd/resolved.conf.d/switchyard.conf
      (DNS=HOST:PORT, Domains=~.) and restarts resolved; otherwise replaces /etc/resolv.conf
      (nameserver HOST; resolv.conf cannot name a port, so the listener must be on 53 — with
      enforcement on, port-53 traffic is redirected to the forwarder anyway: --address 127.0.0.1:53).
      What was there (bytes and mode, or a symlink's target) is saved in the state directory. A
      symlink to a target switchyard does not know is refused.
off   puts back exactly what was saved; refuses when the file was changed since. \`down\` runs it.

The address defaults to the config's first [dns] listen address (embedded default: 127.0.0.1:1053).
Linux only. Environment: SWITCHYARD_SYSTEM_ROOT (tests: a directory standing in for /).
`;

export function systemDnsOptions() {
  const root = process.env['SWITCHYARD_SYSTEM_ROOT'];
  return { stateDir: resolvePaths().stateDir, ...(root ? { root } : {}) };
}

export async function runLinux(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(
    argv,
    { config: { type: 'string' }, address: { type: 'string' }, format: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    true,
  );
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const [what, action, ...extra] = positionals;
  if (what !== 'system' || (action !== 'on' && action !== 'off') || extra.length > 0) throw new UsageError('usage: switchyard dns system on|off (see --help)');
  const json = values.format === 'json';
  if (action === 'off') {
    const r = systemDnsOff(systemDnsOptions());
    process.stdout.write(json ? JSON.stringify({ restored: r !== null, method: r?.method ?? null, path: r?.path ?? null }) + '\n' : r ? `restored ${r.path}\n` : 'switchyard was not the system resolver\n');
    return 0;
  }
  let host: string;
  let port: number;
  if (values.address) {
    const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(values.address);
    if (!m) throw new UsageError(`dns system on: --address must be HOST:PORT (got '${values.address}')`);
    host = m[1]!;
    port = Number(m[2]);
  } else {
    const cfg = values.config ? loadConfigFile(values.config) : defaultConfig();
    const l = cfg.dns.listen[0];
    if (!l) throw new UsageError('dns system on: the config has no [dns] listen address');
    host = l.host;
    port = l.port;
  }
  const r = systemDnsOn(systemDnsOptions(), host, port);
  process.stdout.write(json ? JSON.stringify(r) + '\n' : r.changed ? `switchyard is the system resolver (${r.method}: ${r.path})\n` : `already on (${r.method}: ${r.path})\n`);
  return 0;
}
