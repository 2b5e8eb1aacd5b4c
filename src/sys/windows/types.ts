// C structs of the Windows APIs switchyard calls, declared for koffi under their C names. Declaring a
// type loads no DLL, so this module imports fine on Linux; test/windows/abi.test.ts compares every
// size and field offset here with the mingw-w64 headers (and WinDivert's with a header written from
// its documentation).
//
// Layout rules for x64 Windows (LLP64) that differ from Linux x64 (LP64): `long`/`ULONG`/`DWORD` are
// 32-bit and `wchar_t` is 16-bit. So nothing here says `long` or `wchar_t`: every field has an explicit
// width (uint32_t, uint16_t, char16_t). Pointers are 64-bit on both.
//
// Prefix structs: IP_ADAPTER_ADDRESSES_LH and MIB_IPINTERFACE_ROW are declared only up to the last
// field switchyard reads. They are only ever read through pointers the system hands out, never
// allocated or passed by value, so a prefix with the right offsets is enough (the ABI test checks the
// offsets and skips their sizeof).
import koffi, { type TypeObject } from 'koffi';

// ---------------------------------------------------------------- common

/** https://learn.microsoft.com/windows/win32/api/guiddef/ns-guiddef-guid */
export const GUID = koffi.struct('GUID', {
  Data1: 'uint32_t',
  Data2: 'uint16_t',
  Data3: 'uint16_t',
  Data4: koffi.array('uint8_t', 8, 'Array'),
});

/** Opaque HANDLE (engine, enum, process, token, WinDivert handles). */
export const HANDLE = koffi.pointer('HANDLE', koffi.opaque('HANDLE_OPAQUE'));

// ---------------------------------------------------------------- fwptypes.h

export const FWP_BYTE_BLOB = koffi.struct('FWP_BYTE_BLOB', {
  size: 'uint32_t',
  data: 'uint8_t *',
});

export const FWP_BYTE_ARRAY16 = koffi.struct('FWP_BYTE_ARRAY16', {
  byteArray16: koffi.array('uint8_t', 16, 'Array'),
});

export const FWP_V4_ADDR_AND_MASK = koffi.struct('FWP_V4_ADDR_AND_MASK', {
  addr: 'uint32_t', // host byte order
  mask: 'uint32_t',
});

export const FWP_V6_ADDR_AND_MASK = koffi.struct('FWP_V6_ADDR_AND_MASK', {
  addr: koffi.array('uint8_t', 16, 'Array'), // network byte order
  prefixLength: 'uint8_t',
});

/** The union inside FWP_VALUE0 (only the members switchyard writes or reads). */
const FWP_VALUE0_UNION = koffi.union('FWP_VALUE0_UNION', {
  uint8: 'uint8_t',
  uint16: 'uint16_t',
  uint32: 'uint32_t',
  uint64: 'uint64_t *',
  byteArray16: koffi.pointer(FWP_BYTE_ARRAY16),
  byteBlob: koffi.pointer(FWP_BYTE_BLOB),
  sid: 'void *',
  unicodeString: 'char16_t *',
});

export const FWP_VALUE0 = koffi.struct('FWP_VALUE0', {
  type: 'uint32_t', // FWP_DATA_TYPE
  value: FWP_VALUE0_UNION,
});

export const FWP_RANGE0 = koffi.struct('FWP_RANGE0', {
  valueLow: FWP_VALUE0,
  valueHigh: FWP_VALUE0,
});

const FWP_CONDITION_VALUE0_UNION = koffi.union('FWP_CONDITION_VALUE0_UNION', {
  uint8: 'uint8_t',
  uint16: 'uint16_t',
  uint32: 'uint32_t',
  uint64: 'uint64_t *',
  byteArray16: koffi.pointer(FWP_BYTE_ARRAY16),
  byteBlob: koffi.pointer(FWP_BYTE_BLOB),
  sid: 'void *',
  unicodeString: 'char16_t *',
  v4AddrMask: koffi.pointer(FWP_V4_ADDR_AND_MASK),
  v6AddrMask: koffi.pointer(FWP_V6_ADDR_AND_MASK),
  rangeValue: koffi.pointer(FWP_RANGE0),
});

export const FWP_CONDITION_VALUE0 = koffi.struct('FWP_CONDITION_VALUE0', {
  type: 'uint32_t', // FWP_DATA_TYPE
  value: FWP_CONDITION_VALUE0_UNION,
});

// ---------------------------------------------------------------- fwpmtypes.h

