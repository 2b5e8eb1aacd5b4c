// WinDivert.dll (2.2) — raw declarations, a pure codec for WINDIVERT_ADDRESS, and a safe handle
// wrapper. WinDivert.dll and WinDivert64.sys are provided by the user (enforce.windivertPath); the
// DLL is loaded from that folder on first use, never from the search path.
//
// WinDivertRecv blocks, so it runs through koffi's `.async` (a worker thread); Send is quick and runs
// synchronously. Packets and addresses are plain Buffers: the reflection hot path never builds koffi
// objects.
import koffi from 'koffi';
import { join } from 'node:path';
import { existsSync } from 'node:fs';
import { OsCallError } from '../../errors.ts';
import { lazyLibrary, ok, type LazyLibrary } from './load.ts';
import { kernel32 } from './kernel32.ts';
import { windivertAddr } from './addr.ts';
import './types.ts';
import { WINDIVERT_ADDRESS, WINDIVERT_BITS, WINDIVERT_DATA_SOCKET } from './types.ts';
import { WINDIVERT_ADDRESS_SIZE, WINDIVERT_MTU_MAX } from './constants.ts';

function declare(lib: ReturnType<typeof koffi.load>) {
  return {
    // https://reqrypt.org/windivert-doc.html#divert_open
    WinDivertOpen: lib.func('HANDLE __cdecl WinDivertOpen(const char *filter, uint32_t layer, int16_t priority, uint64_t flags)'),
    // https://reqrypt.org/windivert-doc.html#divert_recv
    WinDivertRecv: lib.func('int32_t __cdecl WinDivertRecv(HANDLE handle, _Out_ uint8_t *pPacket, uint32_t packetLen, _Out_ uint32_t *pRecvLen, _Out_ uint8_t *pAddr)'),
    // https://reqrypt.org/windivert-doc.html#divert_send
    WinDivertSend: lib.func('int32_t __cdecl WinDivertSend(HANDLE handle, const uint8_t *pPacket, uint32_t packetLen, _Out_ uint32_t *pSendLen, const uint8_t *pAddr)'),
    // https://reqrypt.org/windivert-doc.html#divert_shutdown
    WinDivertShutdown: lib.func('int32_t __cdecl WinDivertShutdown(HANDLE handle, uint32_t how)'),
    // https://reqrypt.org/windivert-doc.html#divert_close
    WinDivertClose: lib.func('int32_t __cdecl WinDivertClose(HANDLE handle)'),
    // https://reqrypt.org/windivert-doc.html#divert_set_param
    WinDivertSetParam: lib.func('int32_t __cdecl WinDivertSetParam(HANDLE handle, uint32_t param, uint64_t value)'),
    // https://reqrypt.org/windivert-doc.html#divert_helper_calc_checksums
    WinDivertHelperCalcChecksums: lib.func('int32_t __cdecl WinDivertHelperCalcChecksums(uint8_t *pPacket, uint32_t packetLen, uint8_t *pAddr, uint64_t flags)'),
  };
}

export type WinDivertFns = ReturnType<typeof declare>;

const libs = new Map<string, LazyLibrary<WinDivertFns>>();

/** Checks the folder holds both files, then returns the (lazily loaded) library. */
export function windivertLibrary(folder: string | null): LazyLibrary<WinDivertFns> {
  if (!folder) throw new OsCallError('SY_ERR_WIN_WINDIVERT_PATH', 'enforce.windivertPath', undefined, 'not set');
  for (const f of ['WinDivert.dll', 'WinDivert64.sys']) {
    if (!existsSync(join(folder, f))) throw new OsCallError('SY_ERR_WIN_WINDIVERT_PATH', 'enforce.windivertPath', undefined, `${join(folder, f)} not found`);
  }
  const dll = join(folder, 'WinDivert.dll');
  let lib = libs.get(dll);
  if (!lib) {
    lib = lazyLibrary(dll, declare);
    libs.set(dll, lib);
  }
  return lib;
}

// ---------------------------------------------------------------- WINDIVERT_ADDRESS codec (pure)

export interface DivertAddress {
  timestamp: bigint;
  layer: number;
  event: number;
  sniffed: boolean;
  outbound: boolean;
  loopback: boolean;
  impostor: boolean;
  ipv6: boolean;
  ipChecksum: boolean;
  tcpChecksum: boolean;
  udpChecksum: boolean;
  /** NETWORK layer. */
  ifIdx: number;
  subIfIdx: number;
}

export interface SocketEvent {
  event: number;
  pid: number;
  protocol: number;
  family: 4 | 6;
  localAddress: string;
  localPort: number;
  remoteAddress: string;
  remotePort: number;
}

const BITS_OFFSET = koffi.offsetof(WINDIVERT_ADDRESS, 'Bits');
const UNION_OFFSET = koffi.offsetof(WINDIVERT_ADDRESS, 'u');
const S = (f: string) => UNION_OFFSET + koffi.offsetof(WINDIVERT_DATA_SOCKET, f);

function bit(word: number, name: keyof typeof WINDIVERT_BITS): number {
  const { shift, width } = WINDIVERT_BITS[name];
  return Math.floor(word / 2 ** shift) & (2 ** width - 1);
}

