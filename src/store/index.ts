// Public surface of the policy store (issue 8 foundations): revisions, integrity, audit, diff,
// risk and atomic activation. The daemon and CLI wire these to control methods.
export { PolicyStore, sourceSha256, type Revision, type RevisionState, type RevisionEntry, type Provenance, type Channel, type Alert, type AlertKind } from './store.ts';
export { loadOrCreateKey, HmacKey, KEY_FILE } from './key.ts';
export { canonicalJson, contentHash, sha256Hex } from './canonical.ts';
export { verifyAuditText, type AuditEvent, type AuditVerification, type Actor } from './audit.ts';
export { diffConfigs, describeDiff, entriesOf, type ConfigDiff, type Entry } from './diff.ts';
export { classifyRisk, activatesAtOnce, FEW_NAMES, MASS_CHANGE, type RiskAssessment, type RiskLevel } from './risk.ts';
export { activate, APPLY_POINTS, type ApplySteps, type ApplyPoint } from './apply.ts';
