// Hard limits on config input. Each one fails with its own code and message, so a user who hits a
// limit learns which one and what the bound is. The numbers are generous for hand-written configs;
// bigger rule sets belong in lists (src/lists), which have their own limits.

/** Whole file. A hand-written config is a few KiB; 1 MiB leaves room for long inline lists. */
export const MAX_CONFIG_BYTES = 1024 * 1024;

/** `[[rule]]` entries in one file. */
export const MAX_RULES = 10_000;

/** Entries in one list of one rule or exempt entry (`domains`, `apps`, `cidrs`, `ports`). */
export const MAX_PATTERNS_PER_RULE = 50_000;

/** Patterns across all rules and exempt entries together. */
export const MAX_PATTERNS_TOTAL = 200_000;

/** Pattern lengths, in characters, after the `full:`/`keyword:`/`regexp:` prefix. */
export const MAX_DOMAIN_LENGTH = 253; // RFC 1035: 253 characters in text form
export const MAX_KEYWORD_LENGTH = 253;
export const MAX_REGEXP_LENGTH = 256;
export const MAX_APP_PATTERN_LENGTH = 4096; // Linux PATH_MAX

/** Regexp structure bounds that keep backtracking small on ≤ 253-character names (docs/config.md). */
export const MAX_REGEXP_UNBOUNDED = 2; // variable quantifiers: * + ? {n,} {n,m}
export const MAX_REGEXP_ALTERNATIONS = 3;

/** Declared egresses and `[[exempt]]` entries. */
export const MAX_EGRESSES = 256;
export const MAX_EXEMPT = 1_000;

/** Inline array/table nesting accepted by the TOML parser (the schema needs 3). */
export const MAX_TOML_DEPTH = 16;

/** Issues listed in one error message; the rest are counted. */
export const MAX_REPORTED_ISSUES = 20;
