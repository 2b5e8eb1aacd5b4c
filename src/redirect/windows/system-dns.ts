// The production side of `switchyard dns system on|off` on Windows: nrpt.ts's plans run against the
// real registry (advapi32 through koffi), the save in the state directory, DnsFlushResolverCache.
import { mkdirSync, readFileSync, rmSync, writeFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { NrptError, isSwitchyardError } from '../../errors.ts';
import { regDeleteKey, regReadKey, regWriteKey } from '../../sys/windows/advapi32.ts';
import { ERROR_ACCESS_DENIED } from '../../sys/windows/constants.ts';
import { flushResolverCache } from '../../sys/windows/dnsapi.ts';
import { nrptStatus, planOff, planOn, runNrptPlan, type NrptDeps, type NrptSaved, type SavedStateIo } from './nrpt.ts';
import type { SystemDns, SystemDnsResult } from '../types.ts';

export const NRPT_SAVE_FILE = 'nrpt-saved.json';

/** The save as a JSON file, replaced atomically; a corrupt file is an error, never ignored. */
export function fileState(stateDir: string): SavedStateIo {
  const file = join(stateDir, NRPT_SAVE_FILE);
  return {
    load() {
      let text: string;
      try {
        text = readFileSync(file, 'utf8');
      } catch {
        return null;
      }
      let v: NrptSaved;
      try {
        v = JSON.parse(text) as NrptSaved;
      } catch {
        v = {} as NrptSaved;
      }
      if (v?.version !== 1 || typeof v.key !== 'string' || typeof v.server !== 'string' || !(v.tableExisted === undefined || typeof v.tableExisted === 'boolean') || !(v.previous === null || Array.isArray(v.previous))) {
        throw new NrptError(`${file} is not a saved NRPT state; remove it only after checking the registry by hand`);
      }
      return v;
    },
    store(s) {
      mkdirSync(stateDir, { recursive: true });
      writeFileSync(`${file}.tmp`, JSON.stringify(s, null, 2));
      renameSync(`${file}.tmp`, file);
    },
    clear() {
      rmSync(file, { force: true });
    },
  };
}

export function nrptSystemDns(stateDir: string, deps?: NrptDeps): SystemDns {
  const d: NrptDeps = deps ?? {
    reg: { read: regReadKey, write: regWriteKey, remove: regDeleteKey },
    state: fileState(stateDir),
    flush: flushResolverCache,
  };
  const wrap = <T>(what: string, fn: () => T): T => {
    try {
      return fn();
    } catch (err) {
      if (isSwitchyardError(err) && err.code === 'SY_ERR_WIN_NRPT') throw err;
      throw new NrptError(`${what}: ${(err as Error).message}${(err as { errno?: number }).errno === ERROR_ACCESS_DENIED ? ' (needs an elevated prompt)' : ''}`, err);
    }
  };
  return {
    on(server: string): SystemDnsResult {
      return wrap('dns system on', () => {
        const plan = planOn(d.reg, d.state.load(), server);
        runNrptPlan(plan, d);
        return { ...nrptStatus(d.reg, d.state.load()), warnings: plan.warnings };
      });
    },
    off(): SystemDnsResult {
      return wrap('dns system off', () => {
        const plan = planOff(d.reg, d.state.load());
        runNrptPlan(plan, d);
        return { ...nrptStatus(d.reg, d.state.load()), warnings: plan.warnings };
      });
    },
    status(): SystemDnsResult {
      return wrap('dns system status', () => ({ ...nrptStatus(d.reg, d.state.load()), warnings: [] }));
    },
  };
}
