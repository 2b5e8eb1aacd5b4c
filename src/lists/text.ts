// Bytes → text → lines, with the limits every line format shares. Lines are walked with indexOf
// so that a 1M-line list is never split into a 1M-element array.
import { ListError } from '../errors.ts';
import type { ListLimits } from './types.ts';

export interface Where {
  list: string;
  file?: string;
}

const decoder = new TextDecoder('utf-8', { fatal: true });

/** Decodes UTF-8 strictly (naming the first bad byte), drops a BOM, checks the size limit. */
export function decodeList(data: Uint8Array | string, limits: Pick<ListLimits, 'maxBytes'>, where: Where): string {
  const size = typeof data === 'string' ? Buffer.byteLength(data) : data.byteLength;
  if (size > limits.maxBytes) {
    throw new ListError('SY_ERR_LIST_TOO_LARGE', `${size} bytes is over the ${limits.maxBytes}-byte limit`, where);
  }
  let text: string;
  if (typeof data === 'string') {
    text = data;
  } else {
    try {
      text = decoder.decode(data);
    } catch {
      throw new ListError('SY_ERR_LIST_ENCODING', `not valid UTF-8 (first bad byte at offset ${firstBadUtf8(data)})`, where);
    }
  }
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

/** Offset of the first byte that breaks UTF-8, for the error message. */
function firstBadUtf8(b: Uint8Array): number {
  for (let i = 0; i < b.length; ) {
    const c = b[i]!;
    const n = c < 0x80 ? 0 : c >= 0xc2 && c <= 0xdf ? 1 : c >= 0xe0 && c <= 0xef ? 2 : c >= 0xf0 && c <= 0xf4 ? 3 : -1;
    if (n < 0 || i + n >= b.length) return i;
    for (let k = 1; k <= n; k++) if (((b[i + k] ?? 0) & 0xc0) !== 0x80) return i;
    i += n + 1;
  }
  return b.length;
}

/**
 * Calls `fn(line, lineNo)` for each line (without its \r\n), enforcing the line-length limit.
 * A trailing empty line after the last newline is not reported.
 */
export function forEachLine(text: string, maxLineLength: number, where: Where, fn: (line: string, no: number) => void): void {
  let start = 0;
  let no = 0;
  const len = text.length;
  while (start < len) {
    let end = text.indexOf('\n', start);
    if (end < 0) end = len;
    no++;
    let stop = end;
    if (stop > start && text.charCodeAt(stop - 1) === 13) stop--;
    if (stop - start > maxLineLength) {
      throw new ListError('SY_ERR_LIST_LIMIT', `line is ${stop - start} characters, over the ${maxLineLength}-character limit`, { ...where, line: no });
    }
    fn(text.slice(start, stop), no);
    start = end + 1;
  }
}

/**
 * Strips a `#` comment: at the start of the line, or after whitespace (so `#` inside a regexp such
 * as `a#b` is kept). Returns the trimmed rest.
 */
export function stripComment(line: string): string {
  let i = line.indexOf('#');
  while (i >= 0) {
    if (i === 0 || line.charCodeAt(i - 1) === 32 || line.charCodeAt(i - 1) === 9) return line.slice(0, i).trim();
    i = line.indexOf('#', i + 1);
  }
  return line.trim();
}
