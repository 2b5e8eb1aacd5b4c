// `switchyard dns system on|off` on Windows: one Name Resolution Policy Table (NRPT) rule for the
// namespace "." (every name) whose generic DNS server is switchyard's forwarder. Windows' DNS client
// consults the NRPT before any adapter's DNS servers, so the rule covers IPv6, every adapter, and
// adapters that appear later — unlike rewriting each adapter's DNS servers.
//
// Mechanism: the registry, written directly (advapi32 Reg* through koffi), not PowerShell's
// Add-DnsClientNrptRule: no PowerShell process per change, the exact previous bytes can be saved and
// restored, and the same code runs under Wine's registry in tests. The layout is [MS-GPNRPT] 2.2.2:
// a key per rule, named by a GUID, with
//   Version            REG_DWORD     1
//   Name               REG_MULTI_SZ  "."            (the namespaces the rule covers)
//   ConfigOptions      REG_DWORD     0x8            (only the generic DNS server option is set)
//   GenericDNSServers  REG_SZ        "127.0.0.1"    (';'-separated addresses — no port: port 53)
//   IPSECCARestriction REG_SZ        ""
// Where: the local table `SYSTEM\CurrentControlSet\Services\Dnscache\Parameters\DnsPolicyConfig`,
// unless the Group Policy table `SOFTWARE\Policies\Microsoft\Windows NT\DNSClient\DnsPolicyConfig`
// holds rules: then Windows ignores the local table, so the rule must go beside the policy ones (and a
// Group Policy refresh may remove it; `status` would show it gone — not watched yet).
//
// Saved and restored exactly: before the first `on`, the previous content of our rule key (normally
// absent) and which table was chosen are saved to the state directory; `off` writes those bytes back
// (or deletes the key when it was absent) and removes the save. A second `on` keeps the first save.
// Every change ends with DnsFlushResolverCache, so cached answers from the old servers go.
import { isIP } from 'node:net';
import { NrptError } from '../../errors.ts';
import { NRPT_RULE_GUID } from '../../ids.ts';
import { REG_DWORD, REG_MULTI_SZ, REG_SZ } from '../../sys/windows/constants.ts';
import type { RegKeyContent, RegValue } from '../../sys/windows/advapi32.ts';

export const NRPT_LOCAL = 'SYSTEM\\CurrentControlSet\\Services\\Dnscache\\Parameters\\DnsPolicyConfig';
export const NRPT_POLICY = 'SOFTWARE\\Policies\\Microsoft\\Windows NT\\DNSClient\\DnsPolicyConfig';

/** The registry as the executor needs it (HKLM-relative paths); koffi in production, a map in tests. */
export interface RegistryIo {
  read(path: string): RegKeyContent | null;
  write(path: string, values: readonly RegValue[]): void;
  remove(path: string): void;
}

/** What `on` saved: enough to put the registry back byte for byte. */
export interface NrptSaved {
  version: 1;
  /** The key our rule was written to. */
  key: string;
  /** That key's values before (hex data), or null when the key did not exist. */
  previous: { name: string; type: number; hex: string }[] | null;
  /** The forwarder address written (for status and for noticing a change by someone else). */
  server: string;
  /** Whether the table key (DnsPolicyConfig) existed; `off` removes it again when it did not and is empty. */
  tableExisted?: boolean;
}

export interface SavedStateIo {
  load(): NrptSaved | null;
  store(s: NrptSaved): void;
  clear(): void;
}

export type NrptStep =
  | { op: 'save'; saved: NrptSaved }
  | { op: 'write'; key: string; values: RegValue[] }
  | { op: 'delete'; key: string }
  | { op: 'clearSave' }
  | { op: 'flush' };

export interface NrptPlan {
  steps: NrptStep[];
  /** Other rules for "." (another VPN, a policy): the most specific rule wins, equal ones conflict. */
  warnings: string[];
}

function sz(s: string): Buffer {
  return Buffer.from(`${s}\0`, 'utf16le');
}
function multiSz(xs: readonly string[]): Buffer {
  return Buffer.from(`${xs.map((x) => `${x}\0`).join('')}\0`, 'utf16le');
}
function dword(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0);
  return b;
}

