// fwpuclnt.dll — raw declarations of the Windows Filtering Platform management API. One line per
// function, each with its documentation. Nothing is loaded until the first call (see load.ts).
// The safe layer (handles, transactions, errors) is src/sys/windows/wfp.ts.
import './types.ts'; // registers the struct names used in the prototypes below
import { lazyLibrary } from './load.ts';

export const fwpuclnt = lazyLibrary('fwpuclnt.dll', (lib) => ({
  // https://learn.microsoft.com/windows/win32/api/fwpmu/nf-fwpmu-fwpmengineopen0
  FwpmEngineOpen0: lib.func('uint32_t __stdcall FwpmEngineOpen0(const char16_t *serverName, uint32_t authnService, void *authIdentity, const FWPM_SESSION0 *session, _Out_ HANDLE *engineHandle)'),
  // https://learn.microsoft.com/windows/win32/api/fwpmu/nf-fwpmu-fwpmengineclose0
  FwpmEngineClose0: lib.func('uint32_t __stdcall FwpmEngineClose0(HANDLE engineHandle)'),
  // https://learn.microsoft.com/windows/win32/api/fwpmu/nf-fwpmu-fwpmtransactionbegin0
  FwpmTransactionBegin0: lib.func('uint32_t __stdcall FwpmTransactionBegin0(HANDLE engineHandle, uint32_t flags)'),
  // https://learn.microsoft.com/windows/win32/api/fwpmu/nf-fwpmu-fwpmtransactioncommit0
  FwpmTransactionCommit0: lib.func('uint32_t __stdcall FwpmTransactionCommit0(HANDLE engineHandle)'),
  // https://learn.microsoft.com/windows/win32/api/fwpmu/nf-fwpmu-fwpmtransactionabort0
  FwpmTransactionAbort0: lib.func('uint32_t __stdcall FwpmTransactionAbort0(HANDLE engineHandle)'),
  // https://learn.microsoft.com/windows/win32/api/fwpmu/nf-fwpmu-fwpmprovideradd0
  FwpmProviderAdd0: lib.func('uint32_t __stdcall FwpmProviderAdd0(HANDLE engineHandle, const FWPM_PROVIDER0 *provider, void *sd)'),
  // https://learn.microsoft.com/windows/win32/api/fwpmu/nf-fwpmu-fwpmproviderdeletebykey0
  FwpmProviderDeleteByKey0: lib.func('uint32_t __stdcall FwpmProviderDeleteByKey0(HANDLE engineHandle, const GUID *key)'),
  // https://learn.microsoft.com/windows/win32/api/fwpmu/nf-fwpmu-fwpmsublayeradd0
  FwpmSubLayerAdd0: lib.func('uint32_t __stdcall FwpmSubLayerAdd0(HANDLE engineHandle, const FWPM_SUBLAYER0 *subLayer, void *sd)'),
  // https://learn.microsoft.com/windows/win32/api/fwpmu/nf-fwpmu-fwpmsublayerdeletebykey0
  FwpmSubLayerDeleteByKey0: lib.func('uint32_t __stdcall FwpmSubLayerDeleteByKey0(HANDLE engineHandle, const GUID *key)'),
  // https://learn.microsoft.com/windows/win32/api/fwpmu/nf-fwpmu-fwpmfilteradd0
  FwpmFilterAdd0: lib.func('uint32_t __stdcall FwpmFilterAdd0(HANDLE engineHandle, const FWPM_FILTER0 *filter, void *sd, _Out_ uint64_t *id)'),
  // https://learn.microsoft.com/windows/win32/api/fwpmu/nf-fwpmu-fwpmfilterdeletebykey0
  FwpmFilterDeleteByKey0: lib.func('uint32_t __stdcall FwpmFilterDeleteByKey0(HANDLE engineHandle, const GUID *key)'),
  // https://learn.microsoft.com/windows/win32/api/fwpmu/nf-fwpmu-fwpmfiltercreateenumhandle0
  FwpmFilterCreateEnumHandle0: lib.func('uint32_t __stdcall FwpmFilterCreateEnumHandle0(HANDLE engineHandle, const FWPM_FILTER_ENUM_TEMPLATE0 *enumTemplate, _Out_ HANDLE *enumHandle)'),
  // https://learn.microsoft.com/windows/win32/api/fwpmu/nf-fwpmu-fwpmfilterenum0
  FwpmFilterEnum0: lib.func('uint32_t __stdcall FwpmFilterEnum0(HANDLE engineHandle, HANDLE enumHandle, uint32_t numEntriesRequested, _Out_ void **entries, _Out_ uint32_t *numEntriesReturned)'),
  // https://learn.microsoft.com/windows/win32/api/fwpmu/nf-fwpmu-fwpmfilterdestroyenumhandle0
  FwpmFilterDestroyEnumHandle0: lib.func('uint32_t __stdcall FwpmFilterDestroyEnumHandle0(HANDLE engineHandle, HANDLE enumHandle)'),
  // https://learn.microsoft.com/windows/win32/api/fwpmu/nf-fwpmu-fwpmgetappidfromfilename0
  FwpmGetAppIdFromFileName0: lib.func('uint32_t __stdcall FwpmGetAppIdFromFileName0(const char16_t *fileName, _Out_ void **appId)'),
  // https://learn.microsoft.com/windows/win32/api/fwpmu/nf-fwpmu-fwpmfreememory0
  FwpmFreeMemory0: lib.func('void __stdcall FwpmFreeMemory0(_Inout_ void **p)'),
}));
