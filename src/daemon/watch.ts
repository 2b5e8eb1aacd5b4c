// Watches the config file for changes, debounced. Editors replace files (write a temporary file,
// rename it over the old one), which ends a watch on the old inode: so the directory is watched
// and events are filtered by name. A burst of events (truncate, write, rename) gives one reload.
import { watch, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';

export class ConfigWatcher {
  readonly #path: string;
  readonly #debounceMs: number;
  readonly #onChange: () => void;
  #watcher: FSWatcher | null = null;
  #timer: NodeJS.Timeout | undefined;

  constructor(path: string, debounceMs: number, onChange: () => void) {
    this.#path = path;
    this.#debounceMs = debounceMs;
    this.#onChange = onChange;
  }

  start(): void {
    const name = basename(this.#path);
    try {
      this.#watcher = watch(dirname(this.#path), { persistent: false }, (_event, file) => {
        if (file !== null && file.toString() !== name) return;
        clearTimeout(this.#timer);
        this.#timer = setTimeout(this.#onChange, this.#debounceMs);
      });
      this.#watcher.on('error', () => this.close());
    } catch {
      // No inotify (limits reached): `switchyard reload` still works.
      this.#watcher = null;
    }
  }

  get active(): boolean {
    return this.#watcher !== null;
  }

  close(): void {
    clearTimeout(this.#timer);
    this.#watcher?.close();
    this.#watcher = null;
  }
}
