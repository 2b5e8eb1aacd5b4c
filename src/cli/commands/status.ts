// `switchyard status`: what the daemon runs and how it is doing.
import { ago, call, duration, parseClientArgs, printJson, table, COMMON_HELP } from '../client.ts';

export const summary = 'show the daemon: uptime, config, egress health, flows, DNS sizes, enforcement';

const HELP = `usage: switchyard status [--format text|json] [--socket PATH]

${COMMON_HELP}`;

interface EgressRow {
  name: string;
  type: string;
  endpoint: string | null;
  health: string;
  reason: string | null;
  since: number | null;
  flows: number;
  process: { state: string; pid: number | null; restarts: number } | null;
}

export interface StatusReply {
  version: string;
  pid: number;
  uptimeMs: number;
  mode: string;
  config: { source: string; generation: number; loadedAt: number; watched: boolean; lastReload: { at: number; trigger: string; ok: boolean; error: { code: string; message: string } | null; revision: number | null; state: string | null } | null };
  listeners: { dns: string[]; mixed: string | null; transparent: { group: string | null; port4: number | null; port6: number | null }[] };
  egress: EgressRow[];
  flows: { live: number; sessions: number; max: number; refusedByCap: number };
  dns: { cacheEntries: number; storeEntries: number; storeMax: number } | null;
  enforcement: { enabled: boolean; os: string | null; state: string; problems: string[]; watcher?: { mode: string; reason?: string; marked?: number } | null };
  policy: {
    active: number | null;
    lastKnownGood: number | null;
    pending: number[];
    alerts: { id: number; kind: string; message: string; revision?: number; time: string }[];
    notices: { time: number; message: string }[];
  };
}

export function egressTable(rows: EgressRow[]): string {
  return table(
    ['EGRESS', 'TYPE', 'ENDPOINT', 'HEALTH', 'SINCE', 'FLOWS', 'PROCESS', 'REASON'],
    rows.map((e) => [
      e.name,
      e.type,
      e.endpoint,
      e.health,
      ago(e.since),
      e.flows,
      e.process ? `${e.process.state}${e.process.pid ? ` pid ${e.process.pid}` : ''}${e.process.restarts ? `, ${e.process.restarts} restarts` : ''}` : null,
      e.reason,
    ]),
  );
}

export async function run(argv: string[]): Promise<number> {
  const a = parseClientArgs(argv, {});
  if (a.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const s = (await call(a.socket, 'status')) as StatusReply;
  if (a.format === 'json') {
    printJson(s);
    return 0;
  }
  const lr = s.config.lastReload;
  const lines = [
    `switchyard ${s.version}, pid ${s.pid}, up ${duration(s.uptimeMs)} (${s.mode} mode)`,
    `config: ${s.config.source} (generation ${s.config.generation}, loaded ${ago(s.config.loadedAt)} ago${s.config.watched ? ', watched' : ''})`,
  ];
  if (lr) lines.push(`last reload: ${lr.ok ? (lr.state === 'pending' ? `revision #${lr.revision} pending` : lr.state === 'unchanged' ? 'no change' : 'applied') : 'REFUSED'} ${ago(lr.at)} ago (${lr.trigger})${lr.error ? `: ${lr.error.code}: ${lr.error.message}` : ''}`);
  lines.push(`listeners: dns ${s.listeners.dns.join(', ') || '-'}; proxy ${s.listeners.mixed ?? 'off'}${s.listeners.transparent.length ? `; transparent ${s.listeners.transparent.map((t) => `${t.group ?? 'captured'}:${t.port4 ?? t.port6}`).join(' ')}` : ''}`);
  lines.push(`flows: ${s.flows.live} live (cap ${s.flows.max}${s.flows.refusedByCap ? `, ${s.flows.refusedByCap} refused by the cap` : ''})`);
  if (s.dns) lines.push(`dns: ${s.dns.cacheEntries} cached answers, ${s.dns.storeEntries}/${s.dns.storeMax} addresses in the store`);
  lines.push(`enforcement: ${s.enforcement.enabled ? `${s.enforcement.state} (${s.enforcement.os})` : 'off'}${s.enforcement.problems.length ? ` — problems: ${s.enforcement.problems.join('; ')}` : ''}`);
  const w = s.enforcement.watcher;
  if (w) lines.push(`  process watcher: ${w.mode}${w.mode === 'fanotify' ? ` (${w.marked ?? 0} filesystems marked; no window)` : w.mode === 'netlink' ? ' (proc connector; short window after exec)' : ' (rescans only; up to one interval)'}${w.reason ? ` — ${w.reason}` : ''}`);
  const p = s.policy;
  lines.push(`policy: revision #${p.active ?? '- (none trusted: everything blocked)'}, last-known-good #${p.lastKnownGood ?? '-'}${p.pending.length ? `; PENDING ${p.pending.map((n) => `#${n}`).join(' ')} (switchyard diff / approve / reject)` : ''}`);
  for (const a of p.alerts) lines.push(`ALERT ${a.id} [${a.kind}] ${a.message} (switchyard alerts ack ${a.id})`);
  for (const n of p.notices) lines.push(`notice: ${n.message}`);
  process.stdout.write(lines.join('\n') + '\n\n' + egressTable(s.egress));
  return 0;
}
