import type { Caller } from '../accounts/caller.js';
import type { SpendSettlement } from '../accounts/accounts.js';
import type { TokenCharge } from '../accounts/rate-limit.js';
import type { Classification } from '../classify/labels.js';
import type { SignalboxError } from '../errors.js';
import type { Escalation } from '../experiments/cascade.js';
import type { JsonObject } from '../rules/decision.js';
import type { SplitAssignment } from '../rules/split.js';
import { lastUserText } from '../rules/fields.js';
import type { PreparedShadow } from '../experiments/shadow.js';
import type { ExchangeRecord } from './record.js';
import type { ForwardResult } from './forward.js';

/**
 * One client request's stage results, from arrival to the response's close. Each slot is written
 * once, by the one stage that owns it, and read once, when the response closes, to assemble the
 * record that the log line and the metrics read (`record`):
 *
 * | slot                                      | written by                                       |
 * | ----------------------------------------- | ------------------------------------------------ |
 * | startedAt, clientAddress, userAgent       | arrival (plugins/exchange.ts)                    |
 * | clientKeyId, caller                       | authentication (client-auth.ts)                  |
 * | tokenCharge, spendSettlement              | the account step (routes/routed.ts)    |
 * | bytesIn                                   | the body parser (routes/*)                       |
 * | requestedModel, stream, chatBody          | the context stage (routes/*)                     |
 * | rule, routedModel, baselineModel,         | the decision stage (routes/routed.ts)  |
 * | classification, variant, splitAssignment, |                                                  |
 * | shadow                                    |                                                  |
 * | classifierCostUsd                         | the classifier step (classify/resolver.ts)       |
 * | escalations, escalationCostUsd            | the cascade (experiments/cascade.ts)             |
 * | upstream (attempts, relay result)         | the upstream call, when it settles (forward.ts)  |
 * | error                                     | the error handler (app.ts)                       |
 * | sentBytes                                 | a body Fastify sent itself (plugins/exchange.ts) |
 */
export class Exchange {
  /** performance.now() at arrival, in milliseconds: one plain-number clock for every duration. */
  readonly startedAt: number = performance.now();
  /** The TCP peer's address (no proxy header is trusted), taken when the request arrives. */
  clientAddress: string | undefined = undefined;
  /** The client's User-Agent header, as sent (the log line bounds its length). */
  userAgent: string | undefined = undefined;
  /** The name of the client key that authenticated the request, when client keys are configured. */
  clientKeyId: string | undefined = undefined;
  /** Who the key says the caller is (its tier, team, allow-list, limits); undefined when no keys are configured. */
  caller: Caller | undefined = undefined;
  /** The token estimate the rate limits took, settled to the real count on the record (recorder.ts). */
  tokenCharge: TokenCharge | undefined = undefined;
  /** The request's budget reservation and spend counters, settled to its real cost on the record (recorder.ts). */
  spendSettlement: SpendSettlement | undefined = undefined;
  bytesIn = 0;
  /** Model the client asked for (`body.model`), clipped to MAX_CLIENT_TEXT_CHARS like every model name here. */
  requestedModel: string | undefined = undefined;
  stream = false;
  /**
   * The parsed chat body, for the log line's prompt hash, only while the log will want it
   * (`keepPrompt`) and no longer than until the response head is written (`releaseBody`).
   */
  chatBody: Readonly<JsonObject> | undefined = undefined;
  /** Routing rule that decided, `none` when no rule matched; undefined when the rules never saw the request. */
  rule: string | undefined = undefined;
  /** Model the decision routed to (clipped); the attempts may move on to a fallback. */
  routedModel: string | undefined = undefined;
  /** The model the decision's cost is compared with (`baseline:` in the rules), when there is one. */
  baselineModel: string | undefined = undefined;
  /** The verdict the rules read (`classify.*`), when one did. */
  classification: Classification | undefined = undefined;
  /** The arm of a `split` the request landed in (issue 17), when its rule splits. */
  variant: string | undefined = undefined;
  /** How the arm was chosen: by the subject, at random, or at random because the subject was missing. */
  splitAssignment: SplitAssignment | undefined = undefined;
  /** The rule's shadow copy, when the decision had one and it was sampled: sent once the exchange is recorded. */
  shadow: PreparedShadow | undefined = undefined;
  /** What the llm or embedding classifier's upstream call for this request cost, USD (the caller's). */
  classifierCostUsd: number | undefined = undefined;
  /** A cascade rule's escalations, in order (empty: the first tier answered); undefined for other rules. */
  escalations: readonly Escalation[] | undefined = undefined;
  /** What the answers a cascade discarded cost, USD, as far as known (the caller's, like the answer's). */
  escalationCostUsd: number | undefined = undefined;
  /** What the upstream call came to (its attempts, its relay's result), once it has settled. */
  upstream: ForwardResult | undefined = undefined;
  /** The proxy's own error, answered by Fastify's error handler. */
  error: SignalboxError | undefined = undefined;
  /** Bytes of a body Fastify sent itself (errors, probes); relayed bodies are counted by the relay. */
  sentBytes = 0;
  /** The last user message's text, taken from chatBody before it is let go. */
  private promptText: string | undefined = undefined;

