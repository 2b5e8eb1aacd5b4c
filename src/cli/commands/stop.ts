// `switchyard stop`: stop the daemon and wait until it is gone.
import { isSwitchyardError } from '../../errors.ts';
import { call, parseClientArgs, printJson, COMMON_HELP } from '../client.ts';

export const summary = 'stop the daemon (with enforcement on, selected traffic stays blocked until up/down)';

const HELP = `usage: switchyard stop [--format text|json] [--socket PATH]

Stops the daemon and waits (up to 15 s) until its control socket is gone. With enforcement on, the
OS backend keeps its fail-closed skeleton: selected traffic is refused, nothing goes direct, until
the next \`switchyard up\` or \`switchyard down\`. Needs root, the daemon's user, or the control group.

${COMMON_HELP}`;

export async function run(argv: string[]): Promise<number> {
  const a = parseClientArgs(argv, {});
  if (a.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const r = (await call(a.socket, 'stop')) as { stopping: boolean; pid: number; skeleton: boolean };
  const deadline = Date.now() + 15_000;
  let stopped = false;
  while (Date.now() < deadline) {
    await new Promise((res) => setTimeout(res, 100));
    try {
      await call(a.socket, 'methods', null, 2000);
    } catch (err) {
      if (isSwitchyardError(err) && (err.code === 'SY_ERR_CONTROL_NOT_RUNNING' || err.code === 'SY_ERR_CONTROL_CLOSED')) {
        stopped = true;
        break;
      }
    }
  }
  if (a.format === 'json') printJson({ ...r, stopped });
  else process.stdout.write(stopped ? `stopped (pid ${r.pid})${r.skeleton ? '; the fail-closed skeleton stays until `switchyard up` or `down`' : ''}\n` : `asked pid ${r.pid} to stop; it still answers after 15 s\n`);
  return stopped ? 0 : 1;
}
