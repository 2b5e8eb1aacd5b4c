// Neutral contracts shared by front, dns, egress and the OS backends. The daemon wires concrete
// implementations together; src/front never imports src/redirect.
import type { Socket } from 'node:net';
import type { Decision, Network } from '../policy/types.ts';

export interface Endpoint {
  address: string;
  port: number;
  family: 4 | 6;
}

export interface ProcessInfo {
  pid: number;
  /** Full executable path, when readable. */
  exe?: string;
  /** Base name (e.g. `curl`, `zen.exe`). */
  name?: string;
  uid?: number;
  user?: string;
  /** Windows: the process's user SID (its token's TokenUser), the owner for the control privacy filter. */
  sid?: string;
}

/** What the OS backend knows about a redirected connection. */
export interface IdentifiedFlow {
  origDst: Endpoint;
  /** The egress group, when the listener or NAT entry tells it without a process lookup. */
  group?: string;
  /** Lazy: only called when a rule or a listing needs the process. Cached per flow. */
  process(): Promise<ProcessInfo | undefined>;
}

/** Implemented per OS (src/redirect/<os>) and injected by the daemon. */
export interface FlowIdentity {
  identify(socket: Socket): Promise<IdentifiedFlow>;
  /** Process owning a local TCP socket by its 4-tuple (proxy inbound: who is the client?). */
  processOf?(local: Endpoint, remote: Endpoint): Promise<ProcessInfo | undefined>;
}

// ---------------------------------------------------------------- correlation store

export type StoreState = 'fresh' | 'stale' | 'ambiguous' | 'unknown';

export interface StoreName {
  name: string;
  /** CNAME chain from the asked name to the address, asked name first. */
  chain: string[];
  expiresAt: number;
  upstream: string;
  firstSeen: number;
  lastSeen: number;
  stale: boolean;
}

export interface StoreLookup {
  /** Newest first. */
  names: StoreName[];
  state: StoreState;
}

export interface CorrelationLookup {
  lookup(ip: string): StoreLookup;
}

/** One address learned from a DNS answer, handed to the OS backend before the answer leaves. */
export interface Binding {
  ip: string;
  family: 4 | 6;
  name: string;
  /** Egresses the name can take (from projectDomain). */
  egresses: string[];
  ttlSeconds: number;
  /** TTL plus grace, in seconds: how long the OS set entry should live. */
  holdSeconds: number;
}

export type BindingHook = (batch: Binding[]) => Promise<void>;

/** Resolves names for a given egress (through it when it is a proxy), never via the OS resolver. */
export interface EgressResolver {
  resolve(name: string, egress: string, family?: 4 | 6): Promise<string[]>;
}

// ---------------------------------------------------------------- flows

export type DomainSource = 'sni' | 'http-host' | 'socks' | 'http-proxy' | 'dns' | 'dns-ambiguous' | 'none';

export interface FlowRecord {
  id: string;
  inbound: 'socks5' | 'http' | 'transparent';
  network: Network;
  client: Endpoint;
  dst: Endpoint | { host: string; port: number };
  domain: string | null;
  domainSource: DomainSource;
  process: ProcessInfo | null;
  decision: Decision;
  egress: string;
  bytesUp: number;
  bytesDown: number;
  startedAt: number;
}
