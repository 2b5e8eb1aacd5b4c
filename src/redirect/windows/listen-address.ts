// Which address the transparent listeners bind on Windows, and noticing when it changes.
// WinDivert cannot inject a reflected packet towards 127.0.0.1, and Windows' strong host model drops
// an injected inbound packet whose destination is not an address of the interface it arrives on, so
// the listeners bind the address of the interface that carries the default route — the one most
// outbound connections use as their source. The choice is pure; the watcher re-runs it on every
// NotifyIpInterfaceChange callback and reports a different answer, so the daemon can re-bind the
// listeners and call Reflector.setListeners.
import type { AdapterAddress } from '../../sys/windows/iphlpapi.ts';

export interface ListenAddresses {
  4?: { address: string; ifIndex: number };
  6?: { address: string; ifIndex: number };
}

function usable(a: AdapterAddress, family: 4 | 6): boolean {
  if (!a.up || a.family !== family) return false;
  if (family === 4) return !a.address.startsWith('127.') && !a.address.startsWith('169.254.');
  return a.address !== '::1' && !a.address.toLowerCase().startsWith('fe80:');
}

/**
 * The first usable unicast address of the interface Windows would use for each family (from
 * GetBestInterfaceEx towards a public address); none when that interface has no usable address.
 */
export function chooseListenAddresses(adapters: readonly AdapterAddress[], best: { 4?: number; 6?: number }): ListenAddresses {
  const out: ListenAddresses = {};
  for (const family of [4, 6] as const) {
    const idx = best[family];
    if (idx === undefined) continue;
    const a = adapters.find((x) => x.ifIndex === idx && usable(x, family));
    if (a) out[family] = { address: a.address, ifIndex: a.ifIndex };
  }
  return out;
}

export function sameAddresses(a: ListenAddresses, b: ListenAddresses): boolean {
  return a[4]?.address === b[4]?.address && a[6]?.address === b[6]?.address;
}

export interface WatcherDeps {
  adapters: () => AdapterAddress[];
  /** GetBestInterfaceEx for a family; undefined when there is no route. */
  bestInterface: (family: 4 | 6) => number | undefined;
  /** NotifyIpInterfaceChange: calls back on every change until the returned function is called. */
  watch: (onChange: () => void) => () => void;
}

/** Calls `onChange` with the new addresses whenever the choice changes; returns a stop function. */
export function watchListenAddresses(d: WatcherDeps, onChange: (next: ListenAddresses, prev: ListenAddresses) => void): { current: () => ListenAddresses; stop: () => void } {
  const compute = (): ListenAddresses => {
    const b4 = d.bestInterface(4);
    const b6 = d.bestInterface(6);
    return chooseListenAddresses(d.adapters(), { ...(b4 !== undefined ? { 4: b4 } : {}), ...(b6 !== undefined ? { 6: b6 } : {}) });
  };
  let cur = compute();
  const stop = d.watch(() => {
    const next = compute();
    if (sameAddresses(next, cur)) return;
    const prev = cur;
    cur = next;
    onChange(next, prev);
  });
  return { current: () => cur, stop };
}
