// The system service: a systemd unit rendered from packaging/switchyard.service, and the sc.exe
// command lines that register the Windows service. Rendering is pure; install/uninstall write
// the unit and run systemctl.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { DaemonError } from '../errors.ts';
import { SYSTEMD_UNIT, WINDOWS_SERVICE_NAME } from '../ids.ts';
import { PACKAGE_ROOT_URL } from '../paths.ts';

export const UNIT_TEMPLATE_URL = new URL('packaging/switchyard.service', PACKAGE_ROOT_URL);
export const SYSTEMD_UNIT_DIR = '/etc/systemd/system';
export const DEFAULT_LINUX_CONFIG = '/etc/switchyard/config.toml';

/** systemd splits ExecStart on spaces and honours double quotes; quote what needs it. */
function systemdQuote(arg: string): string {
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(arg)) return arg;
  return `"${arg.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

export interface UnitOptions {
  /** The command that runs switchyard, e.g. ['/usr/bin/node', '/usr/lib/switchyard/bin/switchyard.js']. */
  command: string[];
  config: string;
  template?: string;
}

export function renderUnit(o: UnitOptions): string {
  const tpl = o.template ?? readFileSync(UNIT_TEMPLATE_URL, 'utf8');
  if (o.command.length === 0 || !o.command[0]!.startsWith('/')) throw new DaemonError('SY_ERR_DAEMON_SERVICE', 'the service command must start with an absolute path');
  if (!o.config.startsWith('/')) throw new DaemonError('SY_ERR_DAEMON_SERVICE', `the config path must be absolute, not '${o.config}'`);
  if (/[\n%$]/.test(o.command.join(' ') + o.config)) throw new DaemonError('SY_ERR_DAEMON_SERVICE', 'paths with newlines, % or $ cannot go into a unit file');
  return tpl.replaceAll('@SWITCHYARD@', o.command.map(systemdQuote).join(' ')).replaceAll('@CONFIG@', systemdQuote(o.config));
}

/**
 * The sc.exe lines that register switchyard as a Windows service (LocalSystem, automatic start,
 * restart on failure). `binPath=` takes the whole command line as one argument.
 */
export function windowsServiceCommands(o: { node: string; script: string; config: string }): string[] {
  const bin = `"${o.node}" "${o.script}" up --config "${o.config}"`;
  const n = WINDOWS_SERVICE_NAME;
  return [
    `sc.exe create ${n} binPath= "${bin.replace(/"/g, '\\"')}" start= auto obj= LocalSystem DisplayName= "switchyard split tunnelling"`,
    `sc.exe description ${n} "Per-app and per-domain egress selection that fails closed"`,
    `sc.exe failure ${n} reset= 86400 actions= restart/2000/restart/5000/restart/30000`,
    `sc.exe start ${n}`,
  ];
}

export function windowsUninstallCommands(): string[] {
  return [`sc.exe stop ${WINDOWS_SERVICE_NAME}`, `sc.exe delete ${WINDOWS_SERVICE_NAME}`];
}

function run(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new DaemonError('SY_ERR_DAEMON_SERVICE', `${cmd} ${args.join(' ')} failed: ${(e.stderr ?? e.message).trim()}`, err);
  }
}

export function systemdAvailable(): boolean {
  return existsSync('/run/systemd/system');
}

export function installUnit(unitText: string, dir = SYSTEMD_UNIT_DIR, reload = systemdAvailable()): string {
  const path = `${dir}/${SYSTEMD_UNIT}`;
  try {
    writeFileSync(path, unitText, { mode: 0o644 });
  } catch (err) {
    throw new DaemonError('SY_ERR_DAEMON_SERVICE', `cannot write ${path}: ${(err as Error).message}`, err);
  }
  if (reload) run('systemctl', ['daemon-reload']);
  return path;
}

export function uninstallUnit(dir = SYSTEMD_UNIT_DIR, live = systemdAvailable()): string {
  const path = `${dir}/${SYSTEMD_UNIT}`;
  if (live) {
    try {
      run('systemctl', ['disable', '--now', SYSTEMD_UNIT]);
    } catch {
      /* not enabled or not running: fine */
    }
  }
  rmSync(path, { force: true });
  if (live) run('systemctl', ['daemon-reload']);
  return path;
}
