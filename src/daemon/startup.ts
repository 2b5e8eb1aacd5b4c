// The start-up integrity path: which config the daemon runs when it starts. Changes after start
// (reload, approve, reject, rollback, imports) are src/daemon/revisions.ts.
//
// Start:
//   - first start (an empty store): the config file (or the embedded default) becomes revision 1
//     and is activated at once, audited (`revision.created`, `revision.activated`). Trust on
//     first use: there is nothing to compare it with.
//   - later starts: the active revision is read and integrity-checked (HMAC, content hash). A
//     tampered one is refused: last-known-good runs, a tamper alert is raised and audited. If
//     the config file now differs from the active revision (edited while the daemon was down),
//     it becomes a PENDING candidate with a non-interactive alert — never activated by a start.
//   - history exists but no revision can be trusted: the file becomes a pending candidate and
//     the daemon runs it with everything blocked (default `block`, no rules; exemptions kept so
//     egress cores still work) until someone approves a revision: fail closed.
import type { Logger } from '../log.ts';
import type { Config } from '../policy/index.ts';
import { policyHash, type Candidates, type ConfigSource } from './candidates.ts';

/** Everything blocked, listeners and exemptions as in `c`: what runs when no revision can be trusted. */
export function blockAll(c: Config): Config {
  return { ...c, default: 'block', rules: [], lists: [], source: `${c.source} (fail closed: no trusted revision)` };
}

/**
 * The config the daemon starts with, given the config file as read. `fromActive` is true when a
 * trusted active revision runs (import sources are then checked against it).
 */
export function startupConfig(c: Candidates, file: ConfigSource, log: Logger): { config: Config; fromActive: boolean } {
  const store = c.store;
  const { revision, fellBackFrom } = store.resolveActive();
  if (fellBackFrom !== null) {
    log.error({ refused: fellBackFrom, running: revision?.n ?? null }, 'the active revision failed its integrity check; it is refused (see switchyard status)');
  }
  if (revision) {
    const active = revision.config as Config;
    if ('config' in file) {
      if (policyHash(file.config) !== policyHash(active) && !c.pendingWithHash(policyHash(file.config))) {
        const rev = c.create(file.config, active, { channel: 'file', source: file.path, sha: file.sha, interactive: false, note: 'the config file differs from the active revision at start' });
        log.warn({ revision: rev.n }, 'the config file changed while the daemon was not running: it is a pending revision (switchyard diff / approve)');
      }
    } else {
      log.warn({ code: file.error.code }, 'the config file is invalid; the active revision runs');
    }
    return { config: active, fromActive: true };
  }
  if ('error' in file) throw file.error;
  if (store.list().length === 0) {
    const rev = store.create(file.config, c.provenance('file', file.path, file.sha, c.selfActor, true, 'first start'), null);
    store.commitActivation(rev.n, c.selfActor);
    return { config: rev.config as Config, fromActive: false };
  }
  // History, but nothing trusted is left.
  const rev = c.create(file.config, null, { channel: 'file', source: file.path, sha: file.sha, interactive: false, note: 'no trusted revision at start' });
  log.error({ pending: rev.n }, 'no trusted revision: running with everything blocked until a revision is approved');
  return { config: blockAll(file.config), fromActive: false };
}
