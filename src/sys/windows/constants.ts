// Numeric constants and well-known GUIDs of the Windows APIs switchyard calls. The numbers that the
// mingw-w64 headers define are checked against them by test/windows/abi.test.ts (see WIN_CONSTANTS);
// the WFP layer and condition GUIDs are not in mingw-w64's headers — they are Microsoft's values from
// fwpmu.h (https://learn.microsoft.com/windows/win32/fwp/management-filtering-layer-identifiers- and
// .../filtering-condition-identifiers-), spelled out here once.

// ---------------------------------------------------------------- Win32 errors and statuses
export const ERROR_SUCCESS = 0;
export const ERROR_ACCESS_DENIED = 5;
export const ERROR_INSUFFICIENT_BUFFER = 122;
export const ERROR_NO_MORE_ITEMS = 259;
export const ERROR_BUFFER_OVERFLOW = 111;
export const ERROR_NO_DATA = 232;
/** RPC_S_CANNOT_SUPPORT: what FwpmEngineOpen0 returns under Wine (no Base Filtering Engine). */
export const RPC_S_CANNOT_SUPPORT = 0x6e4;
/** EPT_S_NOT_REGISTERED: the BFE service is stopped. */
export const EPT_S_NOT_REGISTERED = 0x6d9;
export const FWP_E_FILTER_NOT_FOUND = 0x80320003;
export const FWP_E_PROVIDER_NOT_FOUND = 0x80320005;
export const FWP_E_SUBLAYER_NOT_FOUND = 0x80320007;
export const FWP_E_ALREADY_EXISTS = 0x80320009;
export const FWP_E_IN_USE = 0x8032000a;

// ---------------------------------------------------------------- WFP
export const RPC_C_AUTHN_DEFAULT = 0xffffffff;
export const FWPM_SESSION_FLAG_DYNAMIC = 0x1;
export const FWPM_PROVIDER_FLAG_PERSISTENT = 0x1;
export const FWPM_SUBLAYER_FLAG_PERSISTENT = 0x1;
export const FWPM_FILTER_FLAG_PERSISTENT = 0x1;

export const FWP_ACTION_FLAG_TERMINATING = 0x1000;
export const FWP_ACTION_BLOCK = 0x1 | FWP_ACTION_FLAG_TERMINATING;
export const FWP_ACTION_PERMIT = 0x2 | FWP_ACTION_FLAG_TERMINATING;
export const FWP_CONDITION_FLAG_IS_LOOPBACK = 0x1;

export const FWP_EMPTY = 0;
export const FWP_UINT8 = 1;
export const FWP_UINT16 = 2;
export const FWP_UINT32 = 3;
export const FWP_UINT64 = 4;
export const FWP_BYTE_ARRAY16_TYPE = 11;
export const FWP_BYTE_BLOB_TYPE = 12;
export const FWP_V4_ADDR_MASK = 0x100;
export const FWP_V6_ADDR_MASK = 0x101;
export const FWP_RANGE_TYPE = 0x102;

export const FWP_MATCH_EQUAL = 0;
export const FWP_MATCH_RANGE = 5;
export const FWP_MATCH_FLAGS_ALL_SET = 6;

export const FWP_FILTER_ENUM_FULLY_CONTAINED = 0;
export const FWP_FILTER_ENUM_OVERLAPPING = 1;

export const FWPM_LAYER_ALE_AUTH_CONNECT_V4 = 'c38d57d1-05a7-4c33-904f-7fbceee60e82';
export const FWPM_LAYER_ALE_AUTH_CONNECT_V6 = '4a72393b-319f-44bc-84c3-ba54dcb3b6b4';
export const FWPM_CONDITION_ALE_APP_ID = 'd78e1e87-8644-4ea5-9437-d809ecefc971';
export const FWPM_CONDITION_IP_REMOTE_ADDRESS = 'b235ae9a-1d64-49b8-a44c-5ff3d9095045';
export const FWPM_CONDITION_IP_REMOTE_PORT = 'c35a604d-d22b-4e1a-91b4-68f674ee674b';
export const FWPM_CONDITION_IP_PROTOCOL = '3971ef2b-623e-4f9a-8cb1-6e79b806b9a7';
export const FWPM_CONDITION_FLAGS = '632ce23b-5167-435c-86d7-e903684aa80c';

