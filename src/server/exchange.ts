import type { SignalboxError } from '../errors.js';
import type { StreamErrorKind } from '../metrics/metrics.js';
import type { JsonObject } from '../rules/decision.js';
import type { UpstreamAbort } from '../upstream/abort.js';
import { lastUserText } from '../rules/fields.js';
import type { ResponseFacts } from '../upstream/response-tap.js';

/** One upstream attempt, for the debug lines the recorder writes per attempt. */
export interface UpstreamAttempt {
  readonly model: string | undefined;
  readonly sentAt: bigint;
  /** The upstream's status, or the error code of an attempt that got no usable answer. */
  outcome: number | string | undefined;
  /** From sending to the response headers or the failure. */
  durationMs: number;
  /** The wait before the next attempt, when there was one. */
  waitMs: number | undefined;
}

/**
 * The most attempts recorded per exchange: RETRY_MAX_ATTEMPTS' maximum, which the retry loop never
 * exceeds; the cap only guards the list should that ever change.
 */
const MAX_RECORDED_ATTEMPTS = 10;

/**
 * What happened to one client request, from arrival to the last byte. Written by the stages
 * (route decision, upstream call, relay, response tap) and read once, by the request log line and
 * the metrics, when the client's response closes.
 */
export class Exchange {
  readonly startedAt: bigint = process.hrtime.bigint();
  /** The parsed chat body, until no attempt can need it (then only its last user message is kept). */
  chatBody: Readonly<JsonObject> | undefined = undefined;
  /** The last user message's text, for the log line's prompt hash; set by `finish`. */
  promptText: string | undefined = undefined;
  /** Status the client got (499: it left); set by `finish`. */
  status = 0;
  /** Arrival to the response's close, in milliseconds; set by `finish`. */
  durationMs = 0;
  /** Model the client asked for (`body.model`), clipped to MAX_CLIENT_TEXT_CHARS like every model name here. */
  requestedModel: string | undefined = undefined;
  /** Routing rule that decided, `none` when no rule matched. */
  rule: string | undefined = undefined;
  /** Model sent upstream. */
  routedModel: string | undefined = undefined;
  stream = false;
  /** The TCP peer's address (no proxy header is trusted), taken when the request arrives. */
  clientAddress: string | undefined = undefined;
  /** The client's User-Agent header, as sent (the log line bounds its length). */
  userAgent: string | undefined = undefined;
  /** Which client key authenticated the request (see clientKeyId), when client keys are configured. */
  clientKeyId: string | undefined = undefined;
  /**
   * Each upstream attempt, only when the debug lines that show them are written (otherwise
   * undefined, and nothing is recorded). At most MAX_RECORDED_ATTEMPTS.
   */
  attempts: UpstreamAttempt[] | undefined = undefined;
  bytesIn = 0;
  bytesOut = 0;
  upstreamAttempts = 0;
  upstreamStatus: number | undefined = undefined;
  /** What the response tap read from the upstream response. */
  facts: ResponseFacts | undefined = undefined;
  /** The proxy's own error, when there was one (also mid-stream). */
  error: SignalboxError | undefined = undefined;
  streamErrorKind: StreamErrorKind | undefined = undefined;
  /** The client went away before its response was complete. */
  clientClosed = false;
  /** The proxy ended the response on purpose (an upstream failure mid-body), not the client. */
  endedByProxy = false;
  /** Aborts the upstream call; created only when there is one. */
  upstreamAbort: UpstreamAbort | undefined = undefined;
  /** Set while the upstream body is being relayed: ends it with a final error (shutdown). */
  terminateRelay: ((error: SignalboxError) => void) | undefined = undefined;
  /** Nanoseconds spent inside the proxy, not waiting on upstream (see markUpstreamSent / markHeadWritten). */
  private proxyNs = 0n;
  private upstreamHeadersAt: bigint | undefined = undefined;

  /** Milliseconds since arrival. */
  elapsedMs(): number {
    return Number(process.hrtime.bigint() - this.startedAt) / 1e6;
  }

  /**
   * The response has closed: freezes what the log line and metrics read later, and lets go of the
   * request body (which may be large) once its last user message has been taken.
   */
  finish(status: number): void {
    this.status = status;
    this.durationMs = this.elapsedMs();
    this.releaseBody();
  }

  /** Keeps the last user message's text of the chat body and lets go of the body itself. */
  releaseBody(): void {
    if (this.chatBody !== undefined) {
      this.promptText = lastUserText(this.chatBody);
      this.chatBody = undefined;
    }
  }

  /**
   * An upstream request is about to be sent. Before the first one, the time since arrival was the
   * proxy's; the time between attempts is waiting on upstream (and Retry-After), not overhead.
   */
  markUpstreamSent(model?: string): void {
    if (this.upstreamAttempts === 0) this.proxyNs = process.hrtime.bigint() - this.startedAt;
    this.upstreamAttempts++;
    if (this.attempts !== undefined && this.attempts.length < MAX_RECORDED_ATTEMPTS) {
      this.attempts.push({ model, sentAt: process.hrtime.bigint(), outcome: undefined, durationMs: 0, waitMs: undefined });
    }
  }

  /**
   * The attempt just sent was answered with this status, or failed with this error code (a later
   * call for the same attempt, such as a first-token timeout after a 200, replaces it).
   */
  markAttemptOutcome(outcome: number | string): void {
    const attempt = this.attempts?.[this.upstreamAttempts - 1];
    if (attempt === undefined) return;
    attempt.outcome = outcome;
    attempt.durationMs = Number(process.hrtime.bigint() - attempt.sentAt) / 1e6;
  }

  /** Another attempt follows the one just made, after `waitMs`. */
  markAttemptRetried(waitMs: number): void {
    const attempt = this.attempts?.[this.upstreamAttempts - 1];
    if (attempt !== undefined) attempt.waitMs = waitMs;
  }

  markUpstreamHeaders(): void {
    this.upstreamHeadersAt = process.hrtime.bigint();
  }

  /**
   * Proxy time so far, counting the work since the upstream's headers arrived; all of the time
   * since arrival when no upstream call was made (an answer of the proxy's own, like `overheadSeconds`).
   */
  proxyMsNow(): number {
    if (this.upstreamAttempts === 0) return this.elapsedMs();
    const sinceHeaders = this.upstreamHeadersAt === undefined ? 0n : process.hrtime.bigint() - this.upstreamHeadersAt;
    return Number(this.proxyNs + sinceHeaders) / 1e6;
  }

  /** The response head was written: the time since the upstream's headers was the proxy's. */
  markHeadWritten(): void {
    if (this.upstreamHeadersAt !== undefined) this.proxyNs += process.hrtime.bigint() - this.upstreamHeadersAt;
    this.upstreamHeadersAt = undefined;
  }

  /** Seconds spent inside the proxy; all of it when no upstream call was made (read after `finish`). */
  overheadSeconds(): number {
    return this.upstreamAttempts === 0 ? this.durationMs / 1000 : Number(this.proxyNs) / 1e9;
  }

  /** Seconds from arrival to the first token, for a stream whose first token was seen. */
  ttftSeconds(): number | undefined {
    const at = this.facts?.firstTokenAt;
    return this.stream && at !== undefined ? Number(at - this.startedAt) / 1e9 : undefined;
  }

  /**
   * Ends this exchange on the proxy's initiative (shutdown grace elapsed): a relay in progress
   * gets a final error event, a request still waiting for upstream headers is aborted.
   */
  terminate(error: SignalboxError): void {
    if (this.terminateRelay) this.terminateRelay(error);
    else this.upstreamAbort?.abort(error);
  }
}
