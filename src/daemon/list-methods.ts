// Control methods of `switchyard lists`: the view (read), a re-check of url lists (change: it may
// create pending revisions), and the running body of a list converted to a format (read).
import { ControlError } from '../errors.ts';
import type { MethodRegistry } from '../control/index.ts';
import { exportList, isListFormat, parseList, LIST_FORMATS } from '../lists/index.ts';
import type { Daemon } from './daemon.ts';

function nameParam(params: unknown, required: boolean): string | undefined {
  const p = (typeof params === 'object' && params !== null ? params : {}) as Record<string, unknown>;
  const v = p['name'];
  if (v === undefined || v === null) {
    if (required) throw new ControlError('SY_ERR_CONTROL_BAD_PARAMS', 'name is required');
    return undefined;
  }
  if (typeof v !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(v)) throw new ControlError('SY_ERR_CONTROL_BAD_PARAMS', 'name must be a list name');
  return v;
}

export function registerListMethods(reg: MethodRegistry, d: Daemon): void {
  reg.register({
    name: 'lists',
    permission: 'read',
    summary: 'rule lists: name, format, entries, source, last update, pending change',
    handler: async () => ({ lists: d.lists.rows() }),
  });
  reg.register({
    name: 'lists.refresh',
    permission: 'change',
    summary: 're-check url lists now (a change becomes a pending revision)',
    handler: async (params) => {
      const only = nameParam(params, false);
      const names = (d.config.lists ?? []).filter((l) => l.url !== null && (only === undefined || l.name === only)).map((l) => l.name);
      if (only !== undefined && names.length === 0) throw new ControlError('SY_ERR_CONTROL_BAD_PARAMS', `no url list named '${only}'`);
      const results = [];
      for (const name of names) {
        try {
          const st = await d.lists.check(name);
          results.push({ name, ok: true, pending: st.pending, lastChange: st.lastChange, diff: st.pendingDiff });
        } catch (e) {
          results.push({ name, ok: false, code: (e as { code?: string }).code ?? null, error: (e as Error).message });
        }
      }
      return { results };
    },
  });
  reg.register({
    name: 'lists.export',
    permission: 'read',
    summary: 'the running body of a list, written in a format',
    handler: async (params) => {
      const name = nameParam(params, true)!;
      const p = params as Record<string, unknown>;
      const to = p['format'];
      if (typeof to !== 'string' || !isListFormat(to)) throw new ControlError('SY_ERR_CONTROL_BAD_PARAMS', `format must be one of ${LIST_FORMATS.join(', ')}`);
      const syntax = p['clashSyntax'] === 'text' ? 'text' : 'yaml';
      let got;
      try {
        got = d.lists.body(name);
      } catch (e) {
        throw new ControlError('SY_ERR_CONTROL_BAD_PARAMS', (e as Error).message);
      }
      const { list, body } = got;
      const parsed = await parseList(body, list.format, { list: list.name, unsupported: list.unsupported, ...(list.attrs.length ? { attrs: list.attrs } : {}) });
      return { name, format: to, text: exportList(parsed.entries, to, { list: list.name, clashSyntax: syntax }) };
    },
  });
}
