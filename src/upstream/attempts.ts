import { ClientClosedError, InternalError, UpstreamTimeoutError, type SignalboxError } from '../errors.js';
import { attemptModels, type CooldownLease, type FailureScope, type ModelCooldowns } from './cooldown.js';
import { isRetryableError, isRetryableStatus, nextAttempt, retryAfterMs, type RetryPolicy, type RetryVerdict } from './retry.js';

/**
 * The attempt loop of one upstream exchange as a pure state machine: the driver (the code that
 * talks to undici and the client) reports what each attempt came to, and the machine answers
 * what to do next: send, hold the stream for its first token, wait, relay, or give up. The
 * retry verdicts (retry.ts), the breaker's bookkeeping (cooldown.ts) and the choice of models
 * (attemptModels) live here, so that every branch of the loop is tested without a socket.
 *
 * Pure: no I/O, no timers, no clock of its own. Every `now` is a plain number of milliseconds on
 * one clock, and that clock must be the wall clock (epoch ms, `Date.now()`): a Retry-After given
 * as an HTTP date (RFC 9110 §10.2.3) is subtracted from it, and the breaker's cooldowns are
 * compared with it. The request's arrival (`startedAt`) is on that same clock.
 */

/**
 * The upstream attempts of a routed chat request: the routed model, then its fallbacks, each
 * attempt starting one further along the list, cooling models left out (`attemptModels`).
 */
export interface AttemptPlan {
  readonly models: readonly string[];
  /** The body of an attempt that sends `models[0]` with `models` as OpenRouter's fallback list. */
  bodyFor(models: readonly string[]): Buffer | string;
}

/** The policy of a request that is never retried (pass-through requests). */
export const NO_RETRY: RetryPolicy = Object.freeze({
  maxAttempts: 1, statuses: new Set<number>(), budgetMs: 0, retryAfterCapMs: 0, onNetworkErrors: false,
});

/** The breaker counts a failed connection or a timeout as a failure of the model, whatever the retry settings. */
const NETWORK_FAILURES: RetryPolicy = { ...NO_RETRY, onNetworkErrors: true };

export interface AttemptMachineOptions {
  /** NO_RETRY for pass-through requests. */
  readonly policy: RetryPolicy;
  readonly cooldowns: ModelCooldowns;
  /** Digest of the Authorization sent upstream (ModelCooldowns.credentialOf). */
  readonly credential: string;
  /** The routed model (first attempt), undefined for an unrouted request. */
  readonly model: string | undefined;
  /** The first attempt's body (the client's bytes, or the rewritten body). */
  readonly body: Buffer | string | undefined;
  /**
   * The route's models and their bodies, built by this factory only when first needed: on the
   * first retry, or at the first attempt when the breaker holds any state (cooldowns.size > 0),
   * since then cooling models must be left out of the first attempt too. Absent: a request
   * without a route (pass-through): no breaker, no fallback, `model` as it is.
   */
  readonly plan?: (() => AttemptPlan) | undefined;
  /**
   * A 200 stream that yields no token within this many ms counts as a failed attempt, retried
   * before the client saw anything (0: off; the stream is relayed at once).
   */
  readonly firstTokenTimeoutMs: number;
  /** Arrival time of the request, same clock as every `now` given to the machine. */
  readonly startedAt: number;
  /** Backoff jitter source (retry.ts backoffMs); Math.random by default. */
  readonly random?: () => number;
}

export type AttemptStep =
  | { readonly kind: 'send'; readonly attempt: number; readonly model: string | undefined; readonly body: Buffer | string | undefined }
  /** Hold the stream's first bytes until a token (or an in-band error, [DONE], the end, the hold cap), at most `timeoutMs`. */
  | { readonly kind: 'await_first_token'; readonly timeoutMs: number }
  /**
   * Read and discard the body of the response just reported (if any), wait `ms`, then call
   * `waited`. A wait of 0 ms is still a `wait` step (the driver skips the timer): the body of a
   * retried response must be discarded either way.
   */
  | { readonly kind: 'wait'; readonly ms: number }
  /** Relay the response whose head was just reported (with the bytes held for its first token). */
  | { readonly kind: 'relay' }
  | { readonly kind: 'give_up'; readonly error: SignalboxError };

export type AttemptOutcome =
  | { readonly kind: 'head'; readonly status: number; readonly headers: Record<string, string | string[] | undefined>; readonly sse: boolean }
  /** No usable answer: already mapped by UpstreamClient.mapError; ClientClosedError when the client left. */
  | { readonly kind: 'failed'; readonly error: SignalboxError }
  /** The held stream yielded a token, an in-band error, [DONE], its end, or reached the hold cap: relay it. */
  | { readonly kind: 'first_token' }
  | { readonly kind: 'first_token_timeout' }
  /** The held stream failed before its first token (mapped as for `failed`). */
  | { readonly kind: 'stream_failed'; readonly error: SignalboxError };

