// The switchyard relay under benchmark: the mixed inbound with every flow on the `direct` egress,
// in its own process (the bench pins it to one core). Prints its port, then serves until killed.
// SY_RELAY_FROM=dist runs the tsc build (dist/, from `npm run build`) — the code `npm start`
// runs — instead of the sources through tsx; only this small wrapper is loaded by tsx then.
import { testConfig, fnPolicy, staticResolver } from '../test/front/helpers.ts';
import type * as SetMod from '../src/egress/set.ts';
import type * as SessionsMod from '../src/front/sessions.ts';
import type * as MixedMod from '../src/front/mixed.ts';

// SY_RELAY_DIST names another build folder (e.g. a copy of dist/ from before a change, for A/B runs).
const fromDist = process.env.SY_RELAY_FROM === 'dist';
const distDir = process.env.SY_RELAY_DIST ?? 'dist';
const mod = (p: string) => new URL(fromDist ? `../${distDir}/${p}.js` : `../src/${p}.ts`, import.meta.url).href;
const { createEgressSet } = (await import(mod('egress/set'))) as typeof SetMod;
const { SessionTable } = (await import(mod('front/sessions'))) as typeof SessionsMod;
const { startMixedInbound } = (await import(mod('front/mixed'))) as typeof MixedMod;

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
