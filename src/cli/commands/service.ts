// `switchyard service install|uninstall`: the systemd unit, or the Windows sc.exe commands.
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UsageError } from '../../errors.ts';
import { PACKAGE_ROOT_URL } from '../../paths.ts';
import {
  DEFAULT_LINUX_CONFIG,
  SYSTEMD_UNIT_DIR,
  installUnit,
  renderUnit,
  uninstallUnit,
  windowsServiceCommands,
  windowsUninstallCommands,
} from '../../daemon/service.ts';
import { parseCommandArgs } from '../args.ts';

export const summary = 'install or remove the system service (systemd unit; Windows: sc.exe commands)';

const HELP = `usage: switchyard service install [--config FILE] [--target systemd|windows] [--dry-run]
       switchyard service uninstall [--target systemd|windows] [--dry-run]

systemd: writes ${SYSTEMD_UNIT_DIR}/switchyard.service (from packaging/switchyard.service: root with
only the capabilities switchyard needs) and runs \`systemctl daemon-reload\`; then enable it with
\`systemctl enable --now switchyard\`. uninstall disables, stops and removes it.
windows: prints the sc.exe command lines that register (or remove) the service; run them in an
elevated prompt. --dry-run prints the unit (or commands) and changes nothing.

  --config FILE     config the service runs (default ${DEFAULT_LINUX_CONFIG})
  --target T        systemd (default when systemctl exists) or windows
  --unit-dir DIR    where the unit goes (default ${SYSTEMD_UNIT_DIR})
  --dry-run         print, do not install
`;

function defaultTarget(): 'systemd' | 'windows' {
  return existsSync('/usr/bin/systemctl') || existsSync('/bin/systemctl') || existsSync('/run/systemd/system') ? 'systemd' : 'windows';
}

export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(
    argv,
    { config: { type: 'string' }, target: { type: 'string' }, 'unit-dir': { type: 'string' }, 'dry-run': { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
    true,
  );
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const action = positionals[0];
  if ((action !== 'install' && action !== 'uninstall') || positionals.length !== 1) throw new UsageError('usage: switchyard service install|uninstall (see --help)');
  const target = values.target ?? defaultTarget();
  if (target !== 'systemd' && target !== 'windows') throw new UsageError(`--target must be systemd or windows, not '${target}'`);
  const script = fileURLToPath(new URL('bin/switchyard.js', PACKAGE_ROOT_URL));
  if (target === 'windows') {
    const cmds = action === 'install' ? windowsServiceCommands({ node: process.execPath, script, config: values.config ?? 'C:\\ProgramData\\switchyard\\config.toml' }) : windowsUninstallCommands();
    process.stdout.write(`# run in an elevated prompt:\n${cmds.join('\n')}\n`);
    return 0;
  }
  const dir = values['unit-dir'] ?? SYSTEMD_UNIT_DIR;
  if (action === 'install') {
    const unit = renderUnit({ command: [process.execPath, script], config: resolve(values.config ?? DEFAULT_LINUX_CONFIG) });
    if (values['dry-run']) {
      process.stdout.write(unit);
      return 0;
    }
    const path = installUnit(unit, dir, values['unit-dir'] === undefined && existsSync('/run/systemd/system'));
    process.stdout.write(`wrote ${path}\nnext: systemctl enable --now switchyard\n`);
    return 0;
  }
  if (values['dry-run']) {
    process.stdout.write(`would remove ${dir}/switchyard.service (after systemctl disable --now switchyard)\n`);
    return 0;
  }
  const path = uninstallUnit(dir, values['unit-dir'] === undefined && existsSync('/run/systemd/system'));
  process.stdout.write(`removed ${path}\n`);
  return 0;
}