export const FWPM_DISPLAY_DATA0 = koffi.struct('FWPM_DISPLAY_DATA0', {
  name: 'char16_t *',
  description: 'char16_t *',
});

export const FWPM_SESSION0 = koffi.struct('FWPM_SESSION0', {
  sessionKey: GUID,
  displayData: FWPM_DISPLAY_DATA0,
  flags: 'uint32_t',
  txnWaitTimeoutInMSec: 'uint32_t',
  processId: 'uint32_t',
  sid: 'void *',
  username: 'char16_t *',
  kernelMode: 'int32_t', // BOOL
});

export const FWPM_PROVIDER0 = koffi.struct('FWPM_PROVIDER0', {
  providerKey: GUID,
  displayData: FWPM_DISPLAY_DATA0,
  flags: 'uint32_t',
  providerData: FWP_BYTE_BLOB,
  serviceName: 'char16_t *',
});

/**
 * Microsoft's fwpmtypes.h (and the documentation) declare `flags` as UINT32; mingw-w64 declares UINT16.
 * The offsets after it are the same either way (providerKey is 8-aligned at 40); we follow Microsoft.
 */
export const FWPM_SUBLAYER0 = koffi.struct('FWPM_SUBLAYER0', {
  subLayerKey: GUID,
  displayData: FWPM_DISPLAY_DATA0,
  flags: 'uint32_t',
  providerKey: koffi.pointer(GUID),
  providerData: FWP_BYTE_BLOB,
  weight: 'uint16_t',
});

export const FWPM_FILTER_CONDITION0 = koffi.struct('FWPM_FILTER_CONDITION0', {
  fieldKey: GUID,
  matchType: 'uint32_t', // FWP_MATCH_TYPE
  conditionValue: FWP_CONDITION_VALUE0,
});

const FWPM_ACTION0_UNION = koffi.union('FWPM_ACTION0_UNION', {
  filterType: GUID,
  calloutKey: GUID,
});

export const FWPM_ACTION0 = koffi.struct('FWPM_ACTION0', {
  type: 'uint32_t', // FWP_ACTION_TYPE
  value: FWPM_ACTION0_UNION,
});

const FWPM_FILTER0_CONTEXT = koffi.union('FWPM_FILTER0_CONTEXT', {
  rawContext: 'uint64_t',
  providerContextKey: GUID,
});

export const FWPM_FILTER0 = koffi.struct('FWPM_FILTER0', {
  filterKey: GUID,
  displayData: FWPM_DISPLAY_DATA0,
  flags: 'uint32_t',
  providerKey: koffi.pointer(GUID),
  providerData: FWP_BYTE_BLOB,
  layerKey: GUID,
  subLayerKey: GUID,
  weight: FWP_VALUE0,
  numFilterConditions: 'uint32_t',
  filterCondition: koffi.pointer(FWPM_FILTER_CONDITION0),
  action: FWPM_ACTION0,
  context: FWPM_FILTER0_CONTEXT,
  reserved: koffi.pointer(GUID),
  filterId: 'uint64_t',
  effectiveWeight: FWP_VALUE0,
});

export const FWPM_PROVIDER_CONTEXT_ENUM_TEMPLATE0 = koffi.struct('FWPM_PROVIDER_CONTEXT_ENUM_TEMPLATE0', {
  providerKey: koffi.pointer(GUID),
  providerContextType: 'uint32_t',
});

export const FWPM_FILTER_ENUM_TEMPLATE0 = koffi.struct('FWPM_FILTER_ENUM_TEMPLATE0', {
  providerKey: koffi.pointer(GUID),
  layerKey: GUID,
  enumType: 'uint32_t', // FWP_FILTER_ENUM_TYPE
  flags: 'uint32_t',
  providerContextTemplate: koffi.pointer(FWPM_PROVIDER_CONTEXT_ENUM_TEMPLATE0),
  numFilterConditions: 'uint32_t',
  filterCondition: koffi.pointer(FWPM_FILTER_CONDITION0),
  actionMask: 'uint32_t',
  calloutKey: koffi.pointer(GUID),
});

// ---------------------------------------------------------------- iphlpapi (tcpmib.h, udpmib.h, ...)

export const MIB_TCPROW_OWNER_PID = koffi.struct('MIB_TCPROW_OWNER_PID', {
  dwState: 'uint32_t',
  dwLocalAddr: 'uint32_t', // network byte order
  dwLocalPort: 'uint32_t', // network byte order in the low 16 bits
  dwRemoteAddr: 'uint32_t',
  dwRemotePort: 'uint32_t',
  dwOwningPid: 'uint32_t',
});

