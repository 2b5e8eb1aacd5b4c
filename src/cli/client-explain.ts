// `switchyard explain`, live: without --config it asks the running daemon (its live policy, the
// DNS store for where a domain came from, a live flow by id) and says so; with --config, or when
// no daemon runs, the policy helper's offline command answers (src/cli/commands/explain.ts).
import { isSwitchyardError, UsageError } from '../errors.ts';
import type { Explanation, FlowQuery, MatchReason } from '../policy/types.ts';
import { formatOption, parseCommandArgs } from './args.ts';
import { call } from './client.ts';
import * as offline from './commands/explain.ts';

export const summary = 'show which egress a flow takes and why (asks the running daemon; --config: offline)';

const HELP = `usage: switchyard explain [--config FILE] (--process NAME | --exe PATH) [--domain NAME]
                          [--ip IP] [--port N] [--network tcp|udp] [--user NAME] [--group NAME]
                          [--format text|json]
       switchyard explain --flow ID [--format text|json]

Without --config the running daemon answers with its live policy, and says so: for an address it
also tells where the domain came from ("from DNS 40 s ago via U, TTL 260 s left", "from SNI",
"ambiguous: ..."). When no daemon runs, the embedded default config answers offline (the output
says which). With --config the given file answers offline; the daemon is not asked.

  --flow ID         explain a live flow (an id from \`switchyard conns\`): its process, domain and
                    where the domain came from, the rule and the egress with its health
  --config FILE     answer offline from this config file
  --process NAME    process name          --exe PATH      full executable path
  --domain NAME     destination domain    --ip IP         destination address
  --port N          destination port      --network NET   tcp (default) or udp
  --user NAME       user of the process   --group NAME    OS group the process was placed in
  --socket PATH     control socket of the daemon
  --format FMT      text (default) or json (docs/cli.md)
`;

const OPTIONS = {
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
  flow: { type: 'string' },
  socket: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

export interface LiveExplanation extends Explanation {
  config: { source: string; generation: number };
  process: { name: string | null; pid: number | null; exe: string | null; uid: number | null } | null;
  domain: { name: string | null; source: string; detail: string; candidates: string[] };
  egressState: { state: string; reason: string | null };
  /** The list, file and line of a [[list]] rule (grouped lists too); null for a config rule. */
  listOrigin?: { list?: string; file?: string; line?: number } | null;
  flow: { id: string; dst: string } | null;
}

/** argv without the live-only options, for the offline command. */
function offlineArgv(argv: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--socket' || a === '--flow') {
      i++;
      continue;
    }
    if (a.startsWith('--socket=') || a.startsWith('--flow=')) continue;
    out.push(a);
  }
  return out;
}

export async function run(argv: string[]): Promise<number> {
  const { values } = parseCommandArgs(argv, OPTIONS, false);
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  if (values.config !== undefined) {
    if (values.flow !== undefined) throw new UsageError('--flow asks the running daemon; it cannot be combined with --config');
    return offline.run(offlineArgv(argv));
  }
  const format = formatOption(values.format);
  let params: { flow: string } | { query: FlowQuery };
  if (values.flow !== undefined) {
    params = { flow: values.flow };
  } else {
    const q = offline.queryFromOptions(values, ', or --flow ID');
    params = { query: q };
  }
  let x: LiveExplanation;
  try {
    x = (await call(values.socket, 'explain', params)) as LiveExplanation;
  } catch (err) {
    if (isSwitchyardError(err) && err.code === 'SY_ERR_CONTROL_NOT_RUNNING' && values.flow === undefined) {
      process.stderr.write('switchyard: no daemon is running; answering offline from the embedded default config\n');
      return offline.run(offlineArgv(argv));
    }
    throw err;
  }
  if (format === 'json') {
    process.stdout.write(JSON.stringify({ answeredBy: 'daemon', ...x }) + '\n');
    return 0;
  }
  process.stdout.write(renderLive(x));
  return 0;
}

function reason(m: MatchReason): string {
  return `${m.condition} ${m.pattern} matches ${m.value}`;
}

export function renderLive(x: LiveExplanation): string {
  const parts: string[] = [];
  if (x.process?.name) parts.push(`process ${x.process.name}${x.process.pid ? ` (pid ${x.process.pid})` : ''}`);
  else if (x.query.exe) parts.push(`exe ${x.query.exe}`);
  if (x.domain.name) parts.push(`domain ${x.domain.name} (${x.domain.detail})`);
  else if (x.query.ip) parts.push(`no domain (${x.domain.detail})`);
  if (x.query.ip) parts.push(`ip ${x.query.ip}${x.query.port ? `:${x.query.port}` : ''}`);
  else if (x.query.port) parts.push(`port ${x.query.port}`);
  const o = x.listOrigin;
  const from = o?.list !== undefined ? ` from list ${o.list} (${o.file ?? '?'}:${o.line ?? '?'})` : '';
  const rule = x.rule === null ? 'the default (no rule matched)' : `rule ${x.rule.id} (${x.matched.map(reason).join(', ')})${from}`;
  parts.push(rule);
  parts.push(`egress ${x.egress} (${x.egressState.state}${x.egressState.state === 'down' && x.egressState.reason ? `: ${x.egressState.reason}` : ''})`);
  const lines = [
    `answered by the running daemon (config ${x.config.source}, generation ${x.config.generation})${x.flow ? `, live flow ${x.flow.id} to ${x.flow.dst}` : ''}`,
    parts.join(', '),
  ];
  if (x.domain.candidates.length > 1) lines.push(`names for this address: ${x.domain.candidates.join(', ')}`);
  if (x.candidates.length) {
    lines.push('lost:');
    for (const c of x.candidates) lines.push(`  ${c.rule.id} → ${c.egress} (${c.matched.map(reason).join(', ')}): ${c.lostBecause}`);
  }
  return lines.join('\n') + '\n';
}
