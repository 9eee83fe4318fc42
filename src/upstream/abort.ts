import { EventEmitter } from 'node:events';

/**
 * Aborts one upstream call: the client left (no reason), or the proxy ended it (a SignalboxError
 * reason, e.g. shutdown). Shaped as the signal undici accepts besides an AbortSignal: an
 * EventEmitter with `aborted` and `reason` that emits 'abort' (lib/api/api-request.js,
 * lib/api/abort-signal.js).
 *
 * Why not AbortController: on Node 20 one per request, with undici adding and removing its
 * listener through EventTarget, cost about 5 µs of CPU per request in a --cpu-prof of the proxy
 * (createAbortSignal, EventTarget's add/removeEventListener): a few percent of what a whole
 * request costs the proxy, for a call that almost never aborts.
 */
export class UpstreamAbort extends EventEmitter {
  aborted = false;
  reason: unknown = undefined;

  abort(reason?: unknown): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason;
    this.emit('abort');
  }
}
