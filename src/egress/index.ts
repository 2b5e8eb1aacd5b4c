// Public API of the egress layer.
export { EgressSet, createEgressSet, type EgressSetOptions, type EgressConnection } from './set.ts';
export type { ConnectRequest, Connector } from './connectors.ts';
export type { HealthState, HealthStatus } from './health.ts';
export { Upstream, plainSocketFactory, type SocketFactory, type SocketRequest } from './upstream.ts';
export type { UdpChannel, UdpPeer } from './udp.ts';
export { findDefaultPhysical, InterfaceResolver, DEFAULT_ROOTS, type IfaceRoots } from './iface.ts';
