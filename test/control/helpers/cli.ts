// Runs the CLI from source for test/control tests (they spawn it instead of bin/switchyard.js, which needs a build).
import { main } from '../../../src/cli/main.ts';

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`switchyard: ${String(err)}\n`);
    process.exitCode = 1;
  },
);
