// Finds the line of a key path (`rule[2].domains[5]`) in TOML source. smol-toml returns plain
// values without positions, so after it has accepted the document we scan the text once more with a
// small lexer that only tracks table headers, keys and array elements. The input has already been
// parsed successfully, so the scanner may stop early on anything it does not understand: the answer
// then falls back to the nearest ancestor path it did see.

export type KeyPath = readonly (string | number)[];

const SEP = '\u0001';
function keyOf(path: KeyPath): string {
  return path.join(SEP);
}

export class LineIndex {
  private readonly lines = new Map<string, number>();

  record(path: KeyPath, line: number): void {
    const k = keyOf(path);
    if (!this.lines.has(k)) this.lines.set(k, line);
  }

  /** Line of `path`, or of its nearest recorded ancestor; undefined when nothing matched. */
  lineOf(path: KeyPath): number | undefined {
    for (let n = path.length; n > 0; n--) {
      const line = this.lines.get(keyOf(path.slice(0, n)));
      if (line !== undefined) return line;
    }
    return undefined;
  }
}

/** Formats a key path the way messages print it: `rule[0].domains[3]`, `egress.vpn.endpoint`. */
export function formatPath(path: KeyPath): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (/^[A-Za-z0-9_-]+$/.test(seg)) out += out === '' ? seg : `.${seg}`;
    else out += `${out === '' ? '' : '.'}${JSON.stringify(seg)}`;
  }
  return out === '' ? '(top level)' : out;
}

export function indexLines(src: string): LineIndex {
  const index = new LineIndex();
  new Scanner(src, index).run();
  return index;
}

class Scanner {
  private i = 0;
  private line = 1;
  private current: (string | number)[] = [];
  private readonly arrayTables = new Map<string, number>();
  private readonly src: string;
  private readonly index: LineIndex;

  constructor(src: string, index: LineIndex) {
    this.src = src;
    this.index = index;
  }

  run(): void {
    const s = this.src;
    while (this.i < s.length) {
      const before = this.i;
      this.skipAll();
      if (this.i >= s.length) return;
      if (s[this.i] === '[') {
        if (!this.header()) return;
      } else {
        const key = this.dottedKey();
        if (key === null) return;
        const path = [...this.current, ...key];
        this.index.record(path, this.line);
        this.skipInline();
        if (s[this.i] !== '=') return;
        this.i++;
        this.skipInline();
        this.value(path);
      }
      if (this.i === before) return; // no progress: give up rather than loop
    }
  }

  private header(): boolean {
    const s = this.src;
    const isArray = s[this.i + 1] === '[';
    this.i += isArray ? 2 : 1;
    this.skipInline();
    const segs = this.dottedKey();
    if (segs === null) return false;
    this.skipInline();
    if (s[this.i] !== ']' || (isArray && s[this.i + 1] !== ']')) return false;
    this.i += isArray ? 2 : 1;
    const resolved: (string | number)[] = [];
    segs.forEach((seg, j) => {
      resolved.push(seg);
      this.index.record(resolved, this.line); // [a.b.c] also locates a and a.b (first mention wins)
      const count = this.arrayTables.get(keyOf(resolved));
      if (count !== undefined && (j < segs.length - 1 || !isArray)) resolved.push(count - 1);
    });
    if (isArray) {
      const k = keyOf(resolved);
      const n = this.arrayTables.get(k) ?? 0;
      this.arrayTables.set(k, n + 1);
      this.index.record(resolved, this.line);
      resolved.push(n);
    }
    this.index.record(resolved, this.line);
    this.current = resolved;
    return true;
  }

  private value(path: (string | number)[]): void {
    const s = this.src;
    const c = s[this.i];
    if (c === '[') {
      this.i++;
      for (let idx = 0; this.i < s.length; idx++) {
        this.skipAll();
        if (s[this.i] === ']') { this.i++; return; }
        const elem = [...path, idx];
        this.index.record(elem, this.line);
        const before = this.i;
        this.value(elem);
        this.skipAll();
        if (s[this.i] === ',') this.i++;
        else if (s[this.i] === ']') { this.i++; return; }
        else if (this.i === before) return;
      }
    } else if (c === '{') {
      this.i++;
      while (this.i < s.length) {
        this.skipAll();
        if (s[this.i] === '}') { this.i++; return; }
        const key = this.dottedKey();
        if (key === null) return;
        const sub = [...path, ...key];
        this.index.record(sub, this.line);
        this.skipInline();
        if (s[this.i] !== '=') return;
        this.i++;
        this.skipInline();
        this.value(sub);
        this.skipAll();
        if (s[this.i] === ',') this.i++;
      }
    } else if (s.startsWith('"""', this.i) || s.startsWith("'''", this.i)) {
      const q = s.slice(this.i, this.i + 3);
      let j = this.i + 3;
      for (;;) {
        const k = s.indexOf(q, j);
        if (k < 0) { j = s.length; break; }
        if (q === '"""' && isEscaped(s, k)) { j = k + 1; continue; }
        j = k + 3;
        while (s[j] === q[0]) j++; // up to two quotes may end the content
        break;
      }
      this.countLines(this.i, j);
      this.i = j;
    } else if (c === '"' || c === "'") {
      this.quoted();
    } else {
      while (this.i < s.length && !',]}\n#'.includes(s[this.i]!)) this.i++;
    }
  }

  /** Reads a basic or literal one-line string starting at this.i; returns its decoded text. */
  private quoted(): string {
    const s = this.src;
    const q = s[this.i]!;
    let j = this.i + 1;
    while (j < s.length && s[j] !== q && s[j] !== '\n') j += q === '"' && s[j] === '\\' ? 2 : 1;
    const raw = s.slice(this.i, Math.min(j + 1, s.length));
    this.i = Math.min(j + 1, s.length);
    if (q === "'") return raw.slice(1, -1);
    try {
      return JSON.parse(raw) as string;
    } catch {
      return raw.slice(1, -1);
    }
  }

  private dottedKey(): string[] | null {
    const s = this.src;
    const parts: string[] = [];
    for (;;) {
      const c = s[this.i];
      if (c === '"' || c === "'") parts.push(this.quoted());
      else {
        const start = this.i;
        while (this.i < s.length && /[A-Za-z0-9_-]/.test(s[this.i]!)) this.i++;
        if (this.i === start) return null;
        parts.push(s.slice(start, this.i));
      }
      this.skipInline();
      if (s[this.i] !== '.') return parts;
      this.i++;
      this.skipInline();
    }
  }

  private skipInline(): void {
    const s = this.src;
    while (s[this.i] === ' ' || s[this.i] === '\t') this.i++;
  }

  /** Skips whitespace, newlines and comments. */
  private skipAll(): void {
    const s = this.src;
    while (this.i < s.length) {
      const c = s[this.i];
      if (c === ' ' || c === '\t' || c === '\r') this.i++;
      else if (c === '\n') { this.line++; this.i++; }
      else if (c === '#') { while (this.i < s.length && s[this.i] !== '\n') this.i++; }
      else return;
    }
  }

  private countLines(from: number, to: number): void {
    for (let k = from; k < to; k++) if (this.src.charCodeAt(k) === 10) this.line++;
  }
}

function isEscaped(s: string, k: number): boolean {
  let n = 0;
  for (let j = k - 1; j >= 0 && s[j] === '\\'; j--) n++;
  return n % 2 === 1;
}
