// `switchyard rollback`: last-known-good again, as a new revision.
import { call, parseClientArgs, printJson, COMMON_HELP } from '../client.ts';

export const summary = 'activate the last-known-good policy again (as a new revision)';

const HELP = `usage: switchyard rollback [--format text|json] [--socket PATH]

Makes a new revision holding last-known-good's config and activates it atomically; the revision
rolled back from becomes superseded. Needs root, the daemon's user, or the control group.
${COMMON_HELP}`;

export async function run(argv: string[]): Promise<number> {
  const a = parseClientArgs(argv, {});
  if (a.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const r = (await call(a.socket, 'rollback', null, 60_000)) as { revision: number; to: number };
  if (a.format === 'json') printJson(r);
  else process.stdout.write(`rolled back to revision #${r.to}'s policy: revision #${r.revision} is active\n`);
  return 0;
}
