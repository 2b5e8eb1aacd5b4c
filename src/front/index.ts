// Public API of the front door.
export { startMixedInbound, type MixedInbound, type MixedOptions } from './mixed.ts';
export { SessionTable, type SessionHandle } from './sessions.ts';
export { type FrontDeps, type FlowEvent } from './flow.ts';
export { FAILURE_REPLY } from './replies.ts';
