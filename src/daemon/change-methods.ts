// Change control methods that act on the running daemon: stop, enforce, close, cache.flush.
import { ControlError, DaemonError } from '../errors.ts';
import type { MethodRegistry } from '../control/index.ts';
import type { Daemon } from './daemon.ts';
import { bad, obj, optString } from './method-params.ts';

export function registerChangeMethods(reg: MethodRegistry, d: Daemon): void {
  reg.register({
    name: 'stop',
    permission: 'change',
    summary: 'stop the daemon (with enforcement on, the fail-closed skeleton stays)',
    handler: () => {
      // Reply first, then stop: the server writes the reply when this returns.
      setTimeout(() => void d.stop('switchyard stop'), 50);
      return { stopping: true, pid: process.pid, skeleton: d.enforcing };
    },
  });

  reg.register({
    name: 'enforce',
    permission: 'change',
    summary: 'switch OS enforcement off (table and groups removed) or on again, for a daemon started with it',
    handler: async (params) => {
      const p = obj(params);
      if (typeof p['on'] !== 'boolean') throw new ControlError('SY_ERR_CONTROL_BAD_PARAMS', 'enforce: `on` must be true or false');
      return d.setEnforcement(p['on']);
    },
  });

  reg.register({
    name: 'close',
    permission: 'change',
    summary: 'close one live flow, every flow of an egress, or every flow whose decision changed',
    handler: (params) => {
      const p = obj(params);
      const id = optString(p, 'flow', 128);
      const egress = optString(p, 'egress', 128);
      const changed = p['changed'] === true;
      if ([id !== undefined, egress !== undefined, changed].filter(Boolean).length !== 1) bad('give exactly one of flow, egress, changed');
      if (id !== undefined) {
        if (!d.sessions.get(id)?.record) throw new DaemonError('SY_ERR_DAEMON_NO_FLOW', `no live flow '${id}' (see switchyard conns)`);
        d.sessions.close(id, 'closed by switchyard close');
        return { closed: 1 };
      }
      if (egress !== undefined) {
        if (!d.egress.config(egress)) bad(`no egress '${egress}' in the running config`);
        return { closed: d.sessions.closeEgress(egress, 'closed by switchyard close --egress') };
      }
      let n = 0;
      for (const f of d.sessions.list()) {
        if (d.decisionChanged(f) && d.sessions.close(f.id, 'decision changed by reload')) n++;
      }
      return { closed: n };
    },
  });

  reg.register({
    name: 'cache.flush',
    permission: 'change',
    summary: 'drop every cached DNS answer (the correlation store is kept)',
    handler: () => {
      if (!d.dns) return { flushed: 0 };
      // Only the answers: upstream connections and egress resolver paths are kept.
      return { flushed: d.dns.flushCache() };
    },
  });
}
