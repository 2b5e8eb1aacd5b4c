// The end of every fixture that runs inside a test namespace (test/redirect-linux/fixtures/*,
// the enforcing-daemon fixtures): print `RESULT {json}` — with `error` when main threw — for the
// host side (runFixture in test/redirect-linux/helpers/host.ts), release what the fixture
// opened, and exit.

export interface FixtureMainOptions {
  /** Run after the result is printed, in order (servers, children). */
  closers?: (() => void)[];
  /** Run after the closers (scratch directories). */
  cleanup?: () => void;
  /** Exit code when main threw (the host side reads `error` from the result either way). */
  errorExitCode?: number;
}

export function runFixtureMain(main: () => Promise<void>, r: Record<string, unknown>, o: FixtureMainOptions = {}): void {
  let code = 0;
  main()
    .catch((e: unknown) => {
      r['error'] = String((e as Error)?.stack ?? e);
      code = o.errorExitCode ?? 0;
    })
    .then(() => process.stdout.write(`RESULT ${JSON.stringify(r)}\n`))
    .finally(() => {
      for (const c of o.closers ?? []) c();
      o.cleanup?.();
      setTimeout(() => process.exit(code), 50);
    });
}
