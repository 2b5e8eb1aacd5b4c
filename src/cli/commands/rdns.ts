// `switchyard rdns [IP]`: which names the DNS store holds for an address.
import { call, parseClientArgs, printJson, table, COMMON_HELP } from '../client.ts';

export const summary = 'show the names the DNS store learned for an address (or all addresses)';

const HELP = `usage: switchyard rdns [IP] [--format text|json] [--socket PATH]

Names that resolved to IP through switchyard, newest first, with the upstream that answered, the
TTL left and whether the entry is stale (in grace) — or every address when IP is omitted. This
reveals browsing: root and the control group see everything, others only the addresses their own
live flows go to.

${COMMON_HELP}`;

interface Entry {
  ip: string;
  state: string;
  names: { name: string; chain: string[]; upstream: string; ttlLeftS: number; lastSeenAgoS: number; stale: boolean }[];
}

export async function run(argv: string[]): Promise<number> {
  const a = parseClientArgs(argv, {}, true);
  if (a.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const ip = a.positionals[0];
  const r = (await call(a.socket, 'rdns', ip === undefined ? null : { ip })) as { entries: Entry[] };
  if (a.format === 'json') {
    printJson(r);
    return 0;
  }
  if (r.entries.length === 0) {
    process.stdout.write(ip === undefined ? 'the store holds no names you may see\n' : `no name known for ${ip}\n`);
    return ip === undefined ? 0 : 1;
  }
  const rows = r.entries.flatMap((e) => e.names.map((n, i) => [i === 0 ? e.ip : '', i === 0 ? e.state : '', n.name, n.upstream, n.stale ? `stale (${-n.ttlLeftS}s past)` : `${n.ttlLeftS}s`, `${n.lastSeenAgoS}s ago`]));
  process.stdout.write(table(['ADDRESS', 'STATE', 'NAME', 'UPSTREAM', 'TTL', 'SEEN'], rows));
  return 0;
}
