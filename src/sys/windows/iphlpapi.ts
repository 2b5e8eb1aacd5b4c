// iphlpapi.dll — raw declarations and safe wrappers: the TCP/UDP tables with owning PIDs (who owns a
// local port), the machine's unicast addresses, the interface toward a destination, and interface
// change notifications. The table decoders are pure and bounds-checked: they read bytes the OS wrote,
// but a short or inconsistent buffer must end in a named error, not a read past the end.
import koffi from 'koffi';
import './types.ts';
import { OsCallError } from '../../errors.ts';
import { lazyLibrary } from './load.ts';
import { bytesToIp, ipToBytes } from './addr.ts';
import {
  AF_INET,
  AF_INET6,
  ERROR_BUFFER_OVERFLOW,
  ERROR_INSUFFICIENT_BUFFER,
  ERROR_NO_DATA,
  GAA_FLAG_SKIP_ANYCAST,
  GAA_FLAG_SKIP_DNS_SERVER,
  GAA_FLAG_SKIP_MULTICAST,
  IF_TYPE_SOFTWARE_LOOPBACK,
  IfOperStatusUp,
  TCP_TABLE_OWNER_PID_ALL,
  UDP_TABLE_OWNER_PID,
} from './constants.ts';
import {
  IP_ADAPTER_ADDRESSES_LH,
  IP_ADAPTER_DNS_SERVER_ADDRESS_XP,
  IP_ADAPTER_UNICAST_ADDRESS_LH,
  MIB_TCP6ROW_OWNER_PID,
  MIB_TCPROW_OWNER_PID,
  MIB_UDP6ROW_OWNER_PID,
  MIB_UDPROW_OWNER_PID,
  SOCKADDR_IN,
  SOCKADDR_IN6,
} from './types.ts';

export const iphlpapi = lazyLibrary('iphlpapi.dll', (lib) => {
  const NotifyCallback = koffi.proto('void __stdcall SyIpInterfaceChangeCallback(void *CallerContext, void *Row, uint32_t NotificationType)');
  return {
    NotifyCallback,
    // https://learn.microsoft.com/windows/win32/api/iphlpapi/nf-iphlpapi-getextendedtcptable
    GetExtendedTcpTable: lib.func('uint32_t __stdcall GetExtendedTcpTable(_Out_ uint8_t *pTcpTable, _Inout_ uint32_t *pdwSize, int32_t bOrder, uint32_t ulAf, uint32_t TableClass, uint32_t Reserved)'),
    // https://learn.microsoft.com/windows/win32/api/iphlpapi/nf-iphlpapi-getextendedudptable
    GetExtendedUdpTable: lib.func('uint32_t __stdcall GetExtendedUdpTable(_Out_ uint8_t *pUdpTable, _Inout_ uint32_t *pdwSize, int32_t bOrder, uint32_t ulAf, uint32_t TableClass, uint32_t Reserved)'),
    // https://learn.microsoft.com/windows/win32/api/iphlpapi/nf-iphlpapi-getadaptersaddresses
    GetAdaptersAddresses: lib.func('uint32_t __stdcall GetAdaptersAddresses(uint32_t Family, uint32_t Flags, void *Reserved, _Out_ uint8_t *AdapterAddresses, _Inout_ uint32_t *SizePointer)'),
    // https://learn.microsoft.com/windows/win32/api/iphlpapi/nf-iphlpapi-getbestinterfaceex
    GetBestInterfaceEx: lib.func('uint32_t __stdcall GetBestInterfaceEx(const uint8_t *pDestAddr, _Out_ uint32_t *pdwBestIfIndex)'),
    // https://learn.microsoft.com/windows/win32/api/netioapi/nf-netioapi-notifyipinterfacechange
    NotifyIpInterfaceChange: lib.func('uint32_t __stdcall NotifyIpInterfaceChange(uint16_t Family, SyIpInterfaceChangeCallback *Callback, void *CallerContext, uint8_t InitialNotification, _Inout_ HANDLE *NotificationHandle)'),
    // https://learn.microsoft.com/windows/win32/api/netioapi/nf-netioapi-cancelmibchangenotify2
    CancelMibChangeNotify2: lib.func('uint32_t __stdcall CancelMibChangeNotify2(HANDLE NotificationHandle)'),
  };
});

// ---------------------------------------------------------------- pure decoders

export interface SocketRow {
  family: 4 | 6;
  localAddress: string;
  localPort: number;
  remoteAddress?: string;
  remotePort?: number;
  /** MIB_TCP_STATE_* (TCP only). */
  state?: number;
  pid: number;
}

