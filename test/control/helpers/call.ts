// Run by server.test.ts as another user (setpriv): makes control calls and prints one JSON line
// per call: {"ok":true,"result":...,"partials"?:[...]} or {"ok":false,"code":"SY_ERR_..."}.
// usage: call.ts ENDPOINT METHOD [METHOD...]
import { ControlClient } from '../../../src/control/client.ts';
import { isSwitchyardError } from '../../../src/errors.ts';

const [endpoint, ...methods] = process.argv.slice(2);
const out: unknown[] = [];
try {
  const c = await ControlClient.connect(endpoint!, { timeoutMs: 10_000 });
  for (const m of methods) {
    try {
      const partials: unknown[] = [];
      const result = await c.call(m, null, { onPartial: (p) => partials.push(p) });
      out.push(partials.length > 0 ? { ok: true, result, partials } : { ok: true, result });
    } catch (err) {
      out.push({ ok: false, code: isSwitchyardError(err) ? err.code : String(err) });
    }
  }
  c.close();
} catch (err) {
  out.push({ ok: false, code: isSwitchyardError(err) ? err.code : String(err) });
}
process.stdout.write(JSON.stringify({ uid: process.getuid?.(), out }) + '\n');
