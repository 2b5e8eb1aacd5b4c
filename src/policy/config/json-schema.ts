// JSON Schema of config v1, derived from the zod schema (shape and defaults only: the meaning of
// patterns, addresses and egress names is checked by the loader, which editors cannot do).
import { z } from 'zod';
import { configSchema } from './schema.ts';

export function configJsonSchema(): Record<string, unknown> {
  const s = z.toJSONSchema(configSchema, { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
  return {
    ...s,
    $id: 'https://switchyard.invalid/config/schema.json',
    title: 'switchyard config v1',
    description: 'switchyard config (TOML). Every key, its default and why: docs/config.md.',
  };
}
