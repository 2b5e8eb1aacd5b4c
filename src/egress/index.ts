// Public API of the egress layer. Outgoing sockets come from the injected SocketFactory (Linux:
// exemptSocketFactory(FWMARK) from src/sys/linux/socket.ts, chosen in src/redirect/index.ts);
// names are resolved through the injected EgressResolver, never the OS resolver.
export { EgressSet, createEgressSet, type EgressSetOptions, type EgressConnection } from './set.ts';
export type { ConnectRequest, Connector } from './connectors.ts';
export type { HealthState, HealthStatus } from './health.ts';
export { Upstream, plainSocketFactory, recycleChunk, type SocketFactory, type SocketRequest } from './upstream.ts';
export type { UdpChannel, UdpPeer } from './udp.ts';
export { findDefaultPhysical, InterfaceResolver, DEFAULT_ROOTS, type IfaceRoots } from './iface.ts';
