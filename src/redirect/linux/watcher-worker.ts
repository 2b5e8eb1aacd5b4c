// Worker thread of the process watcher: blocks in recv() on the proc connector (Node cannot poll a
// netlink fd on its event loop) and places each exec'd process at once, in this thread, so the
// window between exec and placement is one readlink and one write. The main thread learns of each
// placement by message. Stops when the shared flag is set (recv times out every 200 ms to look).
import { parentPort, workerData } from 'node:worker_threads';
import { hrtime } from 'node:process';
import { ProcConnector } from '../../sys/linux/proc-connector.ts';
import { inNetNamespace } from '../../sys/linux/netns.ts';
import { compileRules, type WatchRule } from './app-match.ts';
import { placeOne, type PlacerConfig } from './placer.ts';

const RING = 64; // = RING in watch-threads.ts (not imported: that module pulls in worker_threads' parent side)

interface Data {
  rules: WatchRule[];
  placer: PlacerConfig;
  stop: SharedArrayBuffer;
  /** Open the connector in this network namespace (a path such as /proc/1/ns/net); see WatcherOptions. */
  connectorNetns?: string;
}

const data = workerData as Data;
const port = parentPort!;
const stop = new Int32Array(data.stop);
const rules = compileRules(data.rules);

let pc: ProcConnector;
try {
  pc = data.connectorNetns ? inNetNamespace(data.connectorNetns, () => new ProcConnector(200)) : new ProcConnector(200);
  port.postMessage({ type: 'ready' });
} catch (err) {
  port.postMessage({ type: 'error', message: (err as Error).message });
  process.exit(0);
}

while (Atomics.load(stop, 0) === 0) {
  let events;
  try {
    events = pc.next();
  } catch (err) {
    // ENOBUFS: the kernel dropped events; the main thread rescans /proc.
    port.postMessage({ type: 'overrun', message: (err as Error).message });
    continue;
  }
  for (const ev of events) {
    if (ev.pid !== ev.tgid) continue;
    // Ring of recent execs (see ProcessWatcher.#probe): proves events arrive in this namespace.
    const pos = Atomics.add(stop, 1, 1) % RING;
    Atomics.store(stop, 2 + pos, ev.tgid);
    const p = placeOne(ev.tgid, rules, data.placer);
    if (p) port.postMessage({ type: 'placed', ...p, latencyNs: Number(hrtime.bigint() - ev.timestampNs) });
  }
}
pc.close();
port.postMessage({ type: 'stopped' });
