// The one place that asks which OS this is. Everything else sees RedirectBackend and FlowIdentity.
import type { RedirectBackend, SystemDns } from './types.ts';
import type { LinuxBackendOptions } from './linux/backend.ts';
import type { WindowsRedirectOptions } from './windows/redirect-backend.ts';
import type { FlowIdentity } from '../flow/types.ts';
import type { Config, Policy } from '../policy/types.ts';
import { UnavailableBackend } from './unavailable.ts';

export type { RedirectBackend, RedirectPlan, ListenerPorts, BackendStatus, ApplyResult, PlacementRule, SystemDns, SystemDnsResult } from './types.ts';
export { buildPlan, placementRules } from './plan.ts';

export interface BackendOptions {
  linux?: LinuxBackendOptions;
  /** Windows: everything but the config (tests inject WFP sessions and the reflection here). */
  windows?: Omit<WindowsRedirectOptions, 'config'>;
  /** The config the daemon runs; backends that match apps themselves (Windows WFP) build from it. */
  config?: () => Config | undefined;
  /**
   * The policy the daemon runs (live): backends that classify connections themselves (the Windows
   * reflection) ask it per new connection. Without it the Windows backend has no reflection and
   * refuses to enforce.
   */
  policy?: () => Policy | undefined;
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
    case 'win32': {
      // WFP refusals (not elevated, no WinDivert, 0x6E4, no reflection) come from apply(), before
      // anything is changed: creating the backend (and its reflection) touches nothing.
      const { WindowsRedirectBackend } = await import('./windows/redirect-backend.ts');
      let reflection = opts.windows?.reflection;
      if (!reflection && opts.policy) {
        const { systemReflection } = await import('./windows/reflection.ts');
        reflection = await systemReflection(opts.policy, opts.windows?.log);
      }
      return new WindowsRedirectBackend({ ...opts.windows, ...(reflection ? { reflection } : {}), config: opts.config ?? (() => undefined) });
    }
    default:
      return new UnavailableBackend(platform, `no OS backend for platform '${platform}': enforcement is unavailable (the proxy inbound still works)`);
  }
}

export interface FlowIdentityOptions {
  /** Egress group of a transparent listener port (Linux: the port tells the group). */
  groupOfPort: (port: number) => string | undefined;
  /** The backend that was made (Windows: its reflection's NAT table identifies transparent flows). */
  backend?: RedirectBackend | null;
}

/**
 * The FlowIdentity for the OS a backend was made for (`backend.os`), or undefined when there is
 * none. Windows: transparent connections are identified by the reflection's NAT table (refused as
 * not reflected without an entry, or without an enforcing backend); processOf (the SOCKS/HTTP
 * inbound's client) answers from the TCP table.
 */
export async function createFlowIdentity(os: string | null, o: FlowIdentityOptions): Promise<FlowIdentity | undefined> {
  switch (os) {
    case 'linux': {
      const { LinuxFlowIdentity } = await import('./linux/identity.ts');
      return new LinuxFlowIdentity({ groupOfPort: o.groupOfPort });
    }
    case 'windows': {
      const { systemWindowsIdentity } = await import('./windows/identity.ts');
      const { WindowsRedirectBackend } = await import('./windows/redirect-backend.ts');
      const b = o.backend;
      return systemWindowsIdentity(b instanceof WindowsRedirectBackend ? (f, la, pa, pp) => b.natLookup(f, la, pa, pp) : undefined);
    }
    default:
      return undefined;
  }
}

/** Which mechanism `switchyard dns system` uses on this OS: NRPT (Windows), resolv.conf or
 * systemd-resolved (Linux), or none. */
export function systemDnsKind(platform: NodeJS.Platform = process.platform): 'nrpt' | 'linux' | null {
  if (platform === 'win32') return 'nrpt';
  if (platform === 'linux') return 'linux';
  return null;
}

/** The Windows resolver switch (NRPT rule for "."), or null on other systems. */
export async function createSystemDns(stateDir: string, platform: NodeJS.Platform = process.platform): Promise<SystemDns | null> {
  if (systemDnsKind(platform) !== 'nrpt') return null;
  const { nrptSystemDns } = await import('./windows/system-dns.ts');
  return nrptSystemDns(stateDir);
}
