// A long-lived python3 + scapy child answering one JSON line per request (scapy_oracle.py): builds
// golden packets and checks rewritten ones, independently of the TypeScript code under test.
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const SCRIPT = fileURLToPath(new URL('./scapy_oracle.py', import.meta.url));

/**
 * Debian's python3-scapy lives in the system interpreter; a python3 earlier on PATH (pyenv, venv) may
 * not see it, so the system one is tried first.
 */
let python: string | null | undefined;
function findPython(): string | null {
  if (python !== undefined) return python;
  python = null;
  for (const p of ['/usr/bin/python3', 'python3']) {
    if (spawnSync(p, ['-c', 'import scapy.all'], { stdio: 'ignore' }).status === 0) return (python = p);
  }
  return python;
}

export function scapyMissing(): string | undefined {
  return findPython() ? undefined : 'needs python3 with scapy (Debian python3-scapy)';
}

export interface BuildSpec {
  family: 4 | 6;
  src: string;
  dst: string;
  sport: number;
  dport: number;
  flags?: string;
  seq?: number;
  ack?: number;
  payload?: string;
  ext?: ('hbh' | 'dst' | 'routing' | 'frag')[];
  ipopts?: boolean;
}

export interface Checked {
  family: number;
  src: string;
  dst: string;
  sport: number;
  dport: number;
  flags: string;
  seq: number;
  ack: number;
  payload: string;
  length: number;
  ip_chksum_ok: boolean;
  tcp_chksum_ok: boolean;
  ext?: string[];
  error?: string;
}

export class Scapy {
  #p: ChildProcessWithoutNullStreams;
  #waiting: ((line: string) => void)[] = [];

  constructor() {
    this.#p = spawn(findPython() ?? 'python3', [SCRIPT], { stdio: ['pipe', 'pipe', 'pipe'] });
    createInterface({ input: this.#p.stdout }).on('line', (l) => this.#waiting.shift()?.(l));
  }

  #ask(req: object): Promise<Record<string, unknown>> {
    return new Promise((resolve) => {
      this.#waiting.push((l) => resolve(JSON.parse(l) as Record<string, unknown>));
      this.#p.stdin.write(JSON.stringify(req) + '\n');
    });
  }

  async build(spec: BuildSpec): Promise<Buffer> {
    const r = await this.#ask({ op: 'build', ...spec });
    if (typeof r['hex'] !== 'string') throw new Error(`scapy build failed: ${String(r['error'])}`);
    return Buffer.from(r['hex'], 'hex');
  }

  async check(packet: Uint8Array): Promise<Checked> {
    const r = (await this.#ask({ op: 'check', hex: Buffer.from(packet).toString('hex') })) as unknown as Checked;
    if (r.error) throw new Error(`scapy check failed: ${r.error}`);
    return r;
  }

  close(): void {
    this.#p.stdin.end();
    this.#p.kill();
  }
}