/** Decodes a REG_MULTI_SZ (bounded by its own length; a missing final NUL is tolerated). */
export function decodeMultiSz(b: Buffer): string[] {
  const text = b.toString('utf16le', 0, b.length - (b.length % 2));
  return text.split('\0').filter((s) => s.length > 0);
}

/** The rule's values for a forwarder address (NRPT names servers by address only: port 53). */
export function nrptRuleValues(server: string): RegValue[] {
  return [
    { name: 'Version', type: REG_DWORD, data: dword(1) },
    { name: 'Name', type: REG_MULTI_SZ, data: multiSz(['.']) },
    { name: 'ConfigOptions', type: REG_DWORD, data: dword(0x8) },
    { name: 'GenericDNSServers', type: REG_SZ, data: sz(server) },
    { name: 'IPSECCARestriction', type: REG_SZ, data: sz('') },
  ];
}

/**
 * The forwarder address NRPT can point at: one of switchyard's DNS listeners on port 53 (NRPT has
 * no port), loopback preferred; a wildcard listener is reached as 127.0.0.1 / ::1.
 */
export function nrptServer(listeners: readonly { host: string; port: number }[]): string {
  const on53 = listeners.filter((l) => l.port === 53 && isIP(l.host) !== 0);
  const pick = (h: string) => (h === '0.0.0.0' ? '127.0.0.1' : h === '::' ? '::1' : h);
  const loop = on53.find((l) => l.host.startsWith('127.') || l.host === '::1' || l.host === '0.0.0.0' || l.host === '::');
  const any = loop ?? on53[0];
  if (!any) {
    throw new NrptError(`the system resolver can only be pointed at port 53 (NRPT names servers without a port), but [dns] listen has ${listeners.map((l) => `${l.host}:${l.port}`).join(', ') || 'nothing'}; add a listener on 127.0.0.1:53`);
  }
  return pick(any.host);
}

function ruleKey(table: string): string {
  return `${table}\\${NRPT_RULE_GUID}`;
}

function toSaved(c: RegKeyContent | null): NrptSaved['previous'] {
  return c ? c.values.map((v) => ({ name: v.name, type: v.type, hex: v.data.toString('hex') })) : null;
}

/** Rules other than ours whose namespaces include "." (read-only scan of both tables). */
function otherDotRules(reg: Pick<RegistryIo, 'read'>): string[] {
  const out: string[] = [];
  for (const table of [NRPT_POLICY, NRPT_LOCAL]) {
    for (const sub of reg.read(table)?.subkeys ?? []) {
      if (sub.toLowerCase() === NRPT_RULE_GUID.toLowerCase()) continue;
      const name = reg.read(`${table}\\${sub}`)?.values.find((v) => v.name.toLowerCase() === 'name');
      if (name && name.type === REG_MULTI_SZ && decodeMultiSz(name.data).includes('.')) out.push(`${table}\\${sub}`);
    }
  }
  return out;
}

/** Pure given what it read: the steps of `dns system on`. */
export function planOn(reg: Pick<RegistryIo, 'read'>, saved: NrptSaved | null, server: string): NrptPlan {
  if (isIP(server) === 0) throw new NrptError(`'${server}' is not an IP address`);
  const steps: NrptStep[] = [];
  // Keep the first save: its `previous` is what the machine had before switchyard.
  let key: string;
  if (!saved) {
    const policyRules = (reg.read(NRPT_POLICY)?.subkeys ?? []).filter((s) => s.toLowerCase() !== NRPT_RULE_GUID.toLowerCase());
    const table = policyRules.length > 0 ? NRPT_POLICY : NRPT_LOCAL;
    key = ruleKey(table);
    steps.push({ op: 'save', saved: { version: 1, key, previous: toSaved(reg.read(key)), server, tableExisted: reg.read(table) !== null } });
  } else {
    key = saved.key;
    if (saved.server !== server) steps.push({ op: 'save', saved: { ...saved, server } });
  }
  steps.push({ op: 'write', key, values: nrptRuleValues(server) }, { op: 'flush' });
  const warnings = otherDotRules(reg).map((k) => `another NRPT rule also covers ".": ${k} (the two conflict; remove one)`);
  if (key.startsWith(NRPT_POLICY)) warnings.push('Group Policy NRPT rules exist, so the rule went into the policy table; a policy refresh may remove it');
  return { steps, warnings };
}

