// Regenerates config/schema.json (JSON Schema for editors) from the zod schema of config v1, so
// the two cannot drift; test/policy/schema-json.test.ts fails when the file is stale. Run:
//   node --import tsx tools/gen-config-schema.ts
import { writeFileSync } from 'node:fs';
import { configJsonSchema } from '../src/policy/config/json-schema.ts';

writeFileSync(new URL('../config/schema.json', import.meta.url), JSON.stringify(configJsonSchema(), null, 2) + '\n');