export const MIB_TCP6ROW_OWNER_PID = koffi.struct('MIB_TCP6ROW_OWNER_PID', {
  ucLocalAddr: koffi.array('uint8_t', 16, 'Array'),
  dwLocalScopeId: 'uint32_t',
  dwLocalPort: 'uint32_t',
  ucRemoteAddr: koffi.array('uint8_t', 16, 'Array'),
  dwRemoteScopeId: 'uint32_t',
  dwRemotePort: 'uint32_t',
  dwState: 'uint32_t',
  dwOwningPid: 'uint32_t',
});

export const MIB_UDPROW_OWNER_PID = koffi.struct('MIB_UDPROW_OWNER_PID', {
  dwLocalAddr: 'uint32_t',
  dwLocalPort: 'uint32_t',
  dwOwningPid: 'uint32_t',
});

export const MIB_UDP6ROW_OWNER_PID = koffi.struct('MIB_UDP6ROW_OWNER_PID', {
  ucLocalAddr: koffi.array('uint8_t', 16, 'Array'),
  dwLocalScopeId: 'uint32_t',
  dwLocalPort: 'uint32_t',
  dwOwningPid: 'uint32_t',
});

export const SOCKADDR_IN = koffi.struct('SOCKADDR_IN', {
  sin_family: 'uint16_t',
  sin_port: 'uint16_t', // network byte order
  sin_addr: koffi.array('uint8_t', 4, 'Array'),
  sin_zero: koffi.array('uint8_t', 8, 'Array'),
});

export const SOCKADDR_IN6 = koffi.struct('SOCKADDR_IN6', {
  sin6_family: 'uint16_t',
  sin6_port: 'uint16_t',
  sin6_flowinfo: 'uint32_t',
  sin6_addr: koffi.array('uint8_t', 16, 'Array'),
  sin6_scope_id: 'uint32_t',
});

export const SOCKET_ADDRESS = koffi.struct('SOCKET_ADDRESS', {
  lpSockaddr: 'void *',
  iSockaddrLength: 'int32_t',
});

export const IP_ADAPTER_UNICAST_ADDRESS_LH = koffi.struct('IP_ADAPTER_UNICAST_ADDRESS_LH', {
  Length: 'uint32_t',
  Flags: 'uint32_t',
  Next: 'void *',
  Address: SOCKET_ADDRESS,
  PrefixOrigin: 'uint32_t',
  SuffixOrigin: 'uint32_t',
  DadState: 'uint32_t',
  ValidLifetime: 'uint32_t',
  PreferredLifetime: 'uint32_t',
  LeaseLifetime: 'uint32_t',
  OnLinkPrefixLength: 'uint8_t',
});

/**
 * A DNS server of an adapter (IP_ADAPTER_ADDRESSES_LH.FirstDnsServerAddress list).
 * https://learn.microsoft.com/windows/win32/api/iptypes/ns-iptypes-ip_adapter_dns_server_address_xp
 * C: `union { ULONGLONG Alignment; struct { ULONG Length; DWORD Reserved; }; }` then Next, Address.
 */
export const IP_ADAPTER_DNS_SERVER_ADDRESS_XP = koffi.struct('IP_ADAPTER_DNS_SERVER_ADDRESS_XP', {
  Length: 'uint32_t',
  Reserved: 'uint32_t',
  Next: 'void *',
  Address: SOCKET_ADDRESS,
});

/** Prefix (see the header comment): the fields up to Ipv6IfIndex. */
export const IP_ADAPTER_ADDRESSES_LH = koffi.struct('IP_ADAPTER_ADDRESSES_LH', {
  Length: 'uint32_t',
  IfIndex: 'uint32_t',
  Next: 'void *',
  AdapterName: 'char *',
  FirstUnicastAddress: 'void *',
  FirstAnycastAddress: 'void *',
  FirstMulticastAddress: 'void *',
  FirstDnsServerAddress: 'void *',
  DnsSuffix: 'char16_t *',
  Description: 'char16_t *',
  FriendlyName: 'char16_t *',
  PhysicalAddress: koffi.array('uint8_t', 8, 'Array'),
  PhysicalAddressLength: 'uint32_t',
  Flags: 'uint32_t',
  Mtu: 'uint32_t',
  IfType: 'uint32_t',
  OperStatus: 'uint32_t',
  Ipv6IfIndex: 'uint32_t',
});

