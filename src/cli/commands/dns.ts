// `switchyard dns system on|off`: makes switchyard the system resolver and puts back exactly what
// was there. Which mechanism applies is src/redirect/index.ts's call (the one place that asks
// which OS this is): NRPT on Windows, systemd-resolved or resolv.conf on Linux.
import { UsageError } from '../../errors.ts';
import { systemDnsKind } from '../../redirect/index.ts';

export const summary = 'make switchyard the system resolver, or put the previous one back (dns system on|off)';

export async function run(argv: string[]): Promise<number> {
  const kind = systemDnsKind();
  if (kind === 'nrpt') return (await import('../dns-system/nrpt.ts')).runNrpt(argv);
  if (kind === 'linux') return (await import('../dns-system/linux.ts')).runLinux(argv);
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write('usage: switchyard dns system on|off — Linux and Windows only\n');
    return 0;
  }
  throw new UsageError(`dns system: not managed by switchyard on ${process.platform}; point the system resolver at the forwarder yourself`);
}
