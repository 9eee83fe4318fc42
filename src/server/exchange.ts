import type { SwitchyardError } from '../errors.js';

/**
 * What happened to one client request, from arrival to the last byte. Written by the stages
 * (route decision, upstream call, relay) and read once, by the request log line, when the
 * client's response closes.
 */
export class Exchange {
  readonly startedAt: bigint = process.hrtime.bigint();
  /** Model the client asked for (`body.model`), when the route reads a chat body. */
  requestedModel: string | undefined = undefined;
  /** Routing rule that decided, `none` when no rule matched. */
  rule: string | undefined = undefined;
  /** Model sent upstream. */
  routedModel: string | undefined = undefined;
  stream = false;
  bytesIn = 0;
  bytesOut = 0;
  upstreamStatus: number | undefined = undefined;
  /** The proxy's own error, when there was one (also mid-stream). */
  error: SwitchyardError | undefined = undefined;
  /** The client went away before its response was complete. */
  clientClosed = false;
  /** The proxy ended the response on purpose (an upstream failure mid-body), not the client. */
  endedByProxy = false;
  /** Aborts the upstream call; created only when there is one. */
  upstreamAbort: AbortController | undefined = undefined;
  /** Set while the upstream body is being relayed: ends it with a final error (shutdown). */
  terminateRelay: ((error: SwitchyardError) => void) | undefined = undefined;

  /** Milliseconds since arrival. */
  elapsedMs(): number {
    return Number(process.hrtime.bigint() - this.startedAt) / 1e6;
  }

  /**
   * Ends this exchange on the proxy's initiative (shutdown grace elapsed): a relay in progress
   * gets a final error event, a request still waiting for upstream headers is aborted.
   */
  terminate(error: SwitchyardError): void {
    if (this.terminateRelay) this.terminateRelay(error);
    else this.upstreamAbort?.abort(error);
  }
}