/** One attempt, as the request log's debug lines and the metrics read it. */
export interface AttemptRecord {
  readonly attempt: number;
  readonly model: string | undefined;
  /** Upstream status, or the error code (`first_token_timeout` for that case) of an attempt with no usable answer. */
  outcome: number | string | undefined;
  readonly sentAt: number;
  durationMs: number;
  /** Set when another attempt follows: to which model, why (status or error code), after how long. */
  retry: { readonly to: string | undefined; readonly reason: string; readonly waitMs: number } | undefined;
}

type Phase = 'new' | 'sent' | 'holding' | 'waiting' | 'done';

const RELAY: AttemptStep = Object.freeze({ kind: 'relay' });

/**
 * The attempts of one request. Call `start`, then `next` with each attempt's outcome (and
 * `waited` after each `wait`) until `relay` or `give_up`; call `release` in the driver's
 * `finally`, so that a client that leaves mid-attempt frees the breaker's probe.
 */
export class AttemptMachine {
  private readonly options: AttemptMachineOptions;
  private readonly random: () => number;
  /** Whether attempts count for the breaker: only routed requests, with the breaker enabled. */
  private readonly breaker: boolean;
  private plan: AttemptPlan | undefined;
  /** Bounded by policy.maxAttempts (at most 10: settings and the rules schema cap it). */
  private readonly records: AttemptRecord[] = [];
  private phase: Phase = 'new';
  /** The model of the current attempt. */
  private model: string | undefined;
  /** The model of the attempt that just failed: the next attempt's models follow from it. */
  private failed: string | undefined;
  /** The probe the current attempt holds (a model whose cooldown just ended); rarely set. */
  private probe: CooldownLease | undefined;

  constructor(options: AttemptMachineOptions) {
    this.options = options;
    this.random = options.random ?? Math.random;
    this.breaker = options.plan !== undefined && options.cooldowns.enabled;
  }

  /** Every attempt sent so far, oldest first; at most policy.maxAttempts (<= 10) entries. */
  get attempts(): readonly AttemptRecord[] {
    return this.records;
  }

  /** Attempts sent so far. */
  get count(): number {
    return this.records.length;
  }

  /** The first attempt: always a `send`. */
  start(now: number): AttemptStep {
    this.expect('new', 'start');
    return this.send(now);
  }

  /** What the attempt just sent came to. */
  next(outcome: AttemptOutcome, now: number): AttemptStep {
    switch (outcome.kind) {
      case 'head': {
        this.expect('sent', outcome.kind);
        this.settle(outcome.status, now);
        if (this.options.firstTokenTimeoutMs > 0 && outcome.status === 200 && outcome.sse) {
          // Opt-in: hold this stream's first bytes until it yields a token, so that a provider that
          // accepts and then stalls can still be retried before the client saw anything. The
          // breaker learns the outcome once the wait is over.
          this.phase = 'holding';
          return { kind: 'await_first_token', timeoutMs: this.options.firstTokenTimeoutMs };
        }
        return this.answered(outcome.status, outcome.headers, now);
      }
      case 'first_token':
        this.expect('holding', outcome.kind);
        return this.answered(200, undefined, now);
      case 'failed':
        this.expect('sent', outcome.kind);
        return this.unanswered(outcome.error, false, now);
      case 'first_token_timeout':
        this.expect('holding', outcome.kind);
        return this.unanswered(undefined, true, now);
      case 'stream_failed':
        this.expect('holding', outcome.kind);
        return this.unanswered(outcome.error, true, now);
    }
  }

  /** The wait is over: the next `send`. */
  waited(now: number): AttemptStep {
    this.expect('waiting', 'waited');
    return this.send(now);
  }

  /** Frees the breaker probe the current attempt holds, outcome unknown. Idempotent; the driver calls it in `finally`. */
  release(): void {
    this.probe?.release();
    this.probe = undefined;
  }

  private send(now: number): AttemptStep {
    this.release();
    const { cooldowns, credential } = this.options;
    let model = this.options.model;
    let body = this.options.body;
    // The plan is needed when the breaker may leave models out, after a failure, or when there is
    // no routed model to send as it is (the route's first model is then the one sent).
    if (this.options.plan !== undefined && (this.failed !== undefined || cooldowns.size > 0 || model === undefined)) {
      const plan = this.routePlan();
      // Chosen as not cooling at this same `now`, so the probe claim below holds; when every model
      // is cooling it takes no probe, and the list is tried anyway.
      const models = attemptModels(plan.models, this.failed, cooldowns, credential, now);
      model = models[0];
      body = plan.bodyFor(models);
      if (this.breaker && model !== undefined) this.probe = cooldowns.probe(model, credential, now);
    }
    this.model = model;
    this.phase = 'sent';
    const attempt = this.records.length + 1;
    this.records.push({ attempt, model, outcome: undefined, sentAt: now, durationMs: 0, retry: undefined });
    return { kind: 'send', attempt, model, body };
  }

