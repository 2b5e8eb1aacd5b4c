// Safe layer over fwpuclnt.dll: an engine session object that owns its handle, runs transactions,
// turns every non-zero status into an OsCallError naming the call, and converts switchyard's filter
// specs (plain data, built by src/redirect/windows/filter-plan.ts) into FWPM_FILTER0 values.
//
// Two sessions are used by the backend: a normal one for persistent objects (provider, sublayer, the
// kill-switch blocks — they outlive the process and a reboot) and a DYNAMIC one for the permits that
// must die with the daemon (WFP deletes a dynamic session's objects when its handle closes, including
// when the process crashes).
import koffi from 'koffi';
import { isIPv4 } from 'node:net';
import { OsCallError } from '../../errors.ts';
import type { Cidr } from '../../policy/types.ts';
import { fwpuclnt } from './fwpuclnt.ts';
import { hex } from './load.ts';
import { ipToBytes } from './addr.ts';
import { guidFromStruct, guidToStruct, type GuidStruct } from './guid.ts';
import { FWPM_FILTER0 as FWPM_FILTER0_T } from './types.ts';
import * as C from './constants.ts';

// ---------------------------------------------------------------- specs (plain data)

export type WfpLayer = 'v4' | 'v6';

export type WfpCondition =
  | { field: 'appId'; path: string }
  | { field: 'remoteAddress'; cidr: Cidr }
  | { field: 'remotePort'; from: number; to: number }
  | { field: 'protocol'; protocol: 6 | 17 }
  | { field: 'loopback' };

export interface WfpFilterSpec {
  /** GUID text; stable for a given name (see guid.ts nameGuid). */
  key: string;
  /** Display name, `switchyard: ...`. */
  name: string;
  layer: WfpLayer;
  action: 'block' | 'permit';
  /** 0–15 inside switchyard's sublayer; higher is evaluated first. */
  weight: number;
  /** Different fields are ANDed; repeated fields are ORed (WFP's rule). */
  conditions: WfpCondition[];
}

export interface WfpProviderSpec {
  key: string;
  name: string;
  persistent: boolean;
}

export interface WfpSublayerSpec {
  key: string;
  name: string;
  weight: number;
  persistent: boolean;
}

export const LAYER_GUID: Record<WfpLayer, string> = {
  v4: C.FWPM_LAYER_ALE_AUTH_CONNECT_V4,
  v6: C.FWPM_LAYER_ALE_AUTH_CONNECT_V6,
};

// ---------------------------------------------------------------- spec → C values

/** An app id blob that FwpmGetAppIdFromFileName0 allocated; `ptr` goes into the condition. */
export interface AppIdBlob {
  path: string;
  ptr: unknown;
}

function v4HostOrder(address: string): number {
  return ipToBytes(address).readUInt32BE(0);
}

