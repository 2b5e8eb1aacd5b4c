// The one place that asks which OS this is. Everything else sees RedirectBackend.
import type { RedirectBackend } from './types.ts';
import type { LinuxBackendOptions } from './linux/backend.ts';
import { UnavailableBackend } from './unavailable.ts';

export type { RedirectBackend, RedirectPlan, ListenerPorts, BackendStatus, ApplyResult, PlacementRule } from './types.ts';
export { buildPlan, placementRules } from './plan.ts';

export interface BackendOptions {
  linux?: LinuxBackendOptions;
  /** For tests: pretend to be another platform. */
  platform?: NodeJS.Platform;
}

export async function createRedirectBackend(opts: BackendOptions = {}): Promise<RedirectBackend> {
  const platform = opts.platform ?? process.platform;
  switch (platform) {
    case 'linux': {
      const { LinuxBackend } = await import('./linux/backend.ts');
      return new LinuxBackend(opts.linux);
    }
    case 'win32':
      // The Windows backend (WFP + WinDivert) lives in src/redirect/windows and is wired here once built.
      return new UnavailableBackend('windows', 'the Windows backend (WFP + WinDivert) is not built yet: enforcement is unavailable on Windows');
    default:
      return new UnavailableBackend(platform, `no OS backend for platform '${platform}': enforcement is unavailable (the proxy inbound still works)`);
  }
}
