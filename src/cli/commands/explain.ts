// `switchyard explain`: which egress would a flow take, by which rule, and why the others lost.
import { UsageError } from '../../errors.ts';
import { loadConfigFile } from '../../config-file.ts';
import { expandLists, listOrigin } from '../../lists-load.ts';
import { compilePolicy, defaultConfig, type Config, type Explanation, type FlowQuery, type MatchReason, type RuleOrigin } from '../../policy/index.ts';
import { parseIp } from '../../policy/ip.ts';
import { formatOption, parseCommandArgs } from '../args.ts';

export const summary = 'show which egress a flow would take and why (offline, from a config)';

const HELP = `usage: switchyard explain [--config FILE] (--process NAME | --exe PATH) [--domain NAME]
                          [--ip IP] [--port N] [--network tcp|udp] [--user NAME] [--group NAME]
                          [--format text|json]

Decides one flow with the policy and prints the winning rule and every other matching rule with
the reason it lost. Without --config a running daemon is asked; with none, the embedded default
config answers. The output says which config answered.

  --config FILE     config file (v1, or a policy-router-rs config)
  --process NAME    process name (zen.exe, telegram; a Windows path is reduced to its base name)
  --exe PATH        full executable path
  --domain NAME     destination domain
  --ip IP           destination address
  --port N          destination port
  --network NET     tcp (default) or udp
  --user NAME       user running the process (for exempt users)
  --group NAME      OS group the process was placed in
  --format FMT      text (default) or json (one object: egress, rule, candidates, ...)
`;

/** The option values both explain entry points share (offline here, live in client-explain.ts). */
export interface QueryOptions {
  process?: string | undefined;
  exe?: string | undefined;
  domain?: string | undefined;
  ip?: string | undefined;
  port?: string | undefined;
  network?: string | undefined;
  user?: string | undefined;
  group?: string | undefined;
}

/** Builds and checks the FlowQuery from command-line values; `alternative` names another way to ask. */
export function queryFromOptions(values: QueryOptions, alternative = ''): FlowQuery {
  const network = values.network ?? 'tcp';
  if (network !== 'tcp' && network !== 'udp') throw new UsageError(`--network must be tcp or udp, not '${network}'`);
  const q: FlowQuery = { network };
  for (const k of ['process', 'exe', 'domain', 'user', 'group'] as const) if (values[k] !== undefined) q[k] = values[k];
  if (values.ip !== undefined) {
    if (parseIp(values.ip) === null) throw new UsageError(`--ip '${values.ip}' is not an IPv4 or IPv6 address`);
    q.ip = values.ip;
  }
  if (values.port !== undefined) {
    if (!/^[0-9]{1,5}$/.test(values.port) || Number(values.port) < 1 || Number(values.port) > 65535) {
      throw new UsageError(`--port '${values.port}' is not a port (1..65535)`);
    }
    q.port = Number(values.port);
  }
  if (q.process === undefined && q.exe === undefined && q.domain === undefined && q.ip === undefined && q.group === undefined) {
    throw new UsageError(`give at least --process or --exe (and/or --domain, --ip)${alternative}; see switchyard explain --help`);
  }
  return q;
}

export async function run(argv: string[]): Promise<number> {
  const { values } = parseCommandArgs(
    argv,
    {
      config: { type: 'string' },
      process: { type: 'string' },
      exe: { type: 'string' },
      domain: { type: 'string' },
      ip: { type: 'string' },
      port: { type: 'string' },
      network: { type: 'string' },
      user: { type: 'string' },
      group: { type: 'string' },
      format: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    false,
  );
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const format = formatOption(values.format);
  const q = queryFromOptions(values);

  let config: Config;
  let used: string;
  if (values.config !== undefined) {
    config = loadConfigFile(values.config);
    used = `file ${values.config}`;
  } else {
    // client-explain.ts asks a running daemon first and comes here only when none answers.
    config = defaultConfig();
    used = 'embedded default config (no --config given)';
  }
  // [[list]] files are read here (offline); url lists need the daemon's approved copy.
  const expanded = await expandLists(config, { configPath: values.config ?? null, cache: null });
  const x = compilePolicy(expanded.config).explain(q);
  const notices = [...config.notices, ...expanded.waiting.map((n) => `url list '${n}' is not loaded offline (ask the running daemon)`)];
  return print({ ...x, listOrigin: listOrigin(expanded.result, x) }, used, notices, format);
}

function reason(m: MatchReason): string {
  return `${m.condition} ${m.pattern} matches ${m.value}`;
}

function print(x: Explanation & { listOrigin?: RuleOrigin | null }, used: string, notices: string[], format: 'text' | 'json'): number {
  if (format === 'json') {
    process.stdout.write(JSON.stringify({ config: used, ...x, notices }) + '\n');
    return 0;
  }
  const q = x.query;
  const subject = [
    q.process !== undefined ? `process ${q.process}` : null,
    q.exe !== undefined ? `exe ${q.exe}` : null,
    q.user !== undefined ? `user ${q.user}` : null,
    q.group !== undefined ? `group ${q.group}` : null,
    q.domain !== undefined ? `domain ${q.domain}` : null,
    q.ip !== undefined ? `ip ${q.ip}` : null,
    q.port !== undefined ? `port ${q.port}` : null,
    q.network,
  ].filter((s) => s !== null);
  const by = x.rule === null ? 'by the default (no rule matched)' : `by ${x.rule.id} (${x.matched.map(reason).join(', ')})`;
  const o = x.listOrigin ?? x.rule?.origin;
  const where = o?.list !== undefined ? ` [list ${o.list}, ${o.file ?? ''}:${o.line ?? '?'}]` : o?.line !== undefined ? ` [${o.file ?? ''}:${o.line}]` : '';
  const lines = [`config: ${used}`, `${subject.join(', ')} → egress ${x.egress} ${by}${where}; stage ${x.stage}`];
  if (x.candidates.length) {
    lines.push('lost:');
    for (const c of x.candidates) lines.push(`  ${c.rule.id} → ${c.egress} (${c.matched.map(reason).join(', ')}): ${c.lostBecause}`);
  }
  for (const n of notices) lines.push(`notice: ${n}`);
  process.stdout.write(lines.join('\n') + '\n');
  return 0;
}
