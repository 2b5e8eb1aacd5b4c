// The normalised form every list parser produces and every exporter consumes. One entry is one
// rule's worth of conditions, ANDed: at most one destination (a domain pattern or a CIDR), any
// apps (ORed), any ports (ORed), an optional network. A source rule that ORs several destinations
// (a sing-box rule with five domain_suffix values) becomes five entries with the same apps/ports:
// (a|b)&p == (a&p)|(b&p). That keeps one entry = one RuleConfig = one {list, line} for `explain`.
import type { AppPattern, Cidr, DomainPattern, Network, PortRange } from '../policy/types.ts';

export const LIST_FORMATS = ['plain', 'v2fly', 'singbox', 'clash-domain', 'clash-ipcidr', 'clash-classical', 'netrulerouter'] as const;
export type ListFormat = (typeof LIST_FORMATS)[number];

export function isListFormat(s: string): s is ListFormat {
  return (LIST_FORMATS as readonly string[]).includes(s);
}

export interface ListEntry {
  /** 1-based line of the entry in its source text. */
  line: number;
  /** The v2fly list an include pulled this entry from; absent for the list's own file. */
  source?: string;
  domain?: DomainPattern;
  cidr?: Cidr;
  apps?: AppPattern[];
  ports?: PortRange[];
  network?: Network;
  /** v2fly attributes (without `@`). */
  attrs?: string[];
  /** NetRuleRouter `+block`: this entry blocks instead of taking the list's egress. */
  block?: true;
  /** NetRuleRouter `--- Windows` / `--- Linux` section the app entry came from. */
  platform?: 'windows' | 'linux';
}

/** An entry a parser did not load because `unsupported = "skip"` was set. */
export interface SkippedEntry {
  line: number;
  source?: string;
  reason: string;
}

export interface ParsedList {
  format: ListFormat;
  entries: ListEntry[];
  skipped: SkippedEntry[];
  /** NetRuleRouter `#` lines that hold a valid entry: disabled rules, not loaded. */
  disabled: number;
  /** Things worth telling the user that are not errors (e.g. host bits cleared in a CIDR). */
  notices: string[];
}

export interface ListLimits {
  /** Bytes of one list file (each v2fly include counts on its own). */
  maxBytes: number;
  /** Characters of one line. */
  maxLineLength: number;
  /** Entries of one list, includes resolved. */
  maxEntries: number;
  /** v2fly include nesting. */
  maxIncludeDepth: number;
  /** Distinct v2fly files one list may pull in. */
  maxIncludeFiles: number;
  /** JSON nesting (sing-box). */
  maxJsonDepth: number;
}

export const DEFAULT_LIMITS: ListLimits = {
  maxBytes: 64 * 1024 * 1024,
  maxLineLength: 4096,
  maxEntries: 2_000_000,
  maxIncludeDepth: 16,
  maxIncludeFiles: 1000,
  maxJsonDepth: 32,
};

/** Reads a list or a v2fly include by reference (a path or URL); the caller decides how. */
export type ListReader = (ref: string) => Promise<Uint8Array | string>;

export interface ParseOptions {
  /** List name, for messages and origins. */
  list: string;
  /** File (path or URL) the text came from, for messages. */
  file?: string;
  limits?: Partial<ListLimits>;
  /** `error` (default): an unsupported field stops the list. `skip`: it is counted in `skipped`. */
  unsupported?: 'error' | 'skip';
}
