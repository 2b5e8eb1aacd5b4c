// `switchyard dns system on|off|status`: points the OS resolver at switchyard's DNS forwarder and
// back (Windows: an NRPT rule for "."; see docs/windows.md "System DNS"). Runs without the daemon.
import { isIP } from 'node:net';
import { UsageError } from '../../errors.ts';
import { loadConfigFile } from '../../config-file.ts';
import { resolvePaths } from '../../paths.ts';
import { createSystemDns, type SystemDnsResult } from '../../redirect/index.ts';
import { nrptServer } from '../../redirect/windows/nrpt.ts';


const HELP = `usage: switchyard dns system on|off|status [--config FILE | --server ADDR] [--format text|json]

on       Windows: adds an NRPT rule for "." (every name) whose DNS server is switchyard's
         forwarder; covers IPv6 and adapters that appear later. What was there before is saved
         in the state directory and put back exactly by \`off\`. The DNS cache is flushed.
off      restores what \`on\` saved and flushes the DNS cache.
status   whether the rule is in place, and whether someone changed it since.

The forwarder must listen on port 53 (NRPT names servers without a port): the address is taken
from --config's [dns] listen (a port-53 listener, loopback preferred), or --server, else 127.0.0.1.
Needs an elevated prompt.

options:
  --config FILE        config whose [dns] listen names the forwarder
  --server ADDR        the forwarder's address (port 53)
  --format text|json   output format (default text)
  --help               this text
`;

function text(r: SystemDnsResult): string {
  const head = r.on ? `system DNS → ${r.server} (NRPT rule ${r.key})${r.intact ? '' : ' — changed by someone else'}` : 'system DNS: switchyard rule not set';
  return [head, ...r.warnings.map((w) => `warning: ${w}`)].join('\n') + '\n';
}

export async function runNrpt(argv: string[]): Promise<number> {
  let format = 'text';
  let config: string | undefined;
  let server: string | undefined;
  const pos: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--help' || a === '-h') {
      process.stdout.write(HELP);
      return 0;
    }
    if (a === '--format') format = argv[++i] ?? '';
    else if (a.startsWith('--format=')) format = a.slice(9);
    else if (a === '--config') config = argv[++i];
    else if (a === '--server') server = argv[++i];
    else if (a.startsWith('-')) throw new UsageError(`dns: unknown option '${a}'`);
    else pos.push(a);
  }
  if (format !== 'text' && format !== 'json') throw new UsageError('dns: --format must be text or json');
  const [what, action] = pos;
  if (what !== 'system' || !['on', 'off', 'status'].includes(action ?? '') || pos.length !== 2) {
    throw new UsageError('dns: usage: switchyard dns system on|off|status (see --help)');
  }
  if (server !== undefined && isIP(server) === 0) throw new UsageError(`dns: --server '${server}' is not an IP address`);
  const sys = await createSystemDns(resolvePaths().stateDir);
  if (!sys) {
    process.stderr.write(`dns system: not managed by switchyard on ${process.platform}; point the system resolver at the forwarder yourself\n`);
    return 1;
  }
  let r: SystemDnsResult;
  if (action === 'on') r = sys.on(server ?? (config ? nrptServer(loadConfigFile(config).dns.listen) : '127.0.0.1'));
  else if (action === 'off') r = sys.off();
  else r = sys.status();
  process.stdout.write(format === 'json' ? JSON.stringify(r) + '\n' : text(r));
  return 0;
}
