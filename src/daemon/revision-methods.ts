// Control methods of the policy store: reload, revisions, diff, approve, reject, rollback, alerts,
// alerts.ack, audit, import. Store changes run through d.serial, one at a time.
import { statSync } from 'node:fs';
import { isAbsolute } from 'node:path';
import { ControlError } from '../errors.ts';
import type { MethodRegistry } from '../control/index.ts';
import type { Daemon } from './daemon.ts';
import { actorOf } from './revisions.ts';
import { LIST_FORMATS, isListFormat, type ListFormat } from '../lists/types.ts';
import { bad, obj, optRevision, optString, reqRevision } from './method-params.ts';

/**
 * The daemon (root in service mode) reads an import for its caller: only a file the caller could
 * read anyway — its own, or readable by everyone — so `import` (and the error messages of a
 * refused file) cannot be used to read files through the daemon.
 */
function callerMayRead(path: string, uid: number): void {
  if (uid === 0 || uid === process.getuid?.()) return;
  let st;
  try {
    st = statSync(path);
  } catch {
    throw new ControlError('SY_ERR_CONTROL_PERMISSION', `cannot import ${path}: it cannot be read`);
  }
  if (st.uid !== uid && (st.mode & 0o004) === 0) {
    throw new ControlError('SY_ERR_CONTROL_PERMISSION', `cannot import ${path}: the daemon reads imports only when the caller owns them or everyone may read them`);
  }
}

export function registerRevisionMethods(reg: MethodRegistry, d: Daemon): void {
  reg.register({
    name: 'reload',
    permission: 'change',
    summary: 'read the config file into a candidate revision; a low-risk one asked for interactively is activated at once',
    handler: (params, ctx) => {
      const p = obj(params);
      return d.reload('control', { interactive: p['interactive'] === true, actor: actorOf(ctx.caller) });
    },
  });

  reg.register({
    name: 'revisions',
    permission: 'read',
    summary: 'policy revisions with state, provenance and risk',
    handler: () => d.revisions.list(),
  });

  reg.register({
    name: 'diff',
    permission: 'read',
    summary: 'what a revision changes against the running policy (default: the newest pending)',
    handler: (params) => d.revisions.diff(optRevision(obj(params))),
  });

  reg.register({
    name: 'approve',
    permission: 'change',
    summary: 'activate a pending revision (atomic: snapshot, apply, verify, commit; rolled back on failure)',
    handler: (params, ctx) => {
      const n = reqRevision(obj(params));
      return d.serial(() => d.revisions.approve(n, actorOf(ctx.caller)));
    },
  });

  reg.register({
    name: 'reject',
    permission: 'change',
    summary: 'reject a pending revision',
    handler: (params, ctx) => {
      const p = obj(params);
      const n = reqRevision(p);
      const reason = optString(p, 'reason', 500) ?? 'rejected by switchyard reject';
      return d.serial(async () => d.revisions.reject(n, actorOf(ctx.caller), reason));
    },
  });

  reg.register({
    name: 'rollback',
    permission: 'change',
    summary: 'activate last-known-good again, as a new revision',
    handler: (_p, ctx) => d.serial(() => d.revisions.rollback(actorOf(ctx.caller))),
  });

  reg.register({
    name: 'alerts',
    permission: 'read',
    summary: 'store alerts (tamper, high-risk, non-interactive, apply-failed, audit); unreviewed unless all',
    handler: (params) => ({ alerts: d.revisions.store.alerts({ all: obj(params)['all'] === true }) }),
  });

  reg.register({
    name: 'alerts.ack',
    permission: 'change',
    summary: 'mark an alert as reviewed (audited)',
    handler: (params, ctx) => {
      const id = obj(params)['id'];
      if (typeof id !== 'number' || !Number.isInteger(id) || id < 1) bad('id must be a positive integer');
      return d.serial(async () => d.revisions.ackAlert(id, actorOf(ctx.caller)));
    },
  });

  reg.register({
    name: 'audit',
    permission: 'read',
    summary: 'the audit log (events only for privileged callers) and its verification against the protected anchor',
    handler: (params, ctx) => {
      const p = obj(params);
      const limit = p['limit'] === undefined ? 50 : p['limit'];
      if (typeof limit !== 'number' || !Number.isInteger(limit) || limit < 1) bad('limit must be a positive integer');
      return d.revisions.audit({ verify: p['verify'] === true, limit, privileged: ctx.caller.privileged });
    },
  });

  reg.register({
    name: 'import',
    permission: 'change',
    summary: 'import a config or rule-list file as a pending revision (linked: later changes make pending revisions too)',
    handler: (params, ctx) => {
      const p = obj(params);
      const path = optString(p, 'path', 4096);
      if (path === undefined || !isAbsolute(path)) bad('path must be an absolute file path');
      callerMayRead(path, ctx.caller.uid);
      // A list format (plain, v2fly, singbox, clash-*, netrulerouter) needs the egress its entries take.
      const format = optString(p, 'format', 32);
      const egress = optString(p, 'egress', 64);
      if (format !== undefined && !isListFormat(format)) bad(`format must be one of ${LIST_FORMATS.join(', ')}`);
      if (format !== undefined && egress === undefined) bad('a list import needs egress (the egress its entries take)');
      if (format === undefined && egress !== undefined) bad('egress applies to list formats only (give format)');
      const list = format !== undefined ? { format: format as ListFormat, egress: egress! } : undefined;
      return d.serial(() => d.revisions.importFile(path, p['linked'] === true, actorOf(ctx.caller), p['interactive'] === true, list));
    },
  });
}
