#!/usr/bin/env node
// Production entry: runs the tsc build in dist/. `npm ci` builds it (the `prepare` script).
import { main } from '../dist/cli/main.js';

main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (err) => { process.stderr.write(`switchyard: ${err?.stack ?? err}\n`); process.exitCode = 1; },
);
