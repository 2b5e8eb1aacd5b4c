// The daemon's supervised egress processes (`[egress.NAME.process]`): one Supervisor per egress
// that has a process, kept in step with the running config, and the egress's health probed as
// soon as its process changes state. The Supervisor (src/daemon/supervisor.ts) runs one process.
import type { Logger } from '../log.ts';
import type { Config } from '../policy/types.ts';
import type { EgressSet } from '../egress/index.ts';
import { Supervisor } from './supervisor.ts';

/** What supervision reads from the daemon. */
export interface SupervisionHost {
  readonly log: Logger;
  /** The running egress set (replaced when a revision changes the egress list). */
  readonly egress: EgressSet;
}

export interface SupervisionHooks {
  stopping(): boolean;
  /** How a core's command line is wrapped to start it in the exempt group (null = plainly). */
  wrap(): ((argv: string[]) => string[]) | null;
}

export class Supervision {
  /** egress name → its supervisor. */
  readonly all = new Map<string, Supervisor>();
  readonly #d: SupervisionHost;
  readonly #hooks: SupervisionHooks;

  constructor(host: SupervisionHost, hooks: SupervisionHooks) {
    this.#d = host;
    this.#hooks = hooks;
  }

  /** Starts, keeps or stops the supervised process of each egress to match the config. */
  reconcile(config: Config): void {
    const want = new Map<string, NonNullable<Config['egress'][string]['process']>>();
    for (const [name, e] of Object.entries(config.egress)) if (e.process) want.set(name, e.process);
    for (const [name, sup] of this.all) {
      const w = want.get(name);
      if (!w || JSON.stringify(w) !== JSON.stringify(sup.config)) {
        void sup.stop();
        this.all.delete(name);
      }
    }
    for (const [name, proc] of want) {
      if (this.all.has(name)) continue;
      const sup = new Supervisor({
        egress: name,
        process: proc,
        log: this.#d.log,
        wrap: this.#hooks.wrap(),
        onState: (s) => this.#onState(s.egress, s.state),
      });
      this.all.set(name, sup);
      sup.start();
    }
  }

  /** Stops every process; `step` runs each stop and logs its failure. */
  async stopAll(step: (what: string, fn: () => Promise<unknown>) => Promise<void>): Promise<void> {
    await Promise.all([...this.all.values()].map((s) => step(`egress process ${s.egress}`, () => s.stop())));
    this.all.clear();
  }

  /**
   * Health follows the process at once instead of at the next probe: an exited core is probed
   * (and found down) before a flow has to find out; a started one is probed until it answers.
   */
  #onState(egress: string, state: string): void {
    if (state !== 'running' && state !== 'backoff') return;
    const probe = (left: number) => {
      if (this.#hooks.stopping() || !this.#d.egress.config(egress)) return;
      void this.#d.egress.probe(egress).then((h) => {
        if (state === 'running' && h.state !== 'up' && left > 0) setTimeout(() => probe(left - 1), 200).unref();
      }, () => {});
    };
    probe(state === 'running' ? 25 : 0);
  }
}