export function decodeAddress(buf: Uint8Array): DivertAddress {
  if (buf.length < WINDIVERT_ADDRESS_SIZE) throw new RangeError(`WINDIVERT_ADDRESS needs ${WINDIVERT_ADDRESS_SIZE} bytes, got ${buf.length}`);
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.length);
  const w = b.readUInt32LE(BITS_OFFSET);
  return {
    timestamp: b.readBigInt64LE(0),
    layer: bit(w, 'Layer'),
    event: bit(w, 'Event'),
    sniffed: bit(w, 'Sniffed') === 1,
    outbound: bit(w, 'Outbound') === 1,
    loopback: bit(w, 'Loopback') === 1,
    impostor: bit(w, 'Impostor') === 1,
    ipv6: bit(w, 'IPv6') === 1,
    ipChecksum: bit(w, 'IPChecksum') === 1,
    tcpChecksum: bit(w, 'TCPChecksum') === 1,
    udpChecksum: bit(w, 'UDPChecksum') === 1,
    ifIdx: b.readUInt32LE(UNION_OFFSET),
    subIfIdx: b.readUInt32LE(UNION_OFFSET + 4),
  };
}

/** Sets the Outbound bit in place (reflection turns an outbound packet into an inbound one). */
export function setOutbound(buf: Uint8Array, outbound: boolean): void {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.length);
  const mask = 2 ** WINDIVERT_BITS.Outbound.shift;
  let w = b.readUInt32LE(BITS_OFFSET);
  w = outbound ? (w | mask) >>> 0 : (w & ~mask) >>> 0;
  b.writeUInt32LE(w, BITS_OFFSET);
}

/**
 * Clears the three "checksum is valid" bits. On WinDivertSend a 0 bit makes the driver compute that
 * checksum again before injecting; we compute them ourselves too (tested against scapy), so a packet
 * we rewrote is correct either way and never carries a flag that vouches for bytes we changed.
 */
export function clearChecksumFlags(buf: Uint8Array): void {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.length);
  let w = b.readUInt32LE(BITS_OFFSET);
  for (const n of ['IPChecksum', 'TCPChecksum', 'UDPChecksum'] as const) w = (w & ~(2 ** WINDIVERT_BITS[n].shift)) >>> 0;
  b.writeUInt32LE(w, BITS_OFFSET);
}

/** A SOCKET-layer event (connect, close) from a received WINDIVERT_ADDRESS. */
export function decodeSocketEvent(buf: Uint8Array): SocketEvent {
  const a = decodeAddress(buf);
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.length);
  const local = windivertAddr(b.subarray(S('LocalAddr'), S('LocalAddr') + 16));
  const remote = windivertAddr(b.subarray(S('RemoteAddr'), S('RemoteAddr') + 16));
  return {
    event: a.event,
    pid: b.readUInt32LE(S('ProcessId')),
    protocol: b.readUInt8(S('Protocol')),
    family: remote.family,
    localAddress: local.address,
    localPort: b.readUInt16LE(S('LocalPort')),
    remoteAddress: remote.address,
    remotePort: b.readUInt16LE(S('RemotePort')),
  };
}

// ---------------------------------------------------------------- handle wrapper (I/O)

export interface Received {
  packet: Buffer;
  addr: Buffer;
}

/** One WinDivert handle. recv() is async (worker thread); close() wakes a pending recv. */
export class WinDivertHandle {
  #fns: WinDivertFns;
  #h: unknown;
  readonly filter: string;

  private constructor(fns: WinDivertFns, h: unknown, filter: string) {
    this.#fns = fns;
    this.#h = h;
    this.filter = filter;
  }

  static open(lib: LazyLibrary<WinDivertFns>, filter: string, layer: number, priority: number, flags: number): WinDivertHandle {
    const fns = lib.get();
    const h = fns.WinDivertOpen(filter, layer, priority, BigInt(flags));
    const addr = h === null ? 0n : koffi.address(h);
    if (addr === 0n || addr === 0xffffffffffffffffn) {
      const err = kernel32.get().GetLastError() as number;
      throw new OsCallError('SY_ERR_WIN_WINDIVERT', 'WinDivertOpen', err, `filter ${JSON.stringify(filter)}, layer ${layer}`);
    }
    return new WinDivertHandle(fns, h, filter);
  }

  recv(): Promise<Received | null> {
    const packet = Buffer.alloc(WINDIVERT_MTU_MAX);
    const addr = Buffer.alloc(WINDIVERT_ADDRESS_SIZE);
    const len = [0];
    return new Promise((resolve, reject) => {
      if (this.#h === null) return resolve(null);
      this.#fns.WinDivertRecv.async(this.#h, packet, packet.length, len, addr, (err: unknown, res: number) => {
        if (err) return reject(err);
        if (!ok(res)) {
          if (this.#h === null) return resolve(null); // closed while waiting
          return reject(new OsCallError('SY_ERR_WIN_WINDIVERT', 'WinDivertRecv', kernel32.get().GetLastError() as number));
        }
        resolve({ packet: packet.subarray(0, len[0]), addr });
      });
    });
  }

  send(packet: Uint8Array, addr: Uint8Array): void {
    if (this.#h === null) return;
    const sent = [0];
    if (!ok(this.#fns.WinDivertSend(this.#h, packet, packet.length, sent, addr) as number)) {
      throw new OsCallError('SY_ERR_WIN_WINDIVERT', 'WinDivertSend', kernel32.get().GetLastError() as number);
    }
  }

  close(): void {
    if (this.#h === null) return;
    const h = this.#h;
    this.#h = null;
    this.#fns.WinDivertShutdown(h, 3);
    this.#fns.WinDivertClose(h);
  }
}
