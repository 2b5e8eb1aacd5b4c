// Regenerates src/policy/config/default-toml.ts from config/default.toml, so the default is
// embedded in the build (src/policy does no I/O). test/policy/default-config.test.ts fails when the
// two differ: run `node --import tsx tools/gen-default-config.ts` after editing config/default.toml.
import { readFileSync, writeFileSync } from 'node:fs';

const text = readFileSync(new URL('../config/default.toml', import.meta.url), 'utf8');
const out =
  '// Generated from config/default.toml by tools/gen-default-config.ts — edit that file, then rerun.\n' +
  `export const DEFAULT_CONFIG_TOML = ${JSON.stringify(text)};\n`;
writeFileSync(new URL('../src/policy/config/default-toml.ts', import.meta.url), out);