export function v4Mask(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

/** One FWPM_FILTER_CONDITION0 as a koffi input object. */
export function conditionToC(c: WfpCondition, appIds: ReadonlyMap<string, AppIdBlob>): Record<string, unknown> {
  switch (c.field) {
    case 'appId': {
      const blob = appIds.get(c.path);
      if (!blob) throw new TypeError(`no app id for ${c.path}`);
      return {
        fieldKey: guidToStruct(C.FWPM_CONDITION_ALE_APP_ID),
        matchType: C.FWP_MATCH_EQUAL,
        conditionValue: { type: C.FWP_BYTE_BLOB_TYPE, value: { byteBlob: blob.ptr } },
      };
    }
    case 'remoteAddress': {
      const fieldKey = guidToStruct(C.FWPM_CONDITION_IP_REMOTE_ADDRESS);
      if (c.cidr.family === 4 && isIPv4(c.cidr.address)) {
        return {
          fieldKey,
          matchType: C.FWP_MATCH_EQUAL,
          conditionValue: {
            type: C.FWP_V4_ADDR_MASK,
            value: { v4AddrMask: { addr: v4HostOrder(c.cidr.address), mask: v4Mask(c.cidr.prefix) } },
          },
        };
      }
      return {
        fieldKey,
        matchType: C.FWP_MATCH_EQUAL,
        conditionValue: {
          type: C.FWP_V6_ADDR_MASK,
          value: { v6AddrMask: { addr: [...ipToBytes(c.cidr.address)], prefixLength: c.cidr.prefix } },
        },
      };
    }
    case 'remotePort': {
      const fieldKey = guidToStruct(C.FWPM_CONDITION_IP_REMOTE_PORT);
      if (c.from === c.to) {
        return { fieldKey, matchType: C.FWP_MATCH_EQUAL, conditionValue: { type: C.FWP_UINT16, value: { uint16: c.from } } };
      }
      return {
        fieldKey,
        matchType: C.FWP_MATCH_RANGE,
        conditionValue: {
          type: C.FWP_RANGE_TYPE,
          value: {
            rangeValue: {
              valueLow: { type: C.FWP_UINT16, value: { uint16: c.from } },
              valueHigh: { type: C.FWP_UINT16, value: { uint16: c.to } },
            },
          },
        },
      };
    }
    case 'protocol':
      return {
        fieldKey: guidToStruct(C.FWPM_CONDITION_IP_PROTOCOL),
        matchType: C.FWP_MATCH_EQUAL,
        conditionValue: { type: C.FWP_UINT8, value: { uint8: c.protocol } },
      };
    case 'loopback':
      return {
        fieldKey: guidToStruct(C.FWPM_CONDITION_FLAGS),
        matchType: C.FWP_MATCH_FLAGS_ALL_SET,
        conditionValue: { type: C.FWP_UINT32, value: { uint32: C.FWP_CONDITION_FLAG_IS_LOOPBACK } },
      };
  }
}

const ZERO_GUID: GuidStruct = { Data1: 0, Data2: 0, Data3: 0, Data4: [0, 0, 0, 0, 0, 0, 0, 0] };

/** FWPM_FILTER0 as a koffi input object. */
export function filterToC(
  spec: WfpFilterSpec,
  ids: { providerKey: string; sublayerKey: string; persistent: boolean },
  appIds: ReadonlyMap<string, AppIdBlob>,
): Record<string, unknown> {
  if (!Number.isInteger(spec.weight) || spec.weight < 0 || spec.weight > 15) throw new RangeError(`filter weight ${spec.weight} is not 0..15`);
  const conditions = spec.conditions.map((c) => conditionToC(c, appIds));
  return {
    filterKey: guidToStruct(spec.key),
    displayData: { name: spec.name, description: null },
    flags: ids.persistent ? C.FWPM_FILTER_FLAG_PERSISTENT : 0,
    providerKey: guidToStruct(ids.providerKey),
    providerData: { size: 0, data: null },
    layerKey: guidToStruct(LAYER_GUID[spec.layer]),
    subLayerKey: guidToStruct(ids.sublayerKey),
    weight: { type: C.FWP_UINT8, value: { uint8: spec.weight } },
    numFilterConditions: conditions.length,
    filterCondition: conditions.length ? conditions : null,
    action: { type: spec.action === 'block' ? C.FWP_ACTION_BLOCK : C.FWP_ACTION_PERMIT, value: { filterType: ZERO_GUID } },
    context: { rawContext: 0 },
    reserved: null,
    filterId: 0,
    effectiveWeight: { type: C.FWP_EMPTY, value: { uint8: 0 } },
  };
}

// ---------------------------------------------------------------- the session (I/O)

/** What the backend needs from a WFP session; WfpEngine implements it, tests may record it. */
export interface WfpSession {
  readonly dynamic: boolean;
  begin(): void;
  commit(): void;
  abort(): void;
  /** Adds the provider; an existing one (same key) is kept. */
  ensureProvider(p: WfpProviderSpec): void;
  ensureSublayer(s: WfpSublayerSpec, providerKey: string): void;
  addFilter(f: WfpFilterSpec, ids: { providerKey: string; sublayerKey: string }): void;
  /** Deletes by key; a missing filter is not an error. */
  deleteFilter(key: string): void;
  /** Keys of every filter of this provider at a layer (persistent and dynamic ones alike). */
  filterKeys(providerKey: string, layer: WfpLayer): string[];
  deleteSublayer(key: string): void;
  deleteProvider(key: string): void;
  close(): void;
}

function wfpError(call: string, status: number): OsCallError {
  if (call === 'FwpmEngineOpen0' && (status === C.RPC_S_CANNOT_SUPPORT || status === C.EPT_S_NOT_REGISTERED)) {
    return new OsCallError(
      'SY_ERR_WIN_WFP_UNSUPPORTED',
      call,
      status,
      `${hex(status)}: the Windows Filtering Platform is not available (Wine, or the Base Filtering Engine service is stopped); enforcement stays off`,
    );
  }
  return new OsCallError('SY_ERR_WIN_WFP', call, status, hex(status));
}

function check(call: string, status: number, allowed: readonly number[] = []): void {
  const s = status >>> 0;
  if (s !== 0 && !allowed.includes(s)) throw wfpError(call, s);
}

/** The real session over fwpuclnt.dll. */
export class WfpEngine implements WfpSession {
  readonly dynamic: boolean;
  #handle: unknown;
  #inTxn = false;
  /** App id blobs allocated by FwpmGetAppIdFromFileName0, freed on close. */
  #appIds = new Map<string, AppIdBlob>();

  private constructor(handle: unknown, dynamic: boolean) {
    this.#handle = handle;
    this.dynamic = dynamic;
  }

  static open(opts: { dynamic: boolean; name: string }): WfpEngine {
    const f = fwpuclnt.get();
    const session = {
      sessionKey: ZERO_GUID,
      displayData: { name: opts.name, description: null },
      flags: opts.dynamic ? C.FWPM_SESSION_FLAG_DYNAMIC : 0,
      txnWaitTimeoutInMSec: 5000,
      processId: 0,
      sid: null,
      username: null,
      kernelMode: 0,
    };
    const out: unknown[] = [null];
    check('FwpmEngineOpen0', f.FwpmEngineOpen0(null, C.RPC_C_AUTHN_DEFAULT, null, session, out) as number);
    return new WfpEngine(out[0], opts.dynamic);
  }

  #h(): unknown {
    if (this.#handle === null) throw new OsCallError('SY_ERR_WIN_WFP', 'WfpEngine', undefined, 'engine handle already closed');
    return this.#handle;
  }

  begin(): void {
    check('FwpmTransactionBegin0', fwpuclnt.get().FwpmTransactionBegin0(this.#h(), 0) as number);
    this.#inTxn = true;
  }

  commit(): void {
    this.#inTxn = false;
    check('FwpmTransactionCommit0', fwpuclnt.get().FwpmTransactionCommit0(this.#h()) as number);
  }

  abort(): void {
    if (!this.#inTxn) return;
    this.#inTxn = false;
    check('FwpmTransactionAbort0', fwpuclnt.get().FwpmTransactionAbort0(this.#h()) as number);
  }

  ensureProvider(p: WfpProviderSpec): void {
    const v = {
      providerKey: guidToStruct(p.key),
      displayData: { name: p.name, description: null },
      flags: p.persistent ? C.FWPM_PROVIDER_FLAG_PERSISTENT : 0,
      providerData: { size: 0, data: null },
      serviceName: null,
    };
    check('FwpmProviderAdd0', fwpuclnt.get().FwpmProviderAdd0(this.#h(), v, null) as number, [C.FWP_E_ALREADY_EXISTS]);
  }

  ensureSublayer(s: WfpSublayerSpec, providerKey: string): void {
    const v = {
      subLayerKey: guidToStruct(s.key),
      displayData: { name: s.name, description: null },
      flags: s.persistent ? C.FWPM_SUBLAYER_FLAG_PERSISTENT : 0,
      providerKey: guidToStruct(providerKey),
      providerData: { size: 0, data: null },
      weight: s.weight,
    };
    check('FwpmSubLayerAdd0', fwpuclnt.get().FwpmSubLayerAdd0(this.#h(), v, null) as number, [C.FWP_E_ALREADY_EXISTS]);
  }

  #appId(path: string): AppIdBlob {
    const have = this.#appIds.get(path);
    if (have) return have;
    const out: unknown[] = [null];
    check('FwpmGetAppIdFromFileName0', fwpuclnt.get().FwpmGetAppIdFromFileName0(path, out) as number);
    const blob = { path, ptr: out[0] };
    this.#appIds.set(path, blob);
    return blob;
  }

  addFilter(f: WfpFilterSpec, ids: { providerKey: string; sublayerKey: string }): void {
    for (const c of f.conditions) if (c.field === 'appId') this.#appId(c.path);
    const v = filterToC(f, { ...ids, persistent: !this.dynamic }, this.#appIds);
    const id: bigint[] = [0n];
    check('FwpmFilterAdd0', fwpuclnt.get().FwpmFilterAdd0(this.#h(), v, null, id) as number);
  }

  deleteFilter(key: string): void {
    check('FwpmFilterDeleteByKey0', fwpuclnt.get().FwpmFilterDeleteByKey0(this.#h(), guidToStruct(key)) as number, [C.FWP_E_FILTER_NOT_FOUND]);
  }

  filterKeys(providerKey: string, layer: WfpLayer): string[] {
    const f = fwpuclnt.get();
    const template = {
      providerKey: guidToStruct(providerKey),
      layerKey: guidToStruct(LAYER_GUID[layer]),
      enumType: C.FWP_FILTER_ENUM_OVERLAPPING,
      flags: 0,
      providerContextTemplate: null,
      numFilterConditions: 0,
      filterCondition: null,
      actionMask: 0xffffffff,
      calloutKey: null,
    };
    const eh: unknown[] = [null];
    check('FwpmFilterCreateEnumHandle0', f.FwpmFilterCreateEnumHandle0(this.#h(), template, eh) as number);
    const keys: string[] = [];
    try {
      for (;;) {
        const entries: unknown[] = [null];
        const count: number[] = [0];
        check('FwpmFilterEnum0', f.FwpmFilterEnum0(this.#h(), eh[0], 256, entries, count) as number);
        const n = count[0] ?? 0;
        if (n > 0 && entries[0]) {
          try {
            const ptrs = koffi.decode(entries[0], 'void *', n) as unknown[];
            for (const p of ptrs) keys.push(guidFromStruct((koffi.decode(p, FWPM_FILTER0_T) as { filterKey: GuidStruct }).filterKey));
          } finally {
            f.FwpmFreeMemory0([entries[0]]);
          }
        }
        if (n < 256) break;
      }
    } finally {
      f.FwpmFilterDestroyEnumHandle0(this.#h(), eh[0]);
    }
    return keys;
  }

  deleteSublayer(key: string): void {
    check('FwpmSubLayerDeleteByKey0', fwpuclnt.get().FwpmSubLayerDeleteByKey0(this.#h(), guidToStruct(key)) as number, [C.FWP_E_SUBLAYER_NOT_FOUND]);
  }

  deleteProvider(key: string): void {
    check('FwpmProviderDeleteByKey0', fwpuclnt.get().FwpmProviderDeleteByKey0(this.#h(), guidToStruct(key)) as number, [C.FWP_E_PROVIDER_NOT_FOUND]);
  }

  close(): void {
    if (this.#handle === null) return;
    const f = fwpuclnt.get();
    try {
      this.abort();
    } catch {
      // closing the engine aborts an open transaction anyway
    }
    for (const blob of this.#appIds.values()) f.FwpmFreeMemory0([blob.ptr]);
    this.#appIds.clear();
    const h = this.#handle;
    this.#handle = null;
    check('FwpmEngineClose0', f.FwpmEngineClose0(h) as number);
  }
}