/** Prefix: the fields NotifyIpInterfaceChange's callback needs. */
export const MIB_IPINTERFACE_ROW = koffi.struct('MIB_IPINTERFACE_ROW', {
  Family: 'uint16_t',
  InterfaceLuid: 'uint64_t',
  InterfaceIndex: 'uint32_t',
});

// ---------------------------------------------------------------- advapi32 (winnt.h)

export const TOKEN_ELEVATION = koffi.struct('TOKEN_ELEVATION', {
  TokenIsElevated: 'uint32_t',
});

export const SID_AND_ATTRIBUTES = koffi.struct('SID_AND_ATTRIBUTES', {
  Sid: 'void *',
  Attributes: 'uint32_t',
});

export const TOKEN_USER = koffi.struct('TOKEN_USER', {
  User: SID_AND_ATTRIBUTES,
});

/** Groups[ANYSIZE_ARRAY]: the real count is GroupCount; entries follow at Groups' offset. */
export const TOKEN_GROUPS = koffi.struct('TOKEN_GROUPS', {
  GroupCount: 'uint32_t',
  Groups: koffi.array(SID_AND_ATTRIBUTES, 1),
});

// ---------------------------------------------------------------- the control pipe (CreateNamedPipeW)

/** https://learn.microsoft.com/windows/win32/api/wtypesbase/ns-wtypesbase-security_attributes */
export const SECURITY_ATTRIBUTES = koffi.struct('SECURITY_ATTRIBUTES', {
  nLength: 'uint32_t',
  lpSecurityDescriptor: 'void *',
  bInheritHandle: 'int32_t',
});

// ---------------------------------------------------------------- windivert.h (2.2)

export const WINDIVERT_DATA_NETWORK = koffi.struct('WINDIVERT_DATA_NETWORK', {
  IfIdx: 'uint32_t',
  SubIfIdx: 'uint32_t',
});

const WINDIVERT_5TUPLE = {
  EndpointId: 'uint64_t',
  ParentEndpointId: 'uint64_t',
  ProcessId: 'uint32_t',
  LocalAddr: koffi.array('uint32_t', 4, 'Array'),
  RemoteAddr: koffi.array('uint32_t', 4, 'Array'),
  LocalPort: 'uint16_t',
  RemotePort: 'uint16_t',
  Protocol: 'uint8_t',
} as const;

export const WINDIVERT_DATA_FLOW = koffi.struct('WINDIVERT_DATA_FLOW', WINDIVERT_5TUPLE);
export const WINDIVERT_DATA_SOCKET = koffi.struct('WINDIVERT_DATA_SOCKET', WINDIVERT_5TUPLE);

export const WINDIVERT_DATA_REFLECT = koffi.struct('WINDIVERT_DATA_REFLECT', {
  Timestamp: 'int64_t',
  ProcessId: 'uint32_t',
  Layer: 'uint32_t', // WINDIVERT_LAYER
  Flags: 'uint64_t',
  Priority: 'int16_t',
});

const WINDIVERT_ADDRESS_UNION = koffi.union('WINDIVERT_ADDRESS_UNION', {
  Network: WINDIVERT_DATA_NETWORK,
  Flow: WINDIVERT_DATA_FLOW,
  Socket: WINDIVERT_DATA_SOCKET,
  Reflect: WINDIVERT_DATA_REFLECT,
  Reserved3: koffi.array('uint8_t', 64, 'Array'),
});

/**
 * WINDIVERT_ADDRESS. The C struct has eight bitfields (Layer:8, Event:8, Sniffed:1, Outbound:1,
 * Loopback:1, Impostor:1, IPv6:1, IPChecksum:1, TCPChecksum:1, UDPChecksum:1, Reserved1:8) packed
 * into one UINT32; koffi has no bitfields, so that word is `Bits` here and WINDIVERT_BITS below names
 * each field's position (checked by the ABI test against a compiled header). The hot path does not
 * go through koffi at all: src/sys/windows/windivert.ts reads and writes the 80 bytes directly.
 */
export const WINDIVERT_ADDRESS = koffi.struct('WINDIVERT_ADDRESS', {
  Timestamp: 'int64_t',
  Bits: 'uint32_t',
  Reserved2: 'uint32_t',
  u: WINDIVERT_ADDRESS_UNION,
});

/** Bit position and width of each WINDIVERT_ADDRESS bitfield inside `Bits`. */
export const WINDIVERT_BITS = {
  Layer: { shift: 0, width: 8 },
  Event: { shift: 8, width: 8 },
  Sniffed: { shift: 16, width: 1 },
  Outbound: { shift: 17, width: 1 },
  Loopback: { shift: 18, width: 1 },
  Impostor: { shift: 19, width: 1 },
  IPv6: { shift: 20, width: 1 },
  IPChecksum: { shift: 21, width: 1 },
  TCPChecksum: { shift: 22, width: 1 },
  UDPChecksum: { shift: 23, width: 1 },
  Reserved1: { shift: 24, width: 8 },
} as const;

