// dnsapi.dll — raw declaration and wrapper for flushing the DNS client cache after switchyard changes
// the system resolver (NRPT rule), so stale answers from before the change are not used.
import { OsCallError } from '../../errors.ts';
import { lazyLibrary, ok } from './load.ts';

export const dnsapi = lazyLibrary('dnsapi.dll', (lib) => ({
  // Exported but undocumented on learn.microsoft.com; `ipconfig /flushdns` calls it. BOOL (void).
  DnsFlushResolverCache: lib.func('int32_t __stdcall DnsFlushResolverCache()'),
}));

export function flushResolverCache(): void {
  if (!ok(dnsapi.get().DnsFlushResolverCache() as number)) {
    throw new OsCallError('SY_ERR_WIN_CALL', 'DnsFlushResolverCache', undefined);
  }
}
