// The switchyard relay under benchmark: the mixed inbound with every flow on the `direct` egress,
// in its own process (the bench pins it to one core). Prints its port, then serves until killed.
import { createEgressSet } from '../src/egress/set.ts';
import { SessionTable } from '../src/front/sessions.ts';
import { startMixedInbound } from '../src/front/mixed.ts';
import { testConfig, fnPolicy, staticResolver } from '../test/front/helpers.ts';

const cfg = testConfig([], { maxSessions: 100_000, idleTimeoutMs: 60_000 });
const deps = {
  policy: fnPolicy(cfg, () => 'direct'),
  egress: createEgressSet({ egresses: cfg.egress, resolver: staticResolver({}) }),
  sessions: new SessionTable({ maxSessions: cfg.inbound.maxSessions }),
  inbound: cfg.inbound,
};
const mixed = await startMixedInbound(deps, { listen: { host: '127.0.0.1', port: 0 } });
process.stdout.write(`${mixed.address.port}\n`);
process.on('SIGINT', () => process.exit(0));