/** Pure given what it read: the steps of `dns system off`. Without a save there is nothing of ours. */
export function planOff(reg: Pick<RegistryIo, 'read'>, saved: NrptSaved | null): NrptPlan {
  if (!saved) {
    // No save but our key exists (state directory lost): remove our own rule, it is ours by GUID.
    const leftovers = [NRPT_LOCAL, NRPT_POLICY].map(ruleKey).filter((k) => reg.read(k) !== null);
    return { steps: [...leftovers.map((key): NrptStep => ({ op: 'delete', key })), ...(leftovers.length ? [{ op: 'flush' } as const] : [])], warnings: leftovers.length ? ['no saved state: removed switchyard\'s rule by its GUID'] : [] };
  }
  const steps: NrptStep[] = [];
  if (saved.previous === null) steps.push({ op: 'delete', key: saved.key });
  else steps.push({ op: 'write', key: saved.key, values: saved.previous.map((v) => ({ name: v.name, type: v.type, data: Buffer.from(v.hex, 'hex') })) });
  if (saved.tableExisted === false && saved.previous === null) {
    // The table key was created by `on`: remove it too when nothing but our rule is in it.
    const table = saved.key.slice(0, saved.key.lastIndexOf('\\'));
    const t = reg.read(table);
    const onlyOurs = t !== null && t.values.length === 0 && t.subkeys.every((k) => k.toLowerCase() === NRPT_RULE_GUID.toLowerCase());
    if (onlyOurs) steps.push({ op: 'delete', key: table });
  }
  steps.push({ op: 'clearSave' }, { op: 'flush' });
  const now = reg.read(saved.key);
  const ours = nrptRuleValues(saved.server);
  const changed = now !== null && !sameValues(now.values, ours);
  return { steps, warnings: changed ? [`${saved.key} was changed since switchyard wrote it; restoring what was there before anyway`] : [] };
}

export function sameValues(a: readonly RegValue[], b: readonly RegValue[]): boolean {
  const norm = (xs: readonly RegValue[]) =>
    xs.map((v) => `${v.name.toLowerCase()}|${v.type}|${v.data.toString('hex')}`).sort().join('\n');
  return norm(a) === norm(b);
}

export interface NrptDeps {
  reg: RegistryIo;
  state: SavedStateIo;
  /** DnsFlushResolverCache. */
  flush: () => void;
}

/** Runs a plan's steps in order; the save is written before the registry changes. */
export function runNrptPlan(plan: NrptPlan, d: NrptDeps): void {
  for (const s of plan.steps) {
    switch (s.op) {
      case 'save':
        d.state.store(s.saved);
        break;
      case 'write':
        d.reg.write(s.key, s.values);
        break;
      case 'delete':
        d.reg.remove(s.key);
        break;
      case 'clearSave':
        d.state.clear();
        break;
      case 'flush':
        d.flush();
        break;
    }
  }
}

/** `status`: is our rule in place and what does it point at? */
export function nrptStatus(reg: Pick<RegistryIo, 'read'>, saved: NrptSaved | null): { on: boolean; key: string | null; server: string | null; intact: boolean } {
  const key = saved?.key ?? [NRPT_LOCAL, NRPT_POLICY].map(ruleKey).find((k) => reg.read(k) !== null) ?? null;
  if (!key) return { on: false, key: null, server: null, intact: true };
  const now = reg.read(key);
  if (!now) return { on: false, key, server: saved?.server ?? null, intact: saved === null };
  const srv = now.values.find((v) => v.name.toLowerCase() === 'genericdnsservers');
  const server = srv && srv.type === REG_SZ ? srv.data.toString('utf16le').replace(/\0+$/, '') : null;
  return { on: true, key, server, intact: server !== null && sameValues(now.values, nrptRuleValues(server)) };
}