// ---------------------------------------------------------------- iphlpapi / winsock
export const AF_INET = 2;
export const AF_INET6 = 23;
export const TCP_TABLE_OWNER_PID_ALL = 5;
export const UDP_TABLE_OWNER_PID = 1;
export const GAA_FLAG_SKIP_ANYCAST = 0x2;
export const GAA_FLAG_SKIP_MULTICAST = 0x4;
export const GAA_FLAG_SKIP_DNS_SERVER = 0x8;
export const IfOperStatusUp = 1;
/** <ipifcons.h>: the loopback pseudo-interface's IfType (its DNS servers are placeholders). */
export const IF_TYPE_SOFTWARE_LOOPBACK = 24;
export const MIB_TCP_STATE_SYN_SENT = 3;

// ---------------------------------------------------------------- kernel32 / advapi32
export const PROCESS_QUERY_LIMITED_INFORMATION = 0x1000;
export const TOKEN_QUERY = 0x8;
export const TokenUser = 1;
export const TokenElevation = 20;
export const TokenGroups = 2;
export const SE_GROUP_ENABLED = 0x4;
export const SE_GROUP_USE_FOR_DENY_ONLY = 0x10;
export const ERROR_FILE_NOT_FOUND = 2;
export const ERROR_MORE_DATA = 234;
export const ERROR_PIPE_CONNECTED = 535;
export const PIPE_ACCESS_DUPLEX = 0x3;
export const PIPE_TYPE_BYTE = 0x0;
export const PIPE_READMODE_BYTE = 0x0;
export const PIPE_WAIT = 0x0;
export const PIPE_REJECT_REMOTE_CLIENTS = 0x8;
export const PIPE_UNLIMITED_INSTANCES = 255;
// The control pipe, served synchronously in non-blocking mode by a worker thread (src/sys/windows/pipe-worker.ts).
export const PIPE_NOWAIT = 0x1;
export const ERROR_PIPE_LISTENING = 536;
export const FILE_FLAG_FIRST_PIPE_INSTANCE = 0x00080000;
export const GENERIC_READ = 0x80000000;
export const FILE_WRITE_DATA = 0x2;
export const FILE_WRITE_ATTRIBUTES = 0x100;
export const OPEN_EXISTING = 3;
export const SECURITY_SQOS_PRESENT = 0x00100000;
export const SECURITY_IDENTIFICATION = 0x00010000;
export const ERROR_BROKEN_PIPE = 109;
export const ERROR_PIPE_NOT_CONNECTED = 233;
export const ERROR_PIPE_BUSY = 231;
/** (HKEY)(LONG)0x80000002, sign-extended to 64 bits. */
export const HKEY_LOCAL_MACHINE = -0x7ffffffe;
export const KEY_READ = 0x20019;
export const KEY_ALL_ACCESS = 0xf003f;
export const KEY_WOW64_64KEY = 0x100;
export const REG_OPTION_NON_VOLATILE = 0;
export const REG_SZ = 1;
export const REG_DWORD = 4;
export const REG_MULTI_SZ = 7;

// ---------------------------------------------------------------- WinDivert (from its documentation)
export const WINDIVERT_LAYER_NETWORK = 0;
export const WINDIVERT_LAYER_SOCKET = 3;
export const WINDIVERT_FLAG_SNIFF = 0x1;
export const WINDIVERT_FLAG_RECV_ONLY = 0x4;
export const WINDIVERT_EVENT_NETWORK_PACKET = 0;
export const WINDIVERT_EVENT_SOCKET_CONNECT = 4;
export const WINDIVERT_EVENT_SOCKET_CLOSE = 7;
export const WINDIVERT_MTU_MAX = 40 + 0xffff;
export const WINDIVERT_ADDRESS_SIZE = 80;

