// Clash / mihomo rule-provider payloads, YAML (`payload:`) or text (one entry a line, `#` comments).
//   behavior: domain     '+.example.com' (the name and all subdomains), '.example.com' (subdomains
//                        only), '*.example.com' (exactly one label more; `*` is a whole label
//                        anywhere), 'www.example.com' (that name only)
//   behavior: ipcidr     '10.0.0.0/8', '2001:db8::/32'
//   behavior: classical  'TYPE,VALUE[,no-resolve]' lines, types in CLASSICAL below.
// Wildcards other than `+.` have no pattern kind of their own and become anchored regexps
// (normalize.ts wildcardToRegexp), which export turns back into the wildcard.
import { Collector, exportError, requireDestinationOnly } from '../collect.ts';
import { appName, appPath, cidrText, full, keyword, portRange, portText, regexp, regexpToWildcard, suffix, wildcardToRegexp } from '../normalize.ts';
import { forEachLine, stripComment } from '../text.ts';
import type { ListEntry } from '../types.ts';
import { looksLikeYamlPayload, parseYamlPayload } from '../yaml-payload.ts';

export type ClashBehavior = 'domain' | 'ipcidr' | 'classical';
export type ClashSyntax = 'yaml' | 'text';

/** Classical types switchyard loads. Everything else (GEOIP, SRC-*, AND/OR/NOT, …) is unsupported. */
export const CLASSICAL_SUPPORTED = ['DOMAIN', 'DOMAIN-SUFFIX', 'DOMAIN-KEYWORD', 'DOMAIN-REGEX', 'IP-CIDR', 'IP-CIDR6', 'PROCESS-NAME', 'PROCESS-PATH', 'DST-PORT'] as const;

/** Calls `fn(value, line)` for each payload value, from YAML or text. */
function items(text: string, c: Collector, fn: (v: string, line: number) => void): void {
  if (looksLikeYamlPayload(text)) {
    parseYamlPayload(text, c.limits.maxLineLength, c.where(), (it) => fn(it.value.trim(), it.line));
    return;
  }
  forEachLine(text, c.limits.maxLineLength, c.where(), (raw, no) => {
    const s = stripComment(raw);
    if (s !== '') fn(s, no);
  });
}

export function clashDomain(v: string): NonNullable<ListEntry['domain']> {
  if (v.startsWith('+.')) return suffix(v.slice(2));
  if (v.startsWith('.') || v.includes('*')) return wildcardToRegexp(v);
  return full(v);
}

export function parseClash(text: string, behavior: ClashBehavior, c: Collector): void {
  items(text, c, (v, no) => {
    if (behavior === 'domain') {
      if (/[\s,]/.test(v)) throw c.syntax(no, `'${v}' is not a domain (is this a classical list?)`);
      c.push({ line: no, domain: c.value(no, () => clashDomain(v)) });
    } else if (behavior === 'ipcidr') {
      c.push({ line: no, cidr: c.cidr(no, v) });
    } else {
      classical(v, no, c);
    }
  });
}

function classical(v: string, no: number, c: Collector): void {
  const parts = v.split(',').map((p) => p.trim());
  const type = parts[0]!.toUpperCase();
  const value = parts[1];
  const params = parts.slice(2);
  if (!(CLASSICAL_SUPPORTED as readonly string[]).includes(type)) {
    if (!/^[A-Z0-9-]+$/.test(type)) throw c.syntax(no, `'${v}' is not a TYPE,VALUE rule`);
    c.unsupported(no, `rule type ${type} is not supported (supported: ${CLASSICAL_SUPPORTED.join(', ')})`);
    return;
  }
  if (value === undefined || value === '') throw c.syntax(no, `${type} needs a value`);
  const isIp = type === 'IP-CIDR' || type === 'IP-CIDR6';
  for (const p of params) {
    if (isIp && p.toLowerCase() === 'no-resolve') continue; // switchyard never resolves for IP rules
    if (p.toLowerCase() === 'src') { c.unsupported(no, `${type} with 'src' (a source condition) is not supported`); return; }
    throw c.syntax(no, `unknown parameter '${p}' for ${type}`);
  }
  const e: ListEntry = { line: no };
  switch (type) {
    case 'DOMAIN': e.domain = c.value(no, () => full(value)); break;
    case 'DOMAIN-SUFFIX': e.domain = c.value(no, () => suffix(value)); break;
    case 'DOMAIN-KEYWORD': e.domain = c.value(no, () => keyword(value)); break;
    case 'DOMAIN-REGEX': e.domain = c.value(no, () => regexp(value)); break;
    case 'IP-CIDR':
    case 'IP-CIDR6': {
      e.cidr = c.cidr(no, value);
      if ((type === 'IP-CIDR6') !== (e.cidr.family === 6)) throw c.syntax(no, `${type} holds an IPv${e.cidr.family} address`);
      break;
    }
    case 'PROCESS-NAME': e.apps = [c.value(no, () => appName(value))]; break;
    case 'PROCESS-PATH': e.apps = [c.value(no, () => appPath(value))]; break;
    case 'DST-PORT': e.ports = value.split('/').map((p) => c.value(no, () => portRange(p.trim(), '-'))); break;
  }
  c.push(e);
}