  /** Milliseconds since arrival. */
  elapsedMs(now = performance.now()): number {
    return now - this.startedAt;
  }

  /**
   * Proxy time so far: all of it when no upstream call was made (an answer of the proxy's own),
   * else the time before the first attempt and the time spent writing the response head.
   */
  proxyMs(now = performance.now()): number {
    return this.upstream?.proxyMs ?? now - this.startedAt;
  }

  /** Keeps the last user message's text of the chat body and lets go of the body itself. */
  releaseBody(): void {
    if (this.chatBody !== undefined) {
      this.promptText = lastUserText(this.chatBody);
      this.chatBody = undefined;
    }
  }

  /**
   * The record of this exchange, assembled once from the stages' results when the response has
   * closed: the one value the log line and the metrics read.
   */
  record(status: number, clientClosed: boolean, method: string, url: string): ExchangeRecord {
    const now = performance.now();
    this.releaseBody();
    const call = this.upstream;
    // The record holds what is needed from here on; a dead exchange must not keep it young (see Forwarding.dropReferences).
    this.upstream = undefined;
    const relay = call?.relay;
    const facts = relay?.facts;
    const firstTokenAt = facts?.firstTokenAt;
    return {
      method,
      url,
      status,
      durationMs: now - this.startedAt,
      clientAddress: this.clientAddress,
      userAgent: this.userAgent,
      clientKeyId: this.clientKeyId,
      tokenCharge: this.tokenCharge,
      spendSettlement: this.spendSettlement,
      bytesIn: this.bytesIn,
      bytesOut: relay?.bytesOut ?? this.sentBytes,
      requestedModel: this.requestedModel,
      rule: this.rule,
      routedModel: call?.model ?? this.routedModel,
      baselineModel: this.baselineModel,
      classification: this.classification,
      variant: this.variant,
      splitAssignment: this.splitAssignment,
      shadow: this.shadow,
      classifierCostUsd: this.classifierCostUsd,
      escalations: this.escalations,
      escalationCostUsd: this.escalationCostUsd,
      stream: this.stream,
      attempts: call?.attempts ?? NO_ATTEMPTS,
      upstreamStatus: call?.upstreamStatus,
      overheadMs: call !== undefined && call.attempts.length > 0 ? call.proxyMs : now - this.startedAt,
      facts,
      ttftMs: this.stream && firstTokenAt !== undefined ? firstTokenAt - this.startedAt : undefined,
      promptText: this.promptText,
      clientClosed,
      streamErrorKind: relay?.streamErrorKind,
      error: relay?.error ?? this.error,
    };
  }
}

const NO_ATTEMPTS: readonly never[] = Object.freeze([]);
