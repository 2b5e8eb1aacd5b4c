import { readFileSync } from 'node:fs';
import { PACKAGE_ROOT_URL } from '../../paths.ts';

export const summary = 'print the version';

export async function run(_argv: string[]): Promise<number> {
  const pkg = JSON.parse(readFileSync(new URL('package.json', PACKAGE_ROOT_URL), 'utf8')) as { version: string };
  process.stdout.write(`switchyard ${pkg.version}\n`);
  return 0;
}
