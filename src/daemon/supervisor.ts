// Supervises the processes of `[egress.NAME.process]` (sing-box, ciadpi/byedpi, microsocks):
// start, restart with exponential backoff when they exit, report their state, stop them with the
// daemon. While a core is down its egress refuses flows (the connect to its endpoint fails and
// the egress set marks it down): nothing falls through to direct.
//
// With enforcement on, the child is started through the OS backend's wrapper
// (RedirectBackend.commandInGroup: on Linux `sh` writes its own pid into the exempt cgroup's
// `cgroup.procs` and only then execs the core), so not one of the core's packets is redirected
// into itself or another egress. Without enforcement the core is spawned directly.
import { spawn, type ChildProcess } from 'node:child_process';
import type { Logger } from '../log.ts';
import type { EgressProcessConfig } from '../policy/types.ts';

export type SupervisedState = 'starting' | 'running' | 'backoff' | 'stopped' | 'failed';

export interface SupervisedStatus {
  egress: string;
  command: string;
  state: SupervisedState;
  pid: number | null;
  restarts: number;
  /** How the last run ended: `exit 1`, `signal SIGKILL`, or a spawn error. */
  lastExit: string | null;
  since: number;
  /** When the next start is due (backoff). */
  nextStartAt: number | null;
  /** Whether the process was started inside the exempt cgroup. */
  exempt: boolean;
}

export interface SupervisorOptions {
  egress: string;
  process: EgressProcessConfig;
  log?: Logger | undefined;
  /** Wraps the command line so the child joins the exempt group before exec (enforcement on). */
  wrap?: ((argv: string[]) => string[]) | null;
  /** First backoff delay (ms); doubles per quick failure up to maxBackoffMs. */
  backoffMs?: number;
  maxBackoffMs?: number;
  /** A run this long resets the backoff. */
  stableMs?: number;
  /** Grace before SIGKILL on stop. */
  killAfterMs?: number;
  /** Called on every state change (the daemon re-probes the egress's health then). */
  onState?: (s: SupervisedStatus) => void;
}

export class Supervisor {
  readonly #o: Required<Omit<SupervisorOptions, 'log' | 'wrap' | 'onState'>> & { log: Logger | undefined; wrap: ((argv: string[]) => string[]) | null; onState: ((s: SupervisedStatus) => void) | undefined };
  #child: ChildProcess | null = null;
  #state: SupervisedState = 'stopped';
  #restarts = 0;
  #lastExit: string | null = null;
  #since = Date.now();
  #nextStartAt: number | null = null;
  #timer: NodeJS.Timeout | undefined;
  #delay: number;
  #startedAt = 0;
  #stopping = false;
  #exited: Promise<void> = Promise.resolve();

  constructor(o: SupervisorOptions) {
    this.#o = {
      backoffMs: 1000,
      maxBackoffMs: 30_000,
      stableMs: 10_000,
      killAfterMs: 3000,
      ...o,
      log: o.log,
      wrap: o.wrap ?? null,
      onState: o.onState,
    };
    this.#delay = this.#o.backoffMs;
  }

  get egress(): string {
    return this.#o.egress;
  }

  get config(): EgressProcessConfig {
    return this.#o.process;
  }

  status(): SupervisedStatus {
    return {
      egress: this.#o.egress,
      command: this.#o.process.command,
      state: this.#state,
      pid: this.#child?.pid ?? null,
      restarts: this.#restarts,
      lastExit: this.#lastExit,
      since: this.#since,
      nextStartAt: this.#nextStartAt,
      exempt: this.#o.wrap !== null,
    };
  }

  #set(state: SupervisedState): void {
    if (state === this.#state) return;
    this.#since = Date.now();
    this.#state = state;
    this.#o.onState?.(this.status());
  }

  start(): void {
    this.#stopping = false;
    this.#spawn();
  }

  #spawn(): void {
    if (this.#stopping) return;
    this.#nextStartAt = null;
    const { command, args } = this.#o.process;
    let full: string[];
    try {
      full = this.#o.wrap ? this.#o.wrap([command, ...args]) : [command, ...args];
    } catch (err) {
      // No exempt group to start it in: do not start it outside (it would be redirected).
      this.#onExit(`cannot start in the exempt group: ${(err as Error).message}`);
      return;
    }
    const [file, ...argv] = full as [string, ...string[]];
    this.#set('starting');
    this.#startedAt = Date.now();
    let child: ChildProcess;
    try {
      // Own process group: stop() signals the core and anything it forked.
      child = spawn(file, argv, { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
    } catch (err) {
      this.#onExit(`spawn failed: ${(err as Error).message}`);
      return;
    }
    this.#child = child;
    let stderrTail = '';
    child.stderr?.on('data', (b: Buffer) => {
      stderrTail = (stderrTail + b.toString('utf8')).slice(-512);
    });
    let done!: () => void;
    this.#exited = new Promise((r) => (done = r));
    child.once('spawn', () => {
      this.#set('running');
      this.#o.log?.info({ egress: this.#o.egress, pid: child.pid }, 'egress process started');
    });
    child.once('error', (err) => {
      // ENOENT and friends: 'exit' may not follow.
      if (child.pid === undefined) {
        this.#child = null;
        done();
        this.#onExit(`spawn failed: ${(err as NodeJS.ErrnoException).code ?? err.message}`);
      }
    });
    child.once('exit', (code, signal) => {
      this.#child = null;
      done();
      const how = signal ? `signal ${signal}` : `exit ${code}`;
      this.#onExit(stderrTail.trim() && code !== 0 ? `${how}: ${stderrTail.trim().split('\n').pop()}` : how);
    });
  }

  #onExit(how: string): void {
    this.#lastExit = how;
    if (this.#stopping) {
      this.#set('stopped');
      return;
    }
    // A run that lasted resets the backoff; a crash loop backs off up to the maximum.
    if (Date.now() - this.#startedAt >= this.#o.stableMs) this.#delay = this.#o.backoffMs;
    const wait = this.#delay;
    this.#delay = Math.min(this.#delay * 2, this.#o.maxBackoffMs);
    this.#restarts++;
    this.#set('backoff');
    this.#nextStartAt = Date.now() + wait;
    // The exit status at warn; the stderr tail (it may name hosts or paths) only at debug.
    this.#o.log?.warn({ egress: this.#o.egress, exit: how.split(':')[0], retryInMs: wait }, 'egress process exited; restarting after backoff');
    this.#o.log?.debug({ egress: this.#o.egress, how }, 'egress process exit detail');
    this.#timer = setTimeout(() => this.#spawn(), wait);
  }

  /** Stops the process (TERM, then KILL after a grace period) and any pending restart. */
  async stop(): Promise<void> {
    this.#stopping = true;
    clearTimeout(this.#timer);
    this.#nextStartAt = null;
    const child = this.#child;
    if (child && child.pid !== undefined) {
      const kill = (sig: NodeJS.Signals) => {
        try {
          process.kill(-child.pid!, sig);
        } catch {
          try {
            child.kill(sig);
          } catch {
            /* already gone */
          }
        }
      };
      kill('SIGTERM');
      const t = setTimeout(() => kill('SIGKILL'), this.#o.killAfterMs);
      await this.#exited;
      clearTimeout(t);
    }
    this.#set('stopped');
  }
}
