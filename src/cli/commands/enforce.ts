// `switchyard enforce dry-run|skeleton|on|off`. `on`/`off` ask the running daemon (state-changing
// control method `enforce`); dry-run and skeleton work without a daemon. `dry-run` prints the
// script `up` would install for a config (listener ports are placeholders: the daemon picks them
// at start); `skeleton` installs the fail-closed skeleton of a config's plan — what the early-boot
// unit (packaging/switchyard-skeleton.service) runs before the network comes up.
import { loadConfigFile } from '../../config-file.ts';
import { UsageError } from '../../errors.ts';
import { defaultConfig } from '../../policy/index.ts';
import { buildPlan, createRedirectBackend } from '../../redirect/index.ts';
import { readDohList } from '../../redirect/doh-file.ts';
import { dryRunScript } from '../../redirect/linux/nft-script.ts';
import { parseCommandArgs } from '../args.ts';
import { call } from '../client.ts';

export const summary = 'print the OS ruleset for a config (dry-run) or install its fail-closed skeleton (early boot)';

const HELP = `usage: switchyard enforce dry-run [--config FILE] [--skeleton]
       switchyard enforce skeleton --config FILE
       switchyard enforce on|off [--socket PATH] [--format text|json]

on, off    for a running daemon started with [enforce] enabled: \`off\` removes the table and the
           groups (processes go back; nothing is steered at the OS level, on purpose) until \`on\`
           or a restart; \`on\` applies the plan again. Needs root, the daemon's user or the
           control group. \`status\` shows enforcement.suspended.

dry-run    prints the nft script \`switchyard up\` would install for the config, without touching
           the system. Listener ports are placeholders (60000 captured destinations, 60001… one per
           egress group in name order, the DNS forwarder's first listen port): the daemon picks
           the real ones at start. cgroup paths assume switchyard's root at the top of the cgroup2
           hierarchy. --skeleton prints the fail-closed skeleton instead.
skeleton   installs the skeleton of the config's plan (root): group traffic, captured and static
           destinations and DNS from non-exempt sockets are refused until \`up\` or \`down\`. Used by
           the early-boot unit packaging/switchyard-skeleton.service.

environment:
  SWITCHYARD_CGROUP_ROOT   cgroup root of switchyard's groups (default: switchyard; for tests)
`;

export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(
    argv,
    { config: { type: 'string' }, skeleton: { type: 'boolean' }, socket: { type: 'string' }, format: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    true,
  );
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const [action, ...extra] = positionals;
  if (extra.length > 0) throw new UsageError(`enforce: unexpected argument '${extra[0]}'`);
  if (action === 'on' || action === 'off') {
    const r = (await call(values.socket, 'enforce', { on: action === 'on' }, 30_000)) as { active: boolean; changed: boolean };
    if (values.format === 'json') process.stdout.write(JSON.stringify(r) + '\n');
    else process.stdout.write(`enforcement ${r.active ? 'on' : 'off'}${r.changed ? '' : ' (unchanged)'}\n`);
    return 0;
  }
  const config = values.config ? loadConfigFile(values.config) : defaultConfig();
  const root = process.env['SWITCHYARD_CGROUP_ROOT'];
  const doh = readDohList(config);
  if (action === 'dry-run') {
    const groups = Object.keys(config.egress).filter((n) => n !== 'direct' && n !== 'block').sort();
    const ports = {
      groups: Object.fromEntries(groups.map((g, i) => [g, 60001 + i])),
      captured: 60000,
      dns: config.dns.listen[0]?.port ?? 53,
    };
    const plan = buildPlan({ config, ports, ...(doh ? { doh } : {}) });
    process.stdout.write(dryRunScript(plan, root ?? 'switchyard', values.skeleton ? 'skeleton' : 'active'));
    return 0;
  }
  if (action === 'skeleton') {
    if (!values.config) throw new UsageError('enforce skeleton: --config FILE is required (the plan comes from the config)');
    const plan = buildPlan({ config, ports: { groups: {}, captured: null, dns: null }, ...(doh ? { doh } : {}) });
    const backend = await createRedirectBackend(root ? { linux: { cgroupRoot: root } } : {});
    try {
      await backend.skeleton(plan);
    } finally {
      await backend.close();
    }
    process.stdout.write(`installed the fail-closed skeleton (${plan.groups.length} group(s)); \`switchyard up\` replaces it, \`switchyard down\` removes it\n`);
    return 0;
  }
  throw new UsageError(`enforce: expected dry-run, skeleton, on or off (try: switchyard enforce --help)`);
}
