// Control protocol framing: every message is one frame.
//
//    0                   1                   2                   3
//    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//   +---------------------------------------------------------------+
//   |                body length N (uint32, big-endian)             |
//   +---------------------------------------------------------------+
//   |      body: N bytes of UTF-8 JSON, one object (1 <= N <= 1 MiB)  ...
//   +---------------------------------------------------------------
//
// Bodies (docs/control.md):
//   request  {"v":1,"id":<uint>,"method":"<name>","params":<any>}
//   reply    {"v":1,"id":<uint>,"ok":true,"result":<any>}
//            {"v":1,"id":<uint>,"ok":true,"more":true,"result":<any>}   (a partial; more follow)
//            {"v":1,"id":<uint|null>,"ok":false,"error":{"code":"SY_ERR_...","message":"..."}}
//
// The bytes come from any local user who can open the socket, so the decoder trusts nothing:
// it checks the length before buffering, validates UTF-8, bounds nesting before JSON.parse,
// and names each failure with a SY_ERR_CONTROL_* code.
import { ControlError } from '../errors.ts';

export const PROTOCOL_VERSION = 1;
export const HEADER_BYTES = 4;
/** Largest body accepted or sent: 1 MiB. */
export const MAX_BODY_BYTES = 1 << 20;
/** Deepest nesting of arrays/objects accepted in a body. */
export const MAX_DEPTH = 32;
/** Longest method name. */
export const MAX_METHOD_LENGTH = 64;

export interface Request {
  v: number;
  id: number;
  method: string;
  params: unknown;
}

export interface ErrorBody {
  code: string;
  message: string;
}

export type Reply =
  | { v: number; id: number; ok: true; result: unknown; more?: true }
  | { v: number; id: number | null; ok: false; error: ErrorBody };

/** Encodes one message as a frame; refuses bodies over the limit (SY_ERR_CONTROL_TOO_LARGE). */
export function encodeFrame(message: unknown): Buffer {
  const json = JSON.stringify(message);
  if (json === undefined) throw new ControlError('SY_ERR_CONTROL_BAD_FRAME', 'message is not JSON-serialisable');
  const body = Buffer.from(json, 'utf8');
  if (body.length > MAX_BODY_BYTES) {
    throw new ControlError('SY_ERR_CONTROL_TOO_LARGE', `message of ${body.length} bytes exceeds the ${MAX_BODY_BYTES}-byte limit`);
  }
  const frame = Buffer.allocUnsafe(HEADER_BYTES + body.length);
  frame.writeUInt32BE(body.length, 0);
  body.copy(frame, HEADER_BYTES);
  return frame;
}

/**
 * Splits a byte stream into frame bodies. A zero-length frame is returned as an empty body (the
 * stream is still in step; the caller answers BAD_FRAME). An announced length over the limit
 * throws SY_ERR_CONTROL_TOO_LARGE before anything is buffered: the stream cannot be resynced,
 * so the caller answers and closes.
 */
export class FrameDecoder {
  #buf: Buffer = Buffer.alloc(0);
  readonly maxBody: number;

  constructor(maxBody = MAX_BODY_BYTES) {
    this.maxBody = maxBody;
  }

  /** Bytes held for an unfinished frame. */
  get pending(): number {
    return this.#buf.length;
  }

  push(chunk: Buffer): Buffer[] {
    this.#buf = this.#buf.length === 0 ? chunk : Buffer.concat([this.#buf, chunk]);
    const out: Buffer[] = [];
    for (;;) {
      if (this.#buf.length < HEADER_BYTES) break;
      const len = this.#buf.readUInt32BE(0);
      if (len > this.maxBody) {
        this.#buf = Buffer.alloc(0);
        throw new ControlError('SY_ERR_CONTROL_TOO_LARGE', `frame announces ${len} bytes; the limit is ${this.maxBody}`);
      }
      if (this.#buf.length < HEADER_BYTES + len) break;
      out.push(Buffer.from(this.#buf.subarray(HEADER_BYTES, HEADER_BYTES + len)));
      this.#buf = this.#buf.subarray(HEADER_BYTES + len);
    }
    return out;
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });

/**
 * Bounds nesting without recursion: counts brackets outside strings. Runs before JSON.parse so
 * that nothing later (validation, logging, JSON.stringify) walks a pathologically deep value.
 */
export function jsonDepth(text: string, limit: number): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c /* \ */) i++;
      else if (c === 0x22 /* " */) inString = false;
      continue;
    }
    if (c === 0x22) inString = true;
    else if (c === 0x5b /* [ */ || c === 0x7b /* { */) {
      depth++;
      if (depth > max) max = depth;
      if (max > limit) return max;
    } else if (c === 0x5d /* ] */ || c === 0x7d /* } */) depth--;
  }
  return max;
}

