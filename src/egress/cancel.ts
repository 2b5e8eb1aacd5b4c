// Cancelling a pending egress connect when the client goes away first. The connect chain accepts
// anything shaped like this: an AbortSignal (health probes) or a FlowCancel, which the front
// door creates once per connection. An AbortController plus its AbortSignal (an EventTarget)
// was the largest single JavaScript cost per connection in connection-rate profiles (~15 µs with
// its listener bookkeeping and garbage); a FlowCancel is a flag and an array.

/** The part of AbortSignal that dial() uses. */
export interface CancelSignal {
  readonly aborted: boolean;
  addEventListener(type: 'abort', listener: () => void, options?: { once?: boolean }): void;
  removeEventListener(type: 'abort', listener: () => void): void;
}

/** A one-shot cancel signal: listeners run once, on the first abort(). */
export class FlowCancel implements CancelSignal {
  aborted = false;
  private listeners: (() => void)[] | null = null;

  addEventListener(_type: 'abort', listener: () => void): void {
    if (this.aborted) return;
    (this.listeners ??= []).push(listener);
  }

  removeEventListener(_type: 'abort', listener: () => void): void {
    const l = this.listeners;
    if (!l) return;
    const i = l.indexOf(listener);
    if (i >= 0) l.splice(i, 1);
  }

  abort(): void {
    if (this.aborted) return;
    this.aborted = true;
    const l = this.listeners;
    this.listeners = null;
    if (l) for (const f of l) f();
  }
}
