// Watches an HTTP/1.1 response stream (RFC 9112 §6.3) without changing it, to know where each
// response ends: a kept-alive upstream may only be reused, or replaced by another origin's, once
// every request sent on it has had its whole response. Heads are bounded; a response with no
// request outstanding, or a malformed head or chunk line, is a protocol error (the caller closes).
const MAX_HEAD = 64 * 1024;
const MAX_LINE = 4 * 1024;

type State = 'head' | 'length' | 'chunk-size' | 'chunk-data' | 'chunk-crlf' | 'trailer' | 'until-close';

export class ResponseFramer {
  /** Methods of requests sent whose responses have not ended, oldest first. */
  private readonly queue: string[] = [];
  private state: State = 'head';
  private remaining = 0;
  private line: Buffer[] = [];
  private lineLength = 0;
  private crlfMatch = 0;
  /** False once a response said it closes the connection (or is delimited by the close). */
  reusable = true;
  /** A 101 Switching Protocols answer: the connection is a tunnel from here on. */
  upgraded = false;
  error: string | null = null;
  /** Called each time no response is outstanding any more. */
  onIdle: (() => void) | null = null;

  get pending(): number {
    return this.queue.length;
  }

  /** True when the current response ends only when the upstream closes. */
  get untilClose(): boolean {
    return this.state === 'until-close';
  }

  expect(method: string): void {
    this.queue.push(method);
  }

  /** Observes one chunk; returns false on a protocol error (see `error`). */
  feed(b: Buffer): boolean {
    let i = 0;
    while (i < b.length) {
      if (this.error) return false;
      if (this.state === 'until-close') return true;
      if (this.queue.length === 0) return this.fail('response bytes with no request outstanding');
      switch (this.state) {
        case 'head': {
          // Find CRLFCRLF across chunk boundaries; the head's bytes are kept (bounded) to parse.
          const start = i;
          while (i < b.length && this.crlfMatch < 4) {
            const c = b[i++]!;
            this.crlfMatch = c === (this.crlfMatch % 2 === 0 ? 0x0d : 0x0a) ? this.crlfMatch + 1 : c === 0x0d ? 1 : 0;
          }
          this.line.push(b.subarray(start, i));
          this.lineLength += i - start;
          if (this.lineLength > MAX_HEAD) return this.fail(`response head exceeds ${MAX_HEAD} bytes`);
          if (this.crlfMatch === 4) {
            const head = Buffer.concat(this.line).toString('latin1');
            this.line = [];
            this.lineLength = 0;
            this.crlfMatch = 0;
            if (!this.onHead(head)) return false;
          }
          break;
        }
        case 'length':
        case 'chunk-data': {
          const n = Math.min(this.remaining, b.length - i);
          i += n;
          this.remaining -= n;
          if (this.remaining === 0) {
            if (this.state === 'length') this.complete();
            else {
              this.state = 'chunk-crlf';
              this.remaining = 2;
            }
          }
          break;
        }
        case 'chunk-crlf': {
          const c = b[i++]!;
          if (c !== (this.remaining === 2 ? 0x0d : 0x0a)) return this.fail('chunk data not followed by CRLF');
          if (--this.remaining === 0) this.state = 'chunk-size';
          break;
        }
        case 'chunk-size':
        case 'trailer': {
          const lf = b.indexOf(0x0a, i);
          const end = lf < 0 ? b.length : lf + 1;
          this.line.push(b.subarray(i, end));
          this.lineLength += end - i;
          i = end;
          if (this.lineLength > (this.state === 'trailer' ? MAX_HEAD : MAX_LINE)) return this.fail('chunk line too long');
          if (lf < 0) break;
          const text = Buffer.concat(this.line).toString('latin1');
          this.line = [];
          if (this.state === 'chunk-size') {
            this.lineLength = 0;
            const m = /^([0-9a-fA-F]{1,12})[ \t]*(;[^\r\n]*)?\r\n$/.exec(text);
            if (!m) return this.fail('malformed chunk size line');
            const size = parseInt(m[1]!, 16);
            if (size === 0) this.state = 'trailer';
            else {
              this.state = 'chunk-data';
              this.remaining = size;
            }
          } else if (text === '\r\n') {
            this.lineLength = 0;
            this.complete();
          }
          break;
        }
      }
    }
    return !this.error;
  }

  private fail(msg: string): false {
    this.error = msg;
    return false;
  }

  private onHead(head: string): boolean {
    const lines = head.split('\r\n');
    const m = /^HTTP\/1\.([01]) (\d{3})(?: |$)/.exec(lines[0] ?? '');
    if (!m) return this.fail('malformed status line');
    const http10 = m[1] === '0';
    const status = Number(m[2]);
    const fields = new Map<string, string>();
    for (const l of lines.slice(1)) {
      if (l === '') continue;
      const colon = l.indexOf(':');
      if (colon <= 0) return this.fail('malformed response header');
      const name = l.slice(0, colon).trim().toLowerCase();
      const value = l.slice(colon + 1).trim();
      fields.set(name, fields.has(name) ? `${fields.get(name)}, ${value}` : value);
    }
    const conn = (fields.get('connection') ?? '').toLowerCase().split(',').map((t) => t.trim());
    if (conn.includes('close') || (http10 && !conn.includes('keep-alive'))) this.reusable = false;
    if (status === 101) {
      this.upgraded = true;
      this.reusable = false;
      this.state = 'until-close';
      return true;
    }
    if (status >= 100 && status < 200) return true; // interim: the final response follows
    const method = this.queue[0]!;
    if (method === 'HEAD' || status === 204 || status === 304) {
      this.complete();
      return true;
    }
    const te = fields.get('transfer-encoding');
    if (te !== undefined) {
      if (!/(^|,)\s*chunked\s*$/i.test(te)) {
        this.reusable = false;
        this.state = 'until-close';
      } else this.state = 'chunk-size';
      return true;
    }
    const cl = fields.get('content-length');
    if (cl !== undefined) {
      if (!/^\d{1,15}$/.test(cl)) return this.fail('malformed Content-Length in response');
      this.remaining = Number(cl);
      if (this.remaining === 0) this.complete();
      else this.state = 'length';
      return true;
    }
    this.reusable = false;
    this.state = 'until-close';
    return true;
  }

  private complete(): void {
    this.queue.shift();
    this.state = 'head';
    if (this.queue.length === 0) this.onIdle?.();
  }
}
