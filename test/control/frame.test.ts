// Framing and strict parsing of control messages: round trips, and hostile bytes that must end
// in a named ControlError, never another exception.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  FrameDecoder,
  MAX_BODY_BYTES,
  MAX_DEPTH,
  PROTOCOL_VERSION,
  encodeFrame,
  jsonDepth,
  parseBody,
  parseReply,
  parseRequest,
} from '../../src/control/frame.ts';
import { ControlError } from '../../src/errors.ts';

function header(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n, 0);
  return b;
}

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ControlError, `expected ControlError, got ${String(err)}`);
    return err.code;
  }
  return 'no error';
}

function roundTrip(msg: unknown, chunk: number): unknown[] {
  const frame = encodeFrame(msg);
  const d = new FrameDecoder();
  const out: unknown[] = [];
  for (let i = 0; i < frame.length; i += chunk) for (const b of d.push(frame.subarray(i, i + chunk))) out.push(parseBody(b));
  assert.equal(d.pending, 0);
  return out;
}

test('request and replies round-trip, whole and byte by byte', () => {
  const req = { v: PROTOCOL_VERSION, id: 7, method: 'status', params: { watch: true, names: ['a', 'ü', '🙂'] } };
  const ok = { v: PROTOCOL_VERSION, id: 7, ok: true, result: { uptime: 12.5, list: [1, null, 'x'] } };
  const bad = { v: PROTOCOL_VERSION, id: null, ok: false, error: { code: 'SY_ERR_CONTROL_BAD_FRAME', message: 'm' } };
  for (const chunk of [1, 3, 1 << 20]) {
    assert.deepEqual(roundTrip(req, chunk), [req]);
    assert.deepEqual(parseRequest(roundTrip(req, chunk)[0] as Record<string, unknown>), req);
    assert.deepEqual(parseReply(roundTrip(ok, chunk)[0] as Record<string, unknown>), ok);
    assert.deepEqual(parseReply(roundTrip(bad, chunk)[0] as Record<string, unknown>), bad);
  }
});

test('several frames in one chunk come out in order', () => {
  const msgs = [1, 2, 3].map((id) => ({ v: 1, id, method: 'ping', params: null }));
  const d = new FrameDecoder();
  const got = d.push(Buffer.concat(msgs.map(encodeFrame))).map(parseBody);
  assert.deepEqual(got, msgs);
});

test('an announced length over 1 MiB is refused before any body is buffered', () => {
  const d = new FrameDecoder();
  assert.equal(code(() => d.push(header(MAX_BODY_BYTES + 1))), 'SY_ERR_CONTROL_TOO_LARGE');
  assert.equal(code(() => new FrameDecoder().push(header(0xffffffff))), 'SY_ERR_CONTROL_TOO_LARGE');
  // Exactly the limit is allowed (decoder side).
  const body = Buffer.alloc(MAX_BODY_BYTES, 0x20);
  assert.equal(new FrameDecoder().push(Buffer.concat([header(MAX_BODY_BYTES), body])).length, 1);
});

test('encodeFrame refuses a body over the limit', () => {
  assert.equal(code(() => encodeFrame({ s: 'x'.repeat(MAX_BODY_BYTES) })), 'SY_ERR_CONTROL_TOO_LARGE');
});

test('a truncated frame stays pending and yields nothing', () => {
  const frame = encodeFrame({ v: 1, id: 1, method: 'ping' });
  const d = new FrameDecoder();
  assert.deepEqual(d.push(frame.subarray(0, frame.length - 1)), []);
  assert.equal(d.pending, frame.length - 1);
  const h = new FrameDecoder();
  assert.deepEqual(h.push(header(1).subarray(0, 2)), []);
  assert.equal(h.pending, 2);
});