export class TableDecodeError extends Error {}

/** Port fields hold the port in network byte order in their low 16 bits. */
function port(dw: number): number {
  return ((dw & 0xff) << 8) | ((dw >> 8) & 0xff);
}

const ROW = {
  tcp4: { size: koffi.sizeof(MIB_TCPROW_OWNER_PID), type: MIB_TCPROW_OWNER_PID },
  tcp6: { size: koffi.sizeof(MIB_TCP6ROW_OWNER_PID), type: MIB_TCP6ROW_OWNER_PID },
  udp4: { size: koffi.sizeof(MIB_UDPROW_OWNER_PID), type: MIB_UDPROW_OWNER_PID },
  udp6: { size: koffi.sizeof(MIB_UDP6ROW_OWNER_PID), type: MIB_UDP6ROW_OWNER_PID },
} as const;

const off = (t: (typeof ROW)[keyof typeof ROW], f: string) => koffi.offsetof(t.type, f);

/**
 * MIB_{TCP,UDP}{,6}TABLE_OWNER_PID: DWORD dwNumEntries, then the rows, which start at offset 4 — every
 * row type here has 4-byte alignment (no 64-bit fields), so there is no padding before `table[0]`.
 */
export function decodeTable(buf: Uint8Array, kind: keyof typeof ROW, used = buf.length): SocketRow[] {
  const b = Buffer.from(buf.buffer, buf.byteOffset, Math.min(used, buf.length));
  if (b.length < 4) throw new TableDecodeError(`${kind} table: ${b.length} bytes, no entry count`);
  const n = b.readUInt32LE(0);
  const row = ROW[kind];
  if (n > (b.length - 4) / row.size) throw new TableDecodeError(`${kind} table: ${n} entries do not fit in ${b.length} bytes`);
  const rows: SocketRow[] = [];
  for (let i = 0; i < n; i++) {
    const o = 4 + i * row.size;
    const u32 = (f: string) => b.readUInt32LE(o + off(row, f));
    const a16 = (f: string) => bytesToIp(b.subarray(o + off(row, f), o + off(row, f) + 16));
    const a4 = (f: string) => bytesToIp(b.subarray(o + off(row, f), o + off(row, f) + 4));
    switch (kind) {
      case 'tcp4':
        rows.push({ family: 4, localAddress: a4('dwLocalAddr'), localPort: port(u32('dwLocalPort')), remoteAddress: a4('dwRemoteAddr'), remotePort: port(u32('dwRemotePort')), state: u32('dwState'), pid: u32('dwOwningPid') });
        break;
      case 'tcp6':
        rows.push({ family: 6, localAddress: a16('ucLocalAddr'), localPort: port(u32('dwLocalPort')), remoteAddress: a16('ucRemoteAddr'), remotePort: port(u32('dwRemotePort')), state: u32('dwState'), pid: u32('dwOwningPid') });
        break;
      case 'udp4':
        rows.push({ family: 4, localAddress: a4('dwLocalAddr'), localPort: port(u32('dwLocalPort')), pid: u32('dwOwningPid') });
        break;
      case 'udp6':
        rows.push({ family: 6, localAddress: a16('ucLocalAddr'), localPort: port(u32('dwLocalPort')), pid: u32('dwOwningPid') });
        break;
    }
  }
  return rows;
}

// ---------------------------------------------------------------- wrappers

function fetchTable(call: 'GetExtendedTcpTable' | 'GetExtendedUdpTable', af: number, cls: number): { buf: Buffer; used: number } {
  const fn = iphlpapi.get()[call];
  let size = 16 * 1024;
  for (let attempt = 0; attempt < 5; attempt++) {
    const buf = Buffer.alloc(size);
    const inout = [size];
    const st = fn(buf, inout, 0, af, cls, 0) as number;
    if (st === 0) return { buf, used: inout[0]! };
    if (st !== ERROR_INSUFFICIENT_BUFFER) throw new OsCallError('SY_ERR_WIN_CALL', call, st);
    size = inout[0]! + 4096; // the table can grow between the two calls
  }
  throw new OsCallError('SY_ERR_WIN_CALL', call, ERROR_INSUFFICIENT_BUFFER, 'table kept growing');
}

export function tcpTable(family: 4 | 6): SocketRow[] {
  const { buf, used } = fetchTable('GetExtendedTcpTable', family === 4 ? AF_INET : AF_INET6, TCP_TABLE_OWNER_PID_ALL);
  return decodeTable(buf, family === 4 ? 'tcp4' : 'tcp6', used);
}

