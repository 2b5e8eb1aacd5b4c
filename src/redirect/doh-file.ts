// Reads `[enforce] doh_list` for block_doh (the parser in ./doh.ts is pure). A missing or bad file
// is an error, never an empty list: block_doh with a typo would otherwise leave resolvers open.
import { readFileSync } from 'node:fs';
import type { Config } from '../policy/types.ts';
import { RedirectPlanError } from '../errors.ts';
import { DohListError, dohList, parseDohList, type DohList } from './doh.ts';

/** The DoH list for `config` (built-in plus the file), or null when block_doh is off. */
export function readDohList(config: Config): DohList | null {
  if (!config.enforce.blockDoh) return null;
  const file = config.enforce.dohList ?? null;
  if (file === null) return dohList(null);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new RedirectPlanError(`[enforce] doh_list '${file}' cannot be read: ${(err as Error).message}`);
  }
  try {
    return dohList(parseDohList(text));
  } catch (err) {
    if (err instanceof DohListError) throw new RedirectPlanError(`[enforce] doh_list '${file}': ${err.message}`);
    throw err;
  }
}
