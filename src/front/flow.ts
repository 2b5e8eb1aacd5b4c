// What every inbound does once it knows a destination: ask the policy, connect through the
// chosen egress (health and fallback are the egress set's job), and on success start the relay
// and record the session. Inbounds differ only in how they learn the destination and how they
// tell the client the outcome.
import net from 'node:net';
import type { Config, Decision, FlowQuery, InboundConfig, Network, Policy } from '../policy/types.ts';
import type { CorrelationLookup, DomainSource, Endpoint, FlowIdentity, FlowRecord, ProcessInfo } from '../flow/types.ts';
import type { EgressSet, EgressConnection } from '../egress/set.ts';
import type { CancelSignal } from '../egress/cancel.ts';
import { EgressError } from '../errors.ts';
import { isLanAddress, parseIp } from '../policy/ip.ts';
import { Relay } from './relay.ts';
import type { SessionHandle, SessionTable } from './sessions.ts';

export interface FrontDeps {
  policy: Policy;
  egress: EgressSet;
  sessions: SessionTable;
  inbound: InboundConfig;
  store?: CorrelationLookup;
  identity?: FlowIdentity;
  /** Called for every flow decided (connected or refused); for logs and tests. */
  onFlow?: (e: FlowEvent) => void;
}

export interface FlowEvent {
  record: FlowRecord;
  outcome: 'connected' | 'refused';
  error?: string;
}

export interface FlowRequest {
  inbound: FlowRecord['inbound'];
  network: Network;
  client: Endpoint;
  ip?: string;
  domain?: string;
  domainSource: DomainSource;
  /** May a proxy egress be sent the name (client-given, or sniffed and consistent)? */
  domainTrusted: boolean;
  port: number;
  group?: string;
  /** Lazy process lookup; called only when the config has app rules. */
  process?: () => Promise<ProcessInfo | undefined>;
}

const needsProcessCache = new WeakMap<Config, boolean>();

/** True when some rule or exempt entry matches on the program (not only on the OS group). */
export function configNeedsProcess(config: Config): boolean {
  let v = needsProcessCache.get(config);
  if (v === undefined) {
    const appPattern = (a: { kind: string }) => a.kind !== 'group';
    v = config.rules.some((r) => r.apps.some(appPattern)) || config.exempt.some((e) => e.apps.some(appPattern) || e.users.length > 0);
    needsProcessCache.set(config, v);
  }
  return v;
}

export function endpointOf(address: string | undefined, port: number | undefined): Endpoint {
  const raw = address ?? '';
  const a = raw.startsWith('::ffff:') ? raw.replace(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/, '$1') : raw;
  return { address: a, port: port ?? 0, family: net.isIP(a) === 6 ? 6 : 4 };
}

/** RFC 6761: `localhost` and names under it are loopback, whatever a resolver says. */
export function isLocalhostName(name: string): boolean {
  return name === 'localhost' || name.endsWith('.localhost');
}

export function isLoopbackIp(ip: string): boolean {
  return net.isIP(ip) === 4 ? ip.startsWith('127.') : ip === '::1' || /^::ffff:127\./.test(ip);
}

export interface Decided {
  record: FlowRecord;
  connection: EgressConnection;
  /** The lazy process lookup, for listings when the decision did not need it. */
  lookupProcess?: () => Promise<ProcessInfo | undefined>;
}

/** The pseudo-rule a name re-checked against `[enforce] lan` is reported under. */
const LAN_RULE = { id: 'enforce.lan', index: -1, origin: {} };

/** The first LAN/loopback address `name` resolves to for `egress`, if any (failures: none). */
export async function lanAddressOf(deps: FrontDeps, name: string, egress: string): Promise<string | undefined> {
  let list: string[];
  try {
    list = await deps.egress.resolver.resolve(name, egress);
  } catch {
    return undefined; // unresolvable here: the egress resolves it (or fails) as before
  }
  for (const a of list) {
    const p = parseIp(a);
    if (p && isLanAddress(p)) return a;
  }
  return undefined;
}

