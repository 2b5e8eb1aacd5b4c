// `switchyard lists convert FILE --from FORMAT [--to FORMAT]`: parse a rule list strictly and write
// it in another format (or, without --to, just check it and print what it holds). The daemon-side
// `switchyard lists` (sources, last update, pending changes) comes with the revision store.
import { open, readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { ListError, UsageError } from '../../errors.ts';
import { DEFAULT_LIMITS, LIST_FORMATS, exportList, isListFormat, parseList, type ListEntry, type ListFormat } from '../../lists/index.ts';
import { formatOption, parseCommandArgs } from '../args.ts';
import { call, parseClientArgs, printJson, table, COMMON_HELP } from '../client.ts';
import { writeFile } from 'node:fs/promises';

export const summary = 'rule lists of the running daemon (view, refresh, export); convert or check list files';

const HELP = `usage: switchyard lists [--format text|json] [--socket PATH]
       switchyard lists refresh [NAME] [--format text|json] [--socket PATH]
       switchyard lists export NAME --format FORMAT [--clash-syntax yaml|text] [--out FILE] [--socket PATH]
       switchyard lists convert FILE --from FORMAT [--to FORMAT] [--out FILE]
                              [--clash-syntax yaml|text] [--attrs ATTR,...] [--unsupported error|skip]
                              [--dedupe] [--format text|json]

Parses FILE strictly (errors name the line) and writes it in another format to stdout or --out.
Without --to it only checks the file and prints what it holds. Formats:
  ${LIST_FORMATS.join(', ')}
Entries a target format cannot hold (an IP range in a v2fly list, an app in a plain list) are
refused with the source line; nothing is dropped silently.

  --from FORMAT          format of FILE (v2fly includes are read from FILE's directory)
  --to FORMAT            format to write
  --out FILE             write there instead of stdout
  --clash-syntax SYNTAX  Clash output: yaml (payload:, default) or text
  --attrs LIST           v2fly: keep entries with these attributes, drop those with -attr (cn,-ads)
  --unsupported MODE     error (default) or skip unsupported fields/rule types, counting them
  --dedupe               write each entry once
  --format FMT           text (default) or json: the summary on stderr (text) or stdout (json)
`;

interface Row {
  name: string;
  format: string;
  egress: string;
  source: string;
  entries: number | null;
  lastCheck: string | null;
  lastChange: string | null;
  lastError: string | null;
  pending: number | null;
  pendingDiff: string | null;
}

export async function run(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === '--help' || sub === '-h' || sub === 'help') {
    process.stdout.write(HELP);
    return 0;
  }
  if (sub === undefined || sub === 'show' || sub.startsWith('--')) return show(sub === undefined || sub === 'show' ? rest : argv);
  if (sub === 'refresh') return refresh(rest);
  if (sub === 'export') return exportCmd(rest);
  if (sub !== 'convert') throw new UsageError(`unknown lists subcommand '${sub}' (try: switchyard lists --help)`);
  const { values, positionals } = parseCommandArgs(
    rest,
    {
      from: { type: 'string' },
      to: { type: 'string' },
      out: { type: 'string' },
      'clash-syntax': { type: 'string' },
      attrs: { type: 'string' },
      unsupported: { type: 'string' },
      dedupe: { type: 'boolean' },
      format: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    true,
  );
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const format = formatOption(values.format);
  if (positionals.length !== 1) throw new UsageError('give exactly one FILE');
  const file = positionals[0]!;
  const from = listFormat(values.from, '--from', true)!;
  const to = listFormat(values.to, '--to', false);
  const syntax = values['clash-syntax'];
  if (syntax !== undefined && syntax !== 'yaml' && syntax !== 'text') throw new UsageError("--clash-syntax must be 'yaml' or 'text'");
  const unsupported = values.unsupported;
  if (unsupported !== undefined && unsupported !== 'error' && unsupported !== 'skip') throw new UsageError("--unsupported must be 'error' or 'skip'");

  const data = await readLimited(file, DEFAULT_LIMITS.maxBytes);
  const parsed = await parseList(data, from, {
    list: file,
    file,
    ...(unsupported ? { unsupported } : {}),
    ...(values.attrs ? { attrs: values.attrs.split(',').map((a) => a.trim()).filter(Boolean) } : {}),
    readInclude: (name) => readLimited(join(dirname(file), name), DEFAULT_LIMITS.maxBytes),
  });
  let entries: ListEntry[] = parsed.entries;
  let duplicates = 0;
  if (values.dedupe) {
    const seen = new Set<string>();
    entries = entries.filter((e) => {
      const { line: _l, source: _s, ...k } = e;
      const key = JSON.stringify(k);
      if (seen.has(key)) { duplicates++; return false; }
      seen.add(key);
      return true;
    });
  }
  const output = to ? exportList(entries, to, { file, ...(syntax ? { clashSyntax: syntax } : {}) }) : null;
  if (output !== null) {
    if (values.out) await writeOut(values.out, output);
    else if (format === 'text') process.stdout.write(output);
  }
  const summaryObj = {
    file,
    from,
    to: to ?? null,
    entries: parsed.entries.length,
    written: output === null ? 0 : entries.length,
    duplicates,
    skipped: parsed.skipped,
    disabled: parsed.disabled,
    notices: parsed.notices,
  };
  if (format === 'json') {
    process.stdout.write(JSON.stringify(output !== null && !values.out ? { ...summaryObj, output } : summaryObj) + '\n');
  } else {
    const lines = [`${file}: ${parsed.entries.length} entries (${from})${to ? `, ${entries.length} written as ${to}` : ''}`];
    if (duplicates) lines.push(`${duplicates} duplicates dropped`);
    for (const s of parsed.skipped) lines.push(`skipped ${s.source ?? file} line ${s.line}: ${s.reason}`);
    for (const n of parsed.notices) lines.push(`note: ${n}`);
    process.stderr.write(lines.join('\n') + '\n');
  }
  return 0;
}

function listFormat(v: string | undefined, flag: string, required: boolean): ListFormat | undefined {
  if (v === undefined) {
    if (required) throw new UsageError(`${flag} FORMAT is required (${LIST_FORMATS.join(', ')})`);
    return undefined;
  }
  if (!isListFormat(v)) throw new UsageError(`${flag}: '${v}' is not one of ${LIST_FORMATS.join(', ')}`);
  return v;
}

/** Reads at most `max` bytes and refuses bigger files without reading them whole. */
async function readLimited(path: string, max: number): Promise<Buffer> {
  let fh;
  try {
    fh = await open(path, 'r');
  } catch (e) {
    throw new ListError('SY_ERR_LIST_READ', (e as Error).message, { file: path }, e);
  }
  try {
    const st = await fh.stat();
    if (st.size > max) throw new ListError('SY_ERR_LIST_TOO_LARGE', `${st.size} bytes is over the ${max}-byte limit`, { file: path });
    return await readFile(fh);
  } finally {
    await fh.close();
  }
}

async function writeOut(path: string, text: string): Promise<void> {
  const { writeFile } = await import('node:fs/promises');
  try {
    await writeFile(path, text);
  } catch (e) {
    throw new ListError('SY_ERR_LIST_READ', `cannot write ${path}: ${(e as Error).message}`, { file: path }, e);
  }
}

const DAEMON_HELP = `The daemon view: every [[list]] of the running config with its format, egress, entries loaded,
source (path or URL), last check and change of a url list, its last error, and the pending
revision a fetched change made (approve it with switchyard approve N).
${COMMON_HELP}`;

async function show(argv: string[]): Promise<number> {
  const a = parseClientArgs(argv, {});
  if (a.help) {
    process.stdout.write(HELP + '\n' + DAEMON_HELP);
    return 0;
  }
  const r = (await call(a.socket, 'lists')) as { lists: Row[] };
  if (a.format === 'json') {
    printJson(r);
    return 0;
  }
  process.stdout.write(
    table(
      ['NAME', 'FORMAT', 'EGRESS', 'ENTRIES', 'SOURCE', 'LAST UPDATE', 'PENDING'],
      r.lists.map((x) => [x.name, x.format, x.egress, x.entries, x.source, x.lastChange ?? x.lastCheck, x.pending !== null ? `#${x.pending}` : x.lastError ? `error: ${x.lastError}` : null]),
    ),
  );
  for (const x of r.lists) if (x.pendingDiff) process.stdout.write(`\n${x.pendingDiff}\n`);
  return 0;
}

async function refresh(argv: string[]): Promise<number> {
  const a = parseClientArgs(argv, {}, true);
  if (a.help) {
    process.stdout.write(HELP + '\n' + DAEMON_HELP);
    return 0;
  }
  if (a.positionals.length > 1) throw new UsageError('give at most one list NAME');
  const r = (await call(a.socket, 'lists.refresh', a.positionals[0] ? { name: a.positionals[0] } : {})) as {
    results: { name: string; ok: boolean; pending?: number | null; diff?: string | null; code?: string | null; error?: string }[];
  };
  if (a.format === 'json') printJson(r);
  else {
    for (const x of r.results) {
      if (!x.ok) process.stdout.write(`${x.name}: refused: ${x.code ?? ''} ${x.error}\n`);
      else if (x.pending != null) process.stdout.write(`${x.name}: pending revision #${x.pending} (switchyard diff ${x.pending} / approve ${x.pending})\n${x.diff ?? ''}\n`);
      else process.stdout.write(`${x.name}: unchanged\n`);
    }
  }
  return r.results.every((x) => x.ok) ? 0 : 1;
}

async function exportCmd(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(
    argv,
    { format: { type: 'string' }, 'clash-syntax': { type: 'string' }, out: { type: 'string' }, socket: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    true,
  );
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  if (positionals.length !== 1) throw new UsageError('give exactly one list NAME');
  if (values.format === undefined || !isListFormat(values.format)) throw new UsageError(`--format must be one of ${LIST_FORMATS.join(', ')}`);
  const syntax = values['clash-syntax'];
  if (syntax !== undefined && syntax !== 'yaml' && syntax !== 'text') throw new UsageError('--clash-syntax must be yaml or text');
  const r = (await call(values.socket, 'lists.export', { name: positionals[0], format: values.format, ...(syntax ? { clashSyntax: syntax } : {}) })) as { text: string };
  if (values.out !== undefined) await writeFile(values.out, r.text);
  else process.stdout.write(r.text);
  return 0;
}
