// The WinDivert loop: owns the two handles and shuttles bytes between them and the Reflector. No
// decisions here (see reflector.ts). Two handles:
//  - NETWORK layer, filter `outbound and tcp and !loopback`: every outbound TCP packet is diverted to
//    us and must be sent back (as is, rewritten, or not at all = dropped);
//  - SOCKET layer, CONNECT events of TCP sockets, SNIFF | RECV_ONLY (the SOCKET layer requires
//    RECV_ONLY; SNIFF means the connect itself is not held up by us).
// Our own connections are passed by PID in the reflector: Node sockets have no usable fd on Windows,
// so PID is the only handle on them. That is why the SOCKET filter must NOT exclude our PID: without
// our own CONNECT events, every SYN of the daemon would wait for the pending timeout.
import type { LazyLibrary } from '../../sys/windows/load.ts';
import { decodeSocketEvent, WinDivertHandle, type WinDivertFns } from '../../sys/windows/windivert.ts';
import { WINDIVERT_EVENT_SOCKET_CONNECT, WINDIVERT_FLAG_RECV_ONLY, WINDIVERT_FLAG_SNIFF, WINDIVERT_LAYER_NETWORK, WINDIVERT_LAYER_SOCKET } from '../../sys/windows/constants.ts';
import type { Reflector, Outgoing } from './reflector.ts';

export const NETWORK_FILTER = 'outbound and tcp and !loopback';
export const SOCKET_FILTER = 'event == CONNECT and tcp';

export interface DiverterOptions {
  /** WinDivert priority of our handles (higher runs first); 0 is WinDivert's default. */
  priority?: number;
  tickMs?: number;
  onError?: (err: unknown) => void;
}

export class Diverter {
  #lib: LazyLibrary<WinDivertFns>;
  #r: Reflector;
  #o: DiverterOptions;
  #net: WinDivertHandle | null = null;
  #sock: WinDivertHandle | null = null;
  #timer: NodeJS.Timeout | null = null;
  #running = false;

  constructor(lib: LazyLibrary<WinDivertFns>, reflector: Reflector, o: DiverterOptions) {
    this.#lib = lib;
    this.#r = reflector;
    this.#o = o;
  }

  /** Opens both handles (SOCKET first, so no SYN arrives before we can learn its PID). */
  start(): void {
    if (this.#running) return;
    const prio = this.#o.priority ?? 0;
    this.#sock = WinDivertHandle.open(this.#lib, SOCKET_FILTER, WINDIVERT_LAYER_SOCKET, prio, WINDIVERT_FLAG_SNIFF | WINDIVERT_FLAG_RECV_ONLY);
    try {
      this.#net = WinDivertHandle.open(this.#lib, NETWORK_FILTER, WINDIVERT_LAYER_NETWORK, prio, 0);
    } catch (err) {
      this.#sock.close();
      this.#sock = null;
      throw err;
    }
    this.#running = true;
    this.#timer = setInterval(() => this.#send(this.#r.tick()), this.#o.tickMs ?? 50);
    this.#timer.unref();
    void this.#netLoop();
    void this.#sockLoop();
  }

  #send(out: Outgoing[]): void {
    for (const o of out) {
      try {
        this.#net?.send(o.packet, o.addr);
      } catch (err) {
        this.#o.onError?.(err);
      }
    }
  }

  async #netLoop(): Promise<void> {
    while (this.#running && this.#net) {
      try {
        const got = await this.#net.recv();
        if (!got) break;
        this.#send(this.#r.onPacket(got.packet, got.addr));
      } catch (err) {
        if (this.#running) this.#o.onError?.(err);
        break;
      }
    }
  }

  async #sockLoop(): Promise<void> {
    while (this.#running && this.#sock) {
      try {
        const got = await this.#sock.recv();
        if (!got) break;
        const ev = decodeSocketEvent(got.addr);
        if (ev.event !== WINDIVERT_EVENT_SOCKET_CONNECT || ev.protocol !== 6) continue;
        this.#send(
          this.#r.onConnect({ family: ev.family, localAddress: ev.localAddress, localPort: ev.localPort, remoteAddress: ev.remoteAddress, remotePort: ev.remotePort }, ev.pid),
        );
      } catch (err) {
        if (this.#running) this.#o.onError?.(err);
        break;
      }
    }
  }

  /**
   * Closing the NETWORK handle ends the diversion: packets flow again without us. That is safe only
   * because the WFP permits go at the same time (backend.stop), leaving the kill-switch in charge.
   */
  stop(): void {
    this.#running = false;
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    this.#net?.close();
    this.#sock?.close();
    this.#net = null;
    this.#sock = null;
  }
}
