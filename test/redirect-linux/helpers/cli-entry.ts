// Runs the CLI from source (tests): `node --import tsx test/redirect-linux/helpers/cli-entry.ts ARGS`.
import { main } from '../../../src/cli/main.ts';

main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