function yamlQuote(s: string): string {
  return `'${s.replace(/'/g, "''")}'`;
}

function render(values: string[], syntax: ClashSyntax): string {
  if (syntax === 'text') return values.length ? values.join('\n') + '\n' : '';
  if (!values.length) return 'payload: []\n';
  return 'payload:\n' + values.map((v) => `  - ${yamlQuote(v)}`).join('\n') + '\n';
}

export function exportClash(entries: readonly ListEntry[], behavior: ClashBehavior, syntax: ClashSyntax): string {
  const format = `clash-${behavior}` as const;
  const out: string[] = [];
  for (const e of entries) {
    if (behavior === 'domain') {
      requireDestinationOnly(format, e);
      const d = e.domain;
      if (!d) throw exportError(format, e, 'a domain provider holds domains only');
      if (d.kind === 'suffix') out.push(`+.${d.value}`);
      else if (d.kind === 'full') out.push(d.value);
      else if (d.kind === 'regexp' && regexpToWildcard(d.value) !== null) out.push(regexpToWildcard(d.value)!);
      else throw exportError(format, e, `a domain provider has no ${d.kind} patterns (use clash-classical)`);
    } else if (behavior === 'ipcidr') {
      requireDestinationOnly(format, e);
      if (!e.cidr) throw exportError(format, e, 'an ipcidr provider holds addresses only');
      out.push(cidrText(e.cidr));
    } else {
      out.push(...classicalLines(e));
    }
  }
  return render(out, syntax);
}

function classicalLines(e: ListEntry): string[] {
  const f = 'clash-classical' as const;
  if (e.block) throw exportError(f, e, 'only netrulerouter lists can mark an entry +block');
  if (e.network) throw exportError(f, e, 'a classical line has no network condition');
  const conds = (e.domain || e.cidr ? 1 : 0) + (e.apps?.length ? 1 : 0) + (e.ports?.length ? 1 : 0);
  if (conds !== 1) throw exportError(f, e, 'a classical line holds exactly one condition (no AND of conditions)');
  if (e.cidr) return [`${e.cidr.family === 6 ? 'IP-CIDR6' : 'IP-CIDR'},${cidrText(e.cidr)}`];
  if (e.domain) {
    const d = e.domain;
    if (d.kind === 'full') return [`DOMAIN,${d.value}`];
    if (d.kind === 'suffix') return [`DOMAIN-SUFFIX,${d.value}`];
    if (d.kind === 'keyword') return [`DOMAIN-KEYWORD,${d.value}`];
    if (d.value.includes(',')) throw exportError(f, e, 'a regexp holding a comma cannot be written');
    return [`DOMAIN-REGEX,${d.value}`];
  }
  if (e.ports?.length) return [`DST-PORT,${e.ports.map((p) => portText(p, '-')).join('/')}`];
  // An entry's apps are ORed: one line each is the same rule.
  return e.apps!.map((a) => {
    if (a.kind === 'name') return `PROCESS-NAME,${a.value}`;
    if (a.kind === 'path') return `PROCESS-PATH,${a.value}`;
    throw exportError(f, e, `Clash has no ${a.kind} process patterns`);
  });
}
