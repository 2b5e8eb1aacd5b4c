// Public API of the front door. The daemon builds FrontDeps (policy, egress set, session table,
// inbound config, and the injected store and FlowIdentity) and starts the inbounds:
//   const sessions = new SessionTable({ maxSessions: config.inbound.maxSessions });
//   const deps = { policy, egress: createEgressSet({...}), sessions, inbound: config.inbound, store, identity };
//   const mixed = await startMixedInbound(deps);
//   const transparent = await startTransparentInbounds(deps, { groups: ['vpn', 'dpi'] });
export { startMixedInbound, allowed as isAllowedClient, type MixedInbound, type MixedOptions } from './mixed.ts';
export { startTransparentInbounds, type TransparentInbounds, type TransparentListener, type TransparentOptions } from './transparent.ts';
export { SessionTable, type SessionHandle, type SessionTableOptions } from './sessions.ts';
export { configNeedsProcess, type FrontDeps, type FlowEvent, type FlowRequest } from './flow.ts';
export { domainOfFlow, type FlowDomain } from './domain.ts';
export { classify as classifyFirstBytes, sniff, type SniffResult, type Sniffed } from './sniff.ts';
export { FAILURE_REPLY, socksReplyFor, httpStatusFor } from './replies.ts';
export { Relay, type RelayEnd } from './relay.ts';
