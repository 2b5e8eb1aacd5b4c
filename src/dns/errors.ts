// The forwarder's error class lives in src/errors.ts (one errors module); re-exported for siblings.
export { DnsError } from '../errors.ts';