export function udpTable(family: 4 | 6): SocketRow[] {
  const { buf, used } = fetchTable('GetExtendedUdpTable', family === 4 ? AF_INET : AF_INET6, UDP_TABLE_OWNER_PID);
  return decodeTable(buf, family === 4 ? 'udp4' : 'udp6', used);
}

/** Owner PID of a TCP socket by its local (and, when given, remote) endpoint. */
export function tcpOwnerPid(family: 4 | 6, localAddress: string, localPort: number, remote?: { address: string; port: number }): number | undefined {
  for (const r of tcpTable(family)) {
    if (r.localPort !== localPort) continue;
    if (r.localAddress !== localAddress && r.localAddress !== (family === 4 ? '0.0.0.0' : '::')) continue;
    if (remote && (r.remoteAddress !== remote.address || r.remotePort !== remote.port)) continue;
    return r.pid;
  }
  return undefined;
}

export interface AdapterAddress {
  ifIndex: number;
  name: string;
  family: 4 | 6;
  address: string;
  up: boolean;
}

/** Unicast addresses of every adapter (GetAdaptersAddresses, AF_UNSPEC). */
export function unicastAddresses(): AdapterAddress[] {
  const f = iphlpapi.get();
  let size = 16 * 1024;
  let buf = Buffer.alloc(size);
  for (let attempt = 0; ; attempt++) {
    const inout = [size];
    const st = f.GetAdaptersAddresses(0, GAA_FLAG_SKIP_ANYCAST | GAA_FLAG_SKIP_MULTICAST | GAA_FLAG_SKIP_DNS_SERVER, null, buf, inout) as number;
    if (st === 0) break;
    if (st === ERROR_NO_DATA) return [];
    if (st !== ERROR_BUFFER_OVERFLOW || attempt >= 4) throw new OsCallError('SY_ERR_WIN_CALL', 'GetAdaptersAddresses', st);
    size = inout[0]! + 4096;
    buf = Buffer.alloc(size);
  }
  const out: AdapterAddress[] = [];
  let p: unknown = buf;
  for (let guard = 0; p && guard < 1024; guard++) {
    const a = koffi.decode(p, IP_ADAPTER_ADDRESSES_LH) as { IfIndex: number; Ipv6IfIndex: number; Next: unknown; FriendlyName: string | null; OperStatus: number; FirstUnicastAddress: unknown };
    let u = a.FirstUnicastAddress;
    for (let g2 = 0; u && g2 < 1024; g2++) {
      const ua = koffi.decode(u, IP_ADAPTER_UNICAST_ADDRESS_LH) as { Next: unknown; Address: { lpSockaddr: unknown; iSockaddrLength: number } };
      const fam = koffi.decode(ua.Address.lpSockaddr, 'uint16_t') as number;
      if (fam === AF_INET) {
        const sa = koffi.decode(ua.Address.lpSockaddr, SOCKADDR_IN) as { sin_addr: number[] };
        out.push({ ifIndex: a.IfIndex, name: a.FriendlyName ?? '', family: 4, address: bytesToIp(Uint8Array.from(sa.sin_addr)), up: a.OperStatus === IfOperStatusUp });
      } else if (fam === AF_INET6) {
        const sa = koffi.decode(ua.Address.lpSockaddr, SOCKADDR_IN6) as { sin6_addr: number[] };
        out.push({ ifIndex: a.Ipv6IfIndex, name: a.FriendlyName ?? '', family: 6, address: bytesToIp(Uint8Array.from(sa.sin6_addr)), up: a.OperStatus === IfOperStatusUp });
      }
      u = ua.Next && koffi.address(ua.Next) !== 0n ? ua.Next : null;
    }
    p = a.Next && koffi.address(a.Next) !== 0n ? a.Next : null;
  }
  return out;
}

export interface AdapterDns {
  ifIndex: number;
  name: string;
  /** OperStatus is IfOperStatusUp. */
  up: boolean;
  /** IfType is IF_TYPE_SOFTWARE_LOOPBACK (the loopback pseudo-interface). */
  loopback: boolean;
  /** The adapter's DNS servers in the order Windows lists them (IPv4 and IPv6). */
  servers: string[];
  /** The adapter's own unicast addresses (to recognise a server that is this machine). */
  addresses: string[];
}