test('hostile bodies each get their own code', () => {
  const cases: [string, Buffer, string][] = [
    ['empty', Buffer.alloc(0), 'SY_ERR_CONTROL_BAD_FRAME'],
    ['invalid UTF-8', Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), 'SY_ERR_CONTROL_BAD_FRAME'],
    ['overlong UTF-8', Buffer.from([0x22, 0xc0, 0xaf, 0x22]), 'SY_ERR_CONTROL_BAD_FRAME'],
    ['not JSON', Buffer.from('hello'), 'SY_ERR_CONTROL_BAD_FRAME'],
    ['JSON array', Buffer.from('[1,2]'), 'SY_ERR_CONTROL_BAD_FRAME'],
    ['JSON string', Buffer.from('"x"'), 'SY_ERR_CONTROL_BAD_FRAME'],
    ['JSON null', Buffer.from('null'), 'SY_ERR_CONTROL_BAD_FRAME'],
    ['deep nesting', Buffer.from('['.repeat(100_000) + ']'.repeat(100_000)), 'SY_ERR_CONTROL_BAD_FRAME'],
    ['deep objects', Buffer.from('{"a":'.repeat(MAX_DEPTH + 1) + '1' + '}'.repeat(MAX_DEPTH + 1)), 'SY_ERR_CONTROL_BAD_FRAME'],
  ];
  for (const [name, body, want] of cases) assert.equal(code(() => parseBody(body)), want, name);
  // Brackets inside strings do not count as nesting.
  assert.equal(jsonDepth(JSON.stringify({ s: '[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["' }), MAX_DEPTH), 1);
  assert.equal(jsonDepth('{"a":"\\"[[["}', MAX_DEPTH), 1);
  const atLimit = '['.repeat(MAX_DEPTH) + ']'.repeat(MAX_DEPTH);
  assert.doesNotThrow(() => parseBody(Buffer.from(`{"x":${atLimit.slice(1, -1)}}`)));
});

test('request shape: version first, then id, method and fields', () => {
  const cases: [unknown, string][] = [
    [{ v: 2, id: 1, method: 'ping' }, 'SY_ERR_CONTROL_VERSION'],
    [{ id: 1, method: 'ping' }, 'SY_ERR_CONTROL_VERSION'],
    [{ v: '1', id: 1, method: 'ping' }, 'SY_ERR_CONTROL_VERSION'],
    [{ v: 2, id: 'x', method: 7 }, 'SY_ERR_CONTROL_VERSION'],
    [{ v: 1, id: -1, method: 'ping' }, 'SY_ERR_CONTROL_BAD_FRAME'],
    [{ v: 1, id: 1.5, method: 'ping' }, 'SY_ERR_CONTROL_BAD_FRAME'],
    [{ v: 1, id: 2 ** 60, method: 'ping' }, 'SY_ERR_CONTROL_BAD_FRAME'],
    [{ v: 1, id: 1 }, 'SY_ERR_CONTROL_BAD_FRAME'],
    [{ v: 1, id: 1, method: '' }, 'SY_ERR_CONTROL_BAD_FRAME'],
    [{ v: 1, id: 1, method: 'Ping' }, 'SY_ERR_CONTROL_BAD_FRAME'],
    [{ v: 1, id: 1, method: 'a'.repeat(65) }, 'SY_ERR_CONTROL_BAD_FRAME'],
    [{ v: 1, id: 1, method: 'ping', extra: 1 }, 'SY_ERR_CONTROL_BAD_FRAME'],
    [JSON.parse('{"v":1,"id":1,"method":"ping","__proto__":{"x":1}}'), 'SY_ERR_CONTROL_BAD_FRAME'],
  ];
  for (const [obj, want] of cases) assert.equal(code(() => parseRequest(obj as Record<string, unknown>)), want, JSON.stringify(obj));
  assert.deepEqual(parseRequest({ v: 1, id: 0, method: 'cache.flush' }), { v: 1, id: 0, method: 'cache.flush', params: null });
});

test('reply shape is checked as strictly on the client side', () => {
  assert.equal(code(() => parseReply({ v: 2, id: 1, ok: true })), 'SY_ERR_CONTROL_VERSION');
  assert.equal(code(() => parseReply({ v: 1, id: 1 })), 'SY_ERR_CONTROL_BAD_FRAME');
  assert.equal(code(() => parseReply({ v: 1, id: 1, ok: false, error: 'x' })), 'SY_ERR_CONTROL_BAD_FRAME');
  assert.equal(code(() => parseReply({ v: 1, id: null, ok: true, result: 1 })), 'SY_ERR_CONTROL_BAD_FRAME');
});

test('random bytes never escape as anything but a ControlError', () => {
  const n = 3000;
  for (let i = 0; i < n; i++) {
    const d = new FrameDecoder(4096);
    const bytes = randomBytes(1 + (i % 300));
    // Half the cases get a plausible small header so the body parser sees garbage too.
    if (i % 2 === 0 && bytes.length >= 4) bytes.writeUInt32BE(bytes.length - 4, 0);
    try {
      for (const body of d.push(bytes)) parseRequest(parseBody(body));
    } catch (err) {
      assert.ok(err instanceof ControlError, String(err));
    }
  }
});
