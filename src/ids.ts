// Fixed identifiers. NEVER CHANGE THESE once released: crash cleanup (`switchyard down` with no
// state file, the early-boot skeleton, a newer version cleaning up after an older one) finds
// leftovers in the kernel and in WFP by exactly these names, numbers and GUIDs.

/** nftables: the one table switchyard owns (family inet covers IPv4 and IPv6). */
export const NFT_TABLE = 'switchyard';
export const NFT_FAMILY = 'inet';

/** cgroup v2: root of switchyard's groups, relative to the unified hierarchy's mount point. */
export const CGROUP_ROOT = 'switchyard';
/** Group whose processes are never redirected (the daemon, supervised egress cores). */
export const CGROUP_EXEMPT = 'exempt';
/** Prefix of per-egress groups: `switchyard/egress-<name>`. */
export const CGROUP_EGRESS_PREFIX = 'egress-';

/**
 * Firewall mark on switchyard's own outgoing sockets (SO_MARK). Chosen in a high bit range that
 * VPN cores (WireGuard's default 0xca6c, sing-box's auto-route marks) do not use; the mask keeps
 * switchyard's bits apart from other software's marks.
 */
export const FWMARK = 0x5359_0000; // "SY"
export const FWMARK_MASK = 0xffff_0000;

/** Windows Filtering Platform: provider and sublayer switchyard owns. */
export const WFP_PROVIDER_GUID = '{6c2f9b1e-53a9-4d4b-9f2e-7377697463a1}';
export const WFP_SUBLAYER_GUID = '{6c2f9b1e-53a9-4d4b-9f2e-7377697463a2}';
export const WFP_PROVIDER_NAME = 'switchyard';
export const WFP_SUBLAYER_NAME = 'switchyard split tunnelling';
/** Sublayer weight: high, so switchyard's block/permit pair is evaluated before most others. */
export const WFP_SUBLAYER_WEIGHT = 0xfff0;

/** Windows NRPT rule key of `switchyard dns system on` (the "." rule pointing at the forwarder). */
export const NRPT_RULE_GUID = '{6c2f9b1e-53a9-4d4b-9f2e-7377697463a3}';

/** Windows named pipe of the control server. */
export const WINDOWS_PIPE_NAME = '\\\\.\\pipe\\switchyard-control';
/** Windows service name. */
export const WINDOWS_SERVICE_NAME = 'switchyard';
/** systemd unit names. */
export const SYSTEMD_UNIT = 'switchyard.service';
export const SYSTEMD_SKELETON_UNIT = 'switchyard-skeleton.service';

/** Unix group whose members may use state-changing control methods. */
export const CONTROL_GROUP = 'switchyard';
/** Control socket file name inside the runtime directory. */
export const CONTROL_SOCKET_NAME = 'control.sock';