/** Reads one SOCKET_ADDRESS's sockaddr (AF_INET / AF_INET6); other families → null. */
function sockaddrIp(lpSockaddr: unknown): string | null {
  if (!lpSockaddr || koffi.address(lpSockaddr) === 0n) return null;
  const fam = koffi.decode(lpSockaddr, 'uint16_t') as number;
  if (fam === AF_INET) return bytesToIp(Uint8Array.from((koffi.decode(lpSockaddr, SOCKADDR_IN) as { sin_addr: number[] }).sin_addr));
  if (fam === AF_INET6) return bytesToIp(Uint8Array.from((koffi.decode(lpSockaddr, SOCKADDR_IN6) as { sin6_addr: number[] }).sin6_addr));
  return null;
}

const next = (p: unknown): unknown => (p && koffi.address(p) !== 0n ? p : null);

/**
 * Every adapter's DNS servers and unicast addresses (GetAdaptersAddresses, AF_UNSPEC, without
 * GAA_FLAG_SKIP_DNS_SERVER). The lists are walked with a bound on their length.
 */
export function adapterDnsServers(): AdapterDns[] {
  const f = iphlpapi.get();
  let size = 16 * 1024;
  let buf = Buffer.alloc(size);
  for (let attempt = 0; ; attempt++) {
    const inout = [size];
    const st = f.GetAdaptersAddresses(0, GAA_FLAG_SKIP_ANYCAST | GAA_FLAG_SKIP_MULTICAST, null, buf, inout) as number;
    if (st === 0) break;
    if (st === ERROR_NO_DATA) return [];
    if (st !== ERROR_BUFFER_OVERFLOW || attempt >= 4) throw new OsCallError('SY_ERR_WIN_CALL', 'GetAdaptersAddresses', st);
    size = inout[0]! + 4096;
    buf = Buffer.alloc(size);
  }
  const out: AdapterDns[] = [];
  let p: unknown = buf;
  for (let guard = 0; p && guard < 1024; guard++) {
    const a = koffi.decode(p, IP_ADAPTER_ADDRESSES_LH) as { IfIndex: number; Ipv6IfIndex: number; Next: unknown; FriendlyName: string | null; IfType: number; OperStatus: number; FirstUnicastAddress: unknown; FirstDnsServerAddress: unknown };
    const servers: string[] = [];
    let d = next(a.FirstDnsServerAddress);
    for (let g = 0; d && g < 64; g++) {
      const ds = koffi.decode(d, IP_ADAPTER_DNS_SERVER_ADDRESS_XP) as { Next: unknown; Address: { lpSockaddr: unknown } };
      const ip = sockaddrIp(ds.Address.lpSockaddr);
      if (ip !== null) servers.push(ip);
      d = next(ds.Next);
    }
    const addresses: string[] = [];
    let u = next(a.FirstUnicastAddress);
    for (let g = 0; u && g < 1024; g++) {
      const ua = koffi.decode(u, IP_ADAPTER_UNICAST_ADDRESS_LH) as { Next: unknown; Address: { lpSockaddr: unknown } };
      const ip = sockaddrIp(ua.Address.lpSockaddr);
      if (ip !== null) addresses.push(ip);
      u = next(ua.Next);
    }
    out.push({ ifIndex: a.IfIndex || a.Ipv6IfIndex, name: a.FriendlyName ?? '', up: a.OperStatus === IfOperStatusUp, loopback: a.IfType === IF_TYPE_SOFTWARE_LOOPBACK, servers, addresses });
    p = next(a.Next);
  }
  return out;
}

/** Interface index Windows would use to reach `address`. */
export function bestInterface(address: string): number {
  const b = ipToBytes(address);
  const sa = Buffer.alloc(b.length === 4 ? 16 : 28);
  sa.writeUInt16LE(b.length === 4 ? AF_INET : AF_INET6, 0);
  b.copy(sa, b.length === 4 ? 4 : 8);
  const idx = [0];
  const st = iphlpapi.get().GetBestInterfaceEx(sa, idx) as number;
  if (st !== 0) throw new OsCallError('SY_ERR_WIN_CALL', 'GetBestInterfaceEx', st, address);
  return idx[0]!;
}

/** Calls `onChange` on every IP interface change until the returned function is called. */
export function watchInterfaces(onChange: () => void): () => void {
  const f = iphlpapi.get();
  const cb = koffi.register(() => onChange(), koffi.pointer(f.NotifyCallback));
  const h: unknown[] = [null];
  const st = f.NotifyIpInterfaceChange(0, cb, null, 0, h) as number;
  if (st !== 0) {
    koffi.unregister(cb);
    throw new OsCallError('SY_ERR_WIN_CALL', 'NotifyIpInterfaceChange', st);
  }
  return () => {
    f.CancelMibChangeNotify2(h[0]);
    koffi.unregister(cb);
  };
}