/** UTF-8 → depth check → JSON.parse → must be a plain object. */
export function parseBody(body: Buffer): Record<string, unknown> {
  if (body.length === 0) throw new ControlError('SY_ERR_CONTROL_BAD_FRAME', 'empty frame');
  let text: string;
  try {
    text = utf8.decode(body);
  } catch {
    throw new ControlError('SY_ERR_CONTROL_BAD_FRAME', 'frame body is not valid UTF-8');
  }
  if (jsonDepth(text, MAX_DEPTH) > MAX_DEPTH) {
    throw new ControlError('SY_ERR_CONTROL_BAD_FRAME', `frame body nests deeper than ${MAX_DEPTH} levels`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new ControlError('SY_ERR_CONTROL_BAD_FRAME', `frame body is not JSON: ${(err as Error).message}`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new ControlError('SY_ERR_CONTROL_BAD_FRAME', 'frame body is not a JSON object');
  }
  return value as Record<string, unknown>;
}

function isId(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/** The request id if the body has a usable one, so an error reply can name it. */
export function idOf(obj: Record<string, unknown>): number | null {
  return isId(obj['id']) ? obj['id'] : null;
}

/** Validates a request body. Version is checked first: a newer client gets VERSION, not BAD_FRAME. */
export function parseRequest(obj: Record<string, unknown>): Request {
  const v = obj['v'];
  if (v !== PROTOCOL_VERSION) {
    throw new ControlError(
      'SY_ERR_CONTROL_VERSION',
      `protocol version ${JSON.stringify(v) ?? 'missing'} is not supported (this daemon speaks ${PROTOCOL_VERSION})`,
    );
  }
  if (!isId(obj['id'])) throw new ControlError('SY_ERR_CONTROL_BAD_FRAME', 'request id must be a non-negative integer');
  const method = obj['method'];
  if (typeof method !== 'string' || method.length === 0 || method.length > MAX_METHOD_LENGTH || !/^[a-z][a-z0-9.-]*$/.test(method)) {
    throw new ControlError('SY_ERR_CONTROL_BAD_FRAME', 'method must be a short lower-case name');
  }
  for (const k of Object.keys(obj)) {
    if (k !== 'v' && k !== 'id' && k !== 'method' && k !== 'params') {
      throw new ControlError('SY_ERR_CONTROL_BAD_FRAME', `unknown request field '${k.slice(0, 32)}'`);
    }
  }
  return { v, id: obj['id'], method, params: obj['params'] ?? null };
}

/** Validates a reply body (the client side is as strict as the server). */
export function parseReply(obj: Record<string, unknown>): Reply {
  const v = obj['v'];
  if (v !== PROTOCOL_VERSION) {
    throw new ControlError('SY_ERR_CONTROL_VERSION', `daemon speaks protocol version ${JSON.stringify(v) ?? 'missing'}, this client ${PROTOCOL_VERSION}`);
  }
  const id = obj['id'];
  if (obj['ok'] === true) {
    if (!isId(id)) throw new ControlError('SY_ERR_CONTROL_BAD_FRAME', 'reply id must be a non-negative integer');
    if (obj['more'] !== undefined && obj['more'] !== true) throw new ControlError('SY_ERR_CONTROL_BAD_FRAME', "reply field 'more' must be true when present");
    return obj['more'] === true ? { v, id, ok: true, more: true, result: obj['result'] ?? null } : { v, id, ok: true, result: obj['result'] ?? null };
  }
  if (obj['ok'] === false) {
    const e = obj['error'] as Record<string, unknown> | null | undefined;
    if (!e || typeof e !== 'object' || typeof e['code'] !== 'string' || typeof e['message'] !== 'string') {
      throw new ControlError('SY_ERR_CONTROL_BAD_FRAME', 'error reply lacks code/message');
    }
    if (id !== null && !isId(id)) throw new ControlError('SY_ERR_CONTROL_BAD_FRAME', 'reply id must be an integer or null');
    return { v, id, ok: false, error: { code: e['code'], message: e['message'] } };
  }
  throw new ControlError('SY_ERR_CONTROL_BAD_FRAME', "reply lacks a boolean 'ok'");
}
