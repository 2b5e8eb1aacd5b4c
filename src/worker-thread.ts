// Starting a worker thread from a file next to the caller, in both ways switchyard runs: the tsc
// build (.js, what `npm start` and the service run) and the TypeScript sources under tsx (tests,
// benchmarks, development). Under tsx a worker does not inherit the parent's loader hooks on
// Node 20, even with `--import tsx` in execArgv, so a small bootstrap registers tsx in the worker
// before importing the file; without tsx, Node's own type stripping (22.18+, 24) loads the .ts.
import { Worker, type WorkerOptions } from 'node:worker_threads';

/**
 * Starts `./<name>.ts` or `./<name>.js` beside `callerUrl` (pass `import.meta.url`), whichever
 * kind the caller itself is.
 */
export function startSiblingWorker(callerUrl: string, name: string, options: WorkerOptions = {}): Worker {
  const fromSources = callerUrl.endsWith('.ts');
  const url = new URL(`./${name}${fromSources ? '.ts' : '.js'}`, callerUrl);
  if (fromSources) {
    let api: string | null;
    try {
      api = import.meta.resolve('tsx/esm/api');
    } catch {
      api = null;
    }
    if (api !== null) {
      const boot = `import(${JSON.stringify(api)}).then((m) => { m.register(); return import(${JSON.stringify(url.href)}); })`;
      return new Worker(boot, { ...options, eval: true });
    }
  }
  return new Worker(url, options);
}