/** C name → value, for the ABI test (numbers that the mingw-w64 headers define). */
export const WIN_CONSTANTS: Readonly<Record<string, number>> = {
  ERROR_ACCESS_DENIED,
  ERROR_INSUFFICIENT_BUFFER,
  ERROR_NO_MORE_ITEMS,
  ERROR_BUFFER_OVERFLOW,
  ERROR_NO_DATA,
  RPC_S_CANNOT_SUPPORT,
  EPT_S_NOT_REGISTERED,
  FWP_E_FILTER_NOT_FOUND,
  FWP_E_PROVIDER_NOT_FOUND,
  FWP_E_SUBLAYER_NOT_FOUND,
  FWP_E_ALREADY_EXISTS,
  FWP_E_IN_USE,
  FWP_ACTION_BLOCK,
  FWP_ACTION_PERMIT,
  FWP_CONDITION_FLAG_IS_LOOPBACK,
  FWP_EMPTY,
  FWP_UINT8,
  FWP_UINT16,
  FWP_UINT32,
  FWP_UINT64,
  FWP_BYTE_ARRAY16_TYPE,
  FWP_BYTE_BLOB_TYPE,
  FWP_V4_ADDR_MASK,
  FWP_V6_ADDR_MASK,
  FWP_RANGE_TYPE,
  FWP_MATCH_EQUAL,
  FWP_MATCH_RANGE,
  FWP_MATCH_FLAGS_ALL_SET,
  FWP_FILTER_ENUM_FULLY_CONTAINED,
  FWP_FILTER_ENUM_OVERLAPPING,
  AF_INET,
  AF_INET6,
  TCP_TABLE_OWNER_PID_ALL,
  UDP_TABLE_OWNER_PID,
  GAA_FLAG_SKIP_ANYCAST,
  IF_TYPE_SOFTWARE_LOOPBACK,
  GAA_FLAG_SKIP_MULTICAST,
  GAA_FLAG_SKIP_DNS_SERVER,
  IfOperStatusUp,
  MIB_TCP_STATE_SYN_SENT,
  PROCESS_QUERY_LIMITED_INFORMATION,
  TOKEN_QUERY,
  TokenUser,
  TokenElevation,
  TokenGroups,
  SE_GROUP_ENABLED,
  SE_GROUP_USE_FOR_DENY_ONLY,
  ERROR_FILE_NOT_FOUND,
  ERROR_MORE_DATA,
  ERROR_PIPE_CONNECTED,
  PIPE_ACCESS_DUPLEX,
  PIPE_REJECT_REMOTE_CLIENTS,
  PIPE_UNLIMITED_INSTANCES,
  PIPE_NOWAIT,
  ERROR_PIPE_LISTENING,
  FILE_FLAG_FIRST_PIPE_INSTANCE,
  GENERIC_READ,
  FILE_WRITE_DATA,
  FILE_WRITE_ATTRIBUTES,
  OPEN_EXISTING,
  SECURITY_SQOS_PRESENT,
  SECURITY_IDENTIFICATION,
  ERROR_BROKEN_PIPE,
  ERROR_PIPE_NOT_CONNECTED,
  ERROR_PIPE_BUSY,
  HKEY_LOCAL_MACHINE,
  KEY_READ,
  KEY_ALL_ACCESS,
  KEY_WOW64_64KEY,
  REG_OPTION_NON_VOLATILE,
  REG_SZ,
  REG_DWORD,
  REG_MULTI_SZ,
};

/** WinDivert constants checked against test/windows/c/windivert.h. */
export const WINDIVERT_CONSTANTS: Readonly<Record<string, number>> = {
  WINDIVERT_LAYER_NETWORK,
  WINDIVERT_LAYER_SOCKET,
  WINDIVERT_FLAG_SNIFF,
  WINDIVERT_FLAG_RECV_ONLY,
  WINDIVERT_EVENT_NETWORK_PACKET,
  WINDIVERT_EVENT_SOCKET_CONNECT,
  WINDIVERT_EVENT_SOCKET_CLOSE,
};
