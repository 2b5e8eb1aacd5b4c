// Public surface of the control IPC: the daemon builds a MethodRegistry, passes it to a
// ControlServer with an identity reader; the CLI uses callDaemon/ControlClient.
export { ControlServer, socketAccess, type ControlServerOptions } from './server.ts';
export { ControlClient, callDaemon, remoteError, type ClientOptions } from './client.ts';
export { MethodRegistry, ownedBy, type MethodSpec, type PermissionClass, type Privacy, type CallContext } from './registry.ts';
export { classifyCaller, type Caller, type PeerIdentity, type AccessPolicy } from './auth.ts';
export { PROTOCOL_VERSION, MAX_BODY_BYTES, MAX_DEPTH } from './frame.ts';
export { isPipeEndpoint } from './endpoint.ts';
