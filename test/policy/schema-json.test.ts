// config/schema.json (for editors) is generated from the zod schema; this keeps it current and
// checks, with a small independent JSON Schema validator, that both accept and reject the same
// sample configs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { parse } from 'smol-toml';
import { configJsonSchema } from '../../src/policy/config/json-schema.ts';
import { configSchema } from '../../src/policy/config/schema.ts';
import { randomConfigToml, randomRule, Rng } from './random.ts';

const schema = JSON.parse(readFileSync(new URL('../../config/schema.json', import.meta.url), 'utf8'));

type S = Record<string, unknown>;

/** The JSON Schema keywords config/schema.json uses (test asserts there are no others). */
const KNOWN = new Set(['$schema', '$id', 'title', 'description', 'default', 'type', 'properties', 'required', 'additionalProperties', 'propertyNames', 'items', 'enum', 'const', 'anyOf', 'minimum', 'maximum', 'minLength', 'maxLength']);

function typeOf(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  return typeof v;
}

function valid(s: S, v: unknown): boolean {
  if (s.type !== undefined) {
    const t = typeOf(v);
    if (!(s.type === t || (s.type === 'number' && t === 'integer'))) return false;
  }
  if (s.const !== undefined && v !== s.const) return false;
  if (Array.isArray(s.enum) && !s.enum.includes(v)) return false;
  if (Array.isArray(s.anyOf) && !s.anyOf.some((x) => valid(x as S, v))) return false;
  if (typeof v === 'number') {
    if (typeof s.minimum === 'number' && v < s.minimum) return false;
    if (typeof s.maximum === 'number' && v > s.maximum) return false;
  }
  if (typeof v === 'string') {
    if (typeof s.minLength === 'number' && [...v].length < s.minLength) return false;
    if (typeof s.maxLength === 'number' && [...v].length > s.maxLength) return false;
  }
  if (Array.isArray(v) && s.items && !v.every((x) => valid(s.items as S, x))) return false;
  if (typeOf(v) === 'object') {
    const o = v as Record<string, unknown>;
    const props = (s.properties ?? {}) as Record<string, S>;
    for (const r of (s.required ?? []) as string[]) if (!(r in o)) return false;
    for (const [k, x] of Object.entries(o)) {
      if (s.propertyNames && !valid(s.propertyNames as S, k)) return false;
      if (k in props) { if (!valid(props[k]!, x)) return false; }
      else if (s.additionalProperties === false) return false;
      else if (typeof s.additionalProperties === 'object' && !valid(s.additionalProperties as S, x)) return false;
    }
  }
  return true;
}

test('config/schema.json is current (node --import tsx tools/gen-config-schema.ts)', () => {
  assert.deepEqual(schema, JSON.parse(JSON.stringify(configJsonSchema())));
});

test('it uses only keywords the checker below understands', () => {
  const walk = (s: unknown, inProps: boolean): void => {
    if (Array.isArray(s)) return s.forEach((x) => walk(x, false));
    if (typeof s !== 'object' || s === null) return;
    for (const [k, v] of Object.entries(s)) {
      if (!inProps) assert.ok(KNOWN.has(k), `unknown keyword ${k}`);
      if (!inProps && (k === 'default' || k === 'const' || k === 'enum')) continue; // values, not schemas
      walk(v, !inProps && (k === 'properties'));
    }
  };
  walk(schema, false);
});

test('JSON Schema and zod agree on sample configs', () => {
  const samples: [string, string][] = [
    ['default.toml', readFileSync(new URL('../../config/default.toml', import.meta.url), 'utf8')],
    ['full.toml', readFileSync(new URL('./fixtures/full.toml', import.meta.url), 'utf8')],
    ['unknown top key', 'version = 1\ncolour = 1\n'],
    ['unknown nested key', 'version = 1\n[dns.cache]\nmaxttl = 1\n'],
    ['wrong type', 'version = 1\n[dns]\ntimeout_ms = "5s"\n'],
    ['bad enum', 'version = 1\n[enforce]\nlan = "maybe"\n'],
    ['bad egress type', 'version = 1\n[egress.x]\ntype = "wireguard"\n'],
    ['missing version', 'default = "direct"\n'],
    ['version 2', 'version = 2\n'],
    ['rule without egress', 'version = 1\n[[rule]]\ndomains = ["a.com"]\n'],
    ['port out of range', 'version = 1\n[[rule]]\negress = "direct"\nports = [70000]\n'],
    ['float timeout', 'version = 1\n[inbound]\nidle_timeout_ms = 1.5\n'],
    ['mixed off', 'version = 1\n[inbound]\nmixed = false\n'],
    ['mixed true', 'version = 1\n[inbound]\nmixed = true\n'],
    ['empty rule name', 'version = 1\n[[rule]]\nname = ""\negress = "direct"\nports = [1]\n'],
  ];
  const r = new Rng(7);
  for (let i = 0; i < 50; i++) samples.push([`random ${i}`, randomConfigToml(r, Array.from({ length: 5 }, (_, k) => randomRule(r, `r${k}`)))]);
  let accepted = 0;
  for (const [name, text] of samples) {
    const doc = parse(text);
    const z = configSchema.safeParse(doc).success;
    assert.equal(valid(schema, doc), z, `${name}: zod says ${z}`);
    if (z) accepted++;
  }
  assert.ok(accepted >= 50 && accepted < samples.length, 'both outcomes are exercised');
});