  /** The upstream answered (after its first token, when held): relay it, or retry a retryable status. */
  private answered(status: number, headers: Record<string, string | string[] | undefined> | undefined, now: number): AttemptStep {
    const retryable = headers !== undefined && status >= 400 && isRetryableStatus(this.options.policy, status, headers, now);
    // A 429 is the rate limit of the key sent; a 5xx is the model's, whoever asks.
    this.recordBreaker(status === 429 ? 'credential' : status >= 500 ? 'upstream' : 'success', now);
    if (retryable) {
      const step = this.retryStep(retryAfterMs(headers, now), String(status), now);
      if (step !== undefined) return step;
    }
    this.phase = 'done';
    return RELAY;
  }

  /**
   * No usable answer: `error` (undefined for a first-token timeout). A network fault is the
   * model's failure whatever the policy; a local error (internal_error) is not, and fails again on
   * retry. Before the head, only what the policy retries is retried; a held stream that stalls or
   * breaks is retried within the policy's attempts and budget alone, as the loop always did.
   */
  private unanswered(error: SignalboxError | undefined, held: boolean, now: number): AttemptStep {
    const code = error?.code ?? 'first_token_timeout';
    this.settle(code, now);
    // Nobody is left to answer; no outcome for the breaker (the driver logs 499).
    if (error instanceof ClientClosedError) return this.giveUp(error);
    const networkFault = error === undefined || isRetryableError(NETWORK_FAILURES, error);
    if (networkFault) this.recordBreaker('upstream', now);
    const retryable = held ? networkFault : error !== undefined && isRetryableError(this.options.policy, error);
    const step = retryable ? this.retryStep(undefined, code, now) : undefined;
    return step ?? this.giveUp(error ?? new UpstreamTimeoutError('first_token', this.options.firstTokenTimeoutMs));
  }

  /** A `wait` before the next attempt when the policy allows one, else undefined. */
  private retryStep(retryAfter: number | undefined, reason: string, now: number): AttemptStep | undefined {
    const { policy } = this.options;
    const attempt = this.records.length;
    // The model the next attempt will try, as the breaker stands once this failure is recorded; it
    // is chosen again when that attempt starts, which only differs if another request changed a
    // cooldown during the wait. Not worked out (nor the plan built) when no attempt is left.
    const next = attempt < policy.maxAttempts ? this.nextModel(now) : this.model;
    const verdict: RetryVerdict = nextAttempt(policy, attempt, now - this.options.startedAt, retryAfter, next === this.model, this.random);
    if (!verdict.retry) return undefined;
    this.records[attempt - 1]!.retry = { to: next, reason, waitMs: verdict.waitMs };
    this.failed = this.model;
    this.phase = 'waiting';
    return { kind: 'wait', ms: verdict.waitMs };
  }

  private nextModel(now: number): string | undefined {
    if (this.options.plan === undefined) return this.model;
    return attemptModels(this.routePlan().models, this.model, this.options.cooldowns, this.options.credential, now)[0];
  }

  private routePlan(): AttemptPlan {
    return (this.plan ??= this.options.plan!());
  }

  /** The current attempt's outcome (a later one for the same attempt, such as a first-token timeout after a 200, replaces it). */
  private settle(outcome: number | string, now: number): void {
    const record = this.records[this.records.length - 1]!;
    record.outcome = outcome;
    record.durationMs = now - record.sentAt;
  }

  /** Records the current attempt's outcome in the breaker (routed requests only) and frees its probe. */
  private recordBreaker(outcome: FailureScope | 'success', now: number): void {
    const model = this.model;
    if (this.breaker && model !== undefined) {
      const { cooldowns, credential } = this.options;
      if (outcome === 'success') cooldowns.recordSuccess(model, credential);
      else cooldowns.recordFailure(model, credential, outcome, now);
    }
    this.release();
  }

  private giveUp(error: SignalboxError): AttemptStep {
    this.release();
    this.phase = 'done';
    return { kind: 'give_up', error };
  }

  /** A driver that reports out of order has a bug: fail loudly rather than guess. */
  private expect(phase: Phase, call: string): void {
    if (this.phase !== phase) throw new InternalError({ cause: new Error(`AttemptMachine: ${call} in phase ${this.phase}`) });
  }
}
