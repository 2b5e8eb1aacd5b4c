// Checking the params of control methods: each failure is SY_ERR_CONTROL_BAD_PARAMS naming the field.
import { ControlError } from '../errors.ts';

export function bad(message: string): never {
  throw new ControlError('SY_ERR_CONTROL_BAD_PARAMS', message);
}

export function obj(params: unknown): Record<string, unknown> {
  if (params === null || params === undefined) return {};
  if (typeof params !== 'object' || Array.isArray(params)) bad('params must be an object');
  return params as Record<string, unknown>;
}

export function optString(p: Record<string, unknown>, k: string, max = 1024): string | undefined {
  const v = p[k];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string' || v.length === 0 || v.length > max) bad(`${k} must be a non-empty string of at most ${max} characters`);
  return v;
}

export function optRevision(p: Record<string, unknown>): number | undefined {
  const v = p['revision'];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) bad('revision must be a positive integer');
  return v;
}

export function reqRevision(p: Record<string, unknown>): number {
  const n = optRevision(p);
  if (n === undefined) bad('revision is required');
  return n;
}
