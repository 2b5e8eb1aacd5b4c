// A backend for a platform without a working one: every call fails clearly, so the daemon
// refuses enforcement (fail closed) instead of running with nothing enforced.
import { RedirectUnavailableError } from '../errors.ts';
import type { ApplyResult, BackendStatus, BindingStats, RedirectBackend } from './types.ts';

export class UnavailableBackend implements RedirectBackend {
  readonly os: string;
  readonly #why: string;
  constructor(os: string, why: string) {
    this.os = os;
    this.#why = why;
  }
  #fail(): never {
    throw new RedirectUnavailableError(this.#why);
  }
  render(): string {
    return this.#fail();
  }
  async apply(): Promise<ApplyResult> {
    return this.#fail();
  }
  async addBindings(): Promise<BindingStats> {
    return this.#fail();
  }
  async placeProcess(): Promise<void> {
    this.#fail();
  }
  async skeleton(): Promise<void> {
    this.#fail();
  }
  async down(): Promise<void> {
    this.#fail();
  }
  async status(): Promise<BackendStatus> {
    return { os: this.os, state: 'absent', groups: [], setElements: {}, problems: [this.#why] };
  }
  commandInGroup(): string[] {
    return this.#fail();
  }
  async close(): Promise<void> {}
}
