// Runs the real CLI dispatcher (src/cli/main.ts) as a process, the way bin/switchyard.js runs the
// build. Used by test/policy/cli.test.ts through `node --import tsx`.
import { main } from '../../src/cli/main.ts';

process.exitCode = await main(process.argv.slice(2));
