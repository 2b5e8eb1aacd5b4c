// Where the Wine tests find their tools (made by tools/windows/wine-setup.sh, which
// tools/install-test-deps.sh runs), and the one check each of them starts with.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const WINE = '/usr/lib/wine/wine64';
export const WINESERVER = '/usr/lib/wine/wineserver';
export const KOFFI_VERSION = (JSON.parse(readFileSync(join(ROOT, 'node_modules/koffi/package.json'), 'utf8')) as { version: string }).version;
export const NODE_EXE = join(ROOT, '.tools/win/node/package/bin/node.exe');
export const KOFFI_WIN = join(ROOT, `.tools/win/koffi-${KOFFI_VERSION}/package`);
/** A Wine prefix made once by wine-setup.sh (creating one takes ~10 s); tests keep no state in it. */
export const PREFIX = join(ROOT, '.tools/win/prefix');

/** Why the Wine tools are not usable here, naming the missing piece; undefined when all are there. */
export function wineToolsMissing(): string | undefined {
  // CI's second pass sets this: under Wine the code runs in the Windows node.exe from
  // .tools/win, not in the host Node whose version that pass is about, so a rerun shows nothing new.
  if (process.env['SWITCHYARD_SKIP_WINE'] === '1') return 'skipped: SWITCHYARD_SKIP_WINE=1 (the Wine tests run a Windows node.exe, the same in every pass)';
  if (!existsSync(WINE)) return 'needs wine64 (tools/windows/wine-setup.sh)';
  if (!existsSync(NODE_EXE)) return 'needs the Windows build of Node 20 in .tools/win/node (tools/windows/wine-setup.sh)';
  if (!existsSync(KOFFI_WIN)) return `needs koffi's win32 binary in .tools/win/koffi-${KOFFI_VERSION} (tools/windows/wine-setup.sh)`;
  if (!existsSync(join(PREFIX, 'system.reg'))) return 'needs the Wine prefix .tools/win/prefix (tools/windows/wine-setup.sh)';
  return undefined;
}