/** Every struct with its C name, for the ABI test. `prefix` structs are checked by offsets only. */
export const ALL_STRUCTS: readonly { name: string; type: TypeObject; prefix?: boolean }[] = [
  { name: 'GUID', type: GUID },
  { name: 'FWP_BYTE_BLOB', type: FWP_BYTE_BLOB },
  { name: 'FWP_BYTE_ARRAY16', type: FWP_BYTE_ARRAY16 },
  { name: 'FWP_V4_ADDR_AND_MASK', type: FWP_V4_ADDR_AND_MASK },
  { name: 'FWP_V6_ADDR_AND_MASK', type: FWP_V6_ADDR_AND_MASK },
  { name: 'FWP_VALUE0', type: FWP_VALUE0 },
  { name: 'FWP_RANGE0', type: FWP_RANGE0 },
  { name: 'FWP_CONDITION_VALUE0', type: FWP_CONDITION_VALUE0 },
  { name: 'FWPM_DISPLAY_DATA0', type: FWPM_DISPLAY_DATA0 },
  { name: 'FWPM_SESSION0', type: FWPM_SESSION0 },
  { name: 'FWPM_PROVIDER0', type: FWPM_PROVIDER0 },
  { name: 'FWPM_SUBLAYER0', type: FWPM_SUBLAYER0 },
  { name: 'FWPM_FILTER_CONDITION0', type: FWPM_FILTER_CONDITION0 },
  { name: 'FWPM_ACTION0', type: FWPM_ACTION0 },
  { name: 'FWPM_FILTER0', type: FWPM_FILTER0 },
  { name: 'FWPM_PROVIDER_CONTEXT_ENUM_TEMPLATE0', type: FWPM_PROVIDER_CONTEXT_ENUM_TEMPLATE0 },
  { name: 'FWPM_FILTER_ENUM_TEMPLATE0', type: FWPM_FILTER_ENUM_TEMPLATE0 },
  { name: 'MIB_TCPROW_OWNER_PID', type: MIB_TCPROW_OWNER_PID },
  { name: 'MIB_TCP6ROW_OWNER_PID', type: MIB_TCP6ROW_OWNER_PID },
  { name: 'MIB_UDPROW_OWNER_PID', type: MIB_UDPROW_OWNER_PID },
  { name: 'MIB_UDP6ROW_OWNER_PID', type: MIB_UDP6ROW_OWNER_PID },
  { name: 'SOCKADDR_IN', type: SOCKADDR_IN },
  { name: 'SOCKADDR_IN6', type: SOCKADDR_IN6 },
  { name: 'SOCKET_ADDRESS', type: SOCKET_ADDRESS },
  { name: 'IP_ADAPTER_UNICAST_ADDRESS_LH', type: IP_ADAPTER_UNICAST_ADDRESS_LH },
  { name: 'IP_ADAPTER_DNS_SERVER_ADDRESS_XP', type: IP_ADAPTER_DNS_SERVER_ADDRESS_XP },
  { name: 'IP_ADAPTER_ADDRESSES_LH', type: IP_ADAPTER_ADDRESSES_LH, prefix: true },
  { name: 'MIB_IPINTERFACE_ROW', type: MIB_IPINTERFACE_ROW, prefix: true },
  { name: 'TOKEN_ELEVATION', type: TOKEN_ELEVATION },
  { name: 'SID_AND_ATTRIBUTES', type: SID_AND_ATTRIBUTES },
  { name: 'TOKEN_USER', type: TOKEN_USER },
  { name: 'TOKEN_GROUPS', type: TOKEN_GROUPS },
  { name: 'SECURITY_ATTRIBUTES', type: SECURITY_ATTRIBUTES },
  { name: 'WINDIVERT_DATA_NETWORK', type: WINDIVERT_DATA_NETWORK },
  { name: 'WINDIVERT_DATA_FLOW', type: WINDIVERT_DATA_FLOW },
  { name: 'WINDIVERT_DATA_SOCKET', type: WINDIVERT_DATA_SOCKET },
  { name: 'WINDIVERT_DATA_REFLECT', type: WINDIVERT_DATA_REFLECT },
  { name: 'WINDIVERT_ADDRESS', type: WINDIVERT_ADDRESS },
];
