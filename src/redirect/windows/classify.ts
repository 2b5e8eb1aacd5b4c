// Which new TCP connections the reflector sends to a transparent listener. Pure, with the process and
// DNS lookups injected. Same selection as on Linux: a connection is reflected when its app is selected
// (the policy gives it a non-direct egress for this destination), when its destination was captured
// from DNS for a non-direct name, or always in mode "all"; it passes when the app is exempt (or is the
// daemon) and otherwise. The front door makes the final decision with the sniffed name — this only
// decides who gets there. Blocks at SYN time come from `block` rules that need no name.
//
// Without a PID (the SOCKET event never came and the TCP table did not know the socket either) the
// app cannot be told apart, so: a captured destination is reflected (its group is known without the
// app), and otherwise the SYN is blocked if any app could be selected (mode "all", or rules that name
// apps) — fail closed; TCP retransmits the SYN within seconds, by when the event is normally there —
// and passes when nothing could select it.
import type { Config, Policy } from '../../policy/types.ts';
import type { FlowTuple } from './pending.ts';
import type { Verdict } from './reflector.ts';

export interface ClassifierDeps {
  policy: Policy;
  ownPid: number;
  /** PIDs never reflected besides our own (supervised egress cores). */
  exemptPids: () => ReadonlySet<number>;
  /** Image path of a PID (QueryFullProcessImageNameW), undefined when unknown. Cache it. */
  imagePath: (pid: number) => string | undefined;
  /** Egress group of a destination captured from DNS (a non-direct name), if any. */
  capturedGroup: (ip: string) => string | undefined;
}

function baseName(p: string): string {
  return p.slice(Math.max(p.lastIndexOf('\\'), p.lastIndexOf('/')) + 1).toLowerCase();
}

/** True when some rule selects apps for a non-direct egress (so an unknown app might be selected). */
export function anyAppSelection(config: Config): boolean {
  return config.rules.some((r) => r.apps.length > 0 && r.egress !== 'direct' && config.egress[r.egress]?.type !== 'direct');
}

export function makeClassifier(d: ClassifierDeps): (pid: number | undefined, t: FlowTuple) => Verdict {
  const config = d.policy.config;
  const mightSelectUnknown = config.enforce.mode === 'all' || anyAppSelection(config);
  const isBlock = (egress: string) => egress === 'block' || config.egress[egress]?.type === 'block';
  const isDirect = (egress: string) => egress === 'direct' || config.egress[egress]?.type === 'direct';

  return (pid, t) => {
    if (pid !== undefined && (pid === d.ownPid || d.exemptPids().has(pid))) return { action: 'pass' };
    const captured = d.capturedGroup(t.remoteAddress);
    if (pid === undefined) {
      if (captured !== undefined) return { action: 'reflect', group: captured };
      return mightSelectUnknown ? { action: 'block' } : { action: 'pass' };
    }
    const exe = d.imagePath(pid);
    const decision = d.policy.decide({
      network: 'tcp',
      ...(exe ? { exe, process: baseName(exe) } : {}),
      ip: t.remoteAddress,
      port: t.remotePort,
    });
    if (decision.stage === 'exempt' || decision.stage === 'lan') return { action: 'pass' };
    if (isBlock(decision.egress) && decision.stage !== 'domain') return { action: 'block' };
    if (captured !== undefined) return { action: 'reflect', group: captured };
    if (!isDirect(decision.egress)) return { action: 'reflect', group: decision.egress };
    if (config.enforce.mode === 'all') return { action: 'reflect', group: decision.egress };
    return { action: 'pass' };
  };
}