/** Decides and connects. Rejects with EgressError (refused/failed) after reporting the flow. */
export async function decideAndConnect(deps: FrontDeps, req: FlowRequest, signal?: CancelSignal): Promise<Decided> {
  let ip = req.ip;
  let domain = req.domain;
  if (domain && isLocalhostName(domain) && !ip) {
    ip = '127.0.0.1';
    domain = undefined;
  }
  let proc: ProcessInfo | undefined;
  if (req.process && configNeedsProcess(deps.policy.config)) proc = await req.process().catch(() => undefined);
  const q: FlowQuery = { network: req.network, port: req.port };
  if (domain) q.domain = domain;
  if (ip) q.ip = ip;
  if (req.group) q.group = req.group;
  if (proc?.name) q.process = proc.name;
  if (proc?.exe) q.exe = proc.exe;
  if (proc?.user) q.user = proc.user;
  let decision: Decision;
  try {
    decision = deps.policy.decide(q);
  } catch (err) {
    decision = { egress: 'block', stage: 'default', rule: null, matched: [] };
    void err;
  }
  let egressName = decision.egress;
  // Loopback never leaves through a remote proxy: it would reach the proxy host's own loopback.
  const cfg = deps.egress.config(egressName);
  if (ip && isLoopbackIp(ip) && (cfg?.type === 'socks5' || cfg?.type === 'http')) egressName = 'direct';
  // A destination given only by name was decided without its address, so the policy's lan stage
  // could not see it. With `[enforce] lan = "direct"`, resolve the name (for the chosen egress,
  // through src/dns) and keep a LAN/loopback answer off proxies and interfaces: it goes direct.
  if (!ip && domain && (cfg?.type === 'socks5' || cfg?.type === 'http' || cfg?.type === 'interface') && deps.policy.config.enforce.lan === 'direct') {
    const lanIp = await lanAddressOf(deps, domain, egressName);
    if (lanIp) {
      ip = lanIp;
      egressName = 'direct';
      decision = { egress: 'direct', stage: 'lan', rule: LAN_RULE, matched: decision.matched };
    }
  }
  const record: FlowRecord = {
    id: '',
    inbound: req.inbound,
    network: req.network,
    client: req.client,
    dst: ip ? { address: ip, port: req.port, family: net.isIP(ip) === 6 ? 6 : 4 } : { host: domain ?? '', port: req.port },
    domain: domain ?? null,
    domainSource: domain ? req.domainSource : 'none',
    process: proc ?? null,
    decision,
    egress: egressName,
    bytesUp: 0,
    bytesDown: 0,
    startedAt: Date.now(),
  };
  try {
    const connectReq = { port: req.port, domainTrusted: req.domainTrusted, ...(ip ? { ip } : {}), ...(domain ? { domain } : {}) };
    const connection = await deps.egress.connect(egressName, connectReq, signal);
    record.egress = connection.egress;
    return { record, connection, ...(req.process ? { lookupProcess: req.process } : {}) };
  } catch (err) {
    deps.onFlow?.({ record, outcome: 'refused', error: err instanceof Error ? err.message : String(err) });
    if (err instanceof EgressError) throw err;
    throw new EgressError('SY_ERR_EGRESS_CONNECT', 'host-unreachable', egressName, (err as Error).message, { cause: err });
  }
}

/** Starts relaying a decided flow and ties it to its session slot. */
export function startRelay(deps: FrontDeps, session: SessionHandle, client: net.Socket, d: Decided, initialUp: Buffer[] = [], clientEnded = false): Relay {
  d.record.id = session.id;
  const relay = new Relay(client, d.connection.upstream, { idleTimeoutMs: deps.inbound.idleTimeoutMs, initialUp, clientEnded });
  session.record = d.record;
  session.counters = relay;
  if (d.lookupProcess) session.lookupProcess = d.lookupProcess;
  session.close = () => relay.close('closed');
  deps.onFlow?.({ record: d.record, outcome: 'connected' });
  void relay.done.then(() => deps.sessions.release(session.id));
  return relay;
}
