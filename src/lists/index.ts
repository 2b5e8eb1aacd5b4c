// Rule lists: parse any supported format into normalised entries (parse-list.ts), write entries back
// out (export-list.ts), and turn `[[list]]` definitions into RuleConfigs for the policy engine
// (list-def.ts, to-rules.ts, list-origin.ts). This module is the one callers import.
export * from './types.ts';
export { ValueError } from './normalize.ts';
export { parseList, type ParseListOptions } from './parse-list.ts';
export { exportList, type ExportOptions } from './export-list.ts';
export { validateListDef, type ListDef } from './list-def.ts';
export { listsToRules, type ListConflict, type ListSummary, type ListsResult, type ListsToRulesOptions, type PatternLines } from './to-rules.ts';
export { listOriginOf } from './list-origin.ts';
