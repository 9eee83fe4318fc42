import { completionAllowance, conservativePromptTokens } from '../catalog/estimate.js';
import { RateLimitExceededError } from '../errors.js';
import type { Caller } from './caller.js';
import type { LimitState, LimitStore, LimitTake } from './limit-store.js';

/**
 * Rate limits per key and team (issue 16, item 4; docs/keys-and-budgets.md, "Rate limits"): the
 * pure part (which buckets a request takes from, the headers that describe them) and the one step
 * the chat route runs before the classifier and the decision.
 */

/** rpm and tpm are per minute. */
export const RATE_PERIOD_MS = 60_000;

/**
 * The tokens a request is counted for before it is sent: the conservative prompt estimate
 * (src/catalog/estimate.ts) plus its `max_tokens` (or `max_completion_tokens`), else
 * DEFAULT_COMPLETION_TOKENS (4096). Corrected to the real count once the response reports usage.
 */
export function requestTokenEstimate(body: unknown): number {
  return conservativePromptTokens(body) + completionAllowance(body);
}

/**
 * The buckets a request of `caller` takes from, in this order: key rpm, key tpm, team rpm, team
 * tpm (only the limits that are set). Bucket keys are `rl:key:<name>:rpm` and the like: names are
 * `[A-Za-z0-9_.-]`, so no two buckets share a key. A token estimate above a whole tpm takes the
 * whole bucket instead of being refused forever: it goes through when the bucket is full, and the
 * real count (adjust) then puts the bucket as far in debt as it used.
 */
export function rateLimitTakes(caller: Caller, tokens: number): LimitTake[] {
  const takes: LimitTake[] = [];
  addTakes(takes, `rl:key:${caller.name}`, caller.limits.rpm, caller.limits.tpm, tokens);
  const team = caller.team;
  if (team !== undefined) addTakes(takes, `rl:team:${team.name}`, team.rpm, team.tpm, tokens);
  return takes;
}

function addTakes(takes: LimitTake[], prefix: string, rpm: number | undefined, tpm: number | undefined, tokens: number): void {
  if (rpm !== undefined) takes.push({ key: `${prefix}:rpm`, limit: rpm, periodMs: RATE_PERIOD_MS, cost: 1 });
  if (tpm !== undefined) takes.push({ key: `${prefix}:tpm`, limit: tpm, periodMs: RATE_PERIOD_MS, cost: Math.min(tokens, tpm) });
}

function isTokenBucket(key: string): boolean {
  return key.endsWith(':tpm');
}

/** `rl:team:research:tpm` -> `tokens per minute of team research`: for the 429's message. */
export function limitDescription(key: string): string {
  const [, kind, name, unit] = key.split(':');
  return `${unit === 'tpm' ? 'tokens' : 'requests'} per minute of ${kind} ${name}`;
}

/**
 * A duration as OpenAI writes `x-ratelimit-reset-requests` (`1s`, `6m0s`, `120ms`), so that a
 * client that reads OpenAI's headers reads these the same way with another prefix.
 */
export function resetDuration(ms: number): string {
  if (ms < 1000) return `${Math.ceil(ms)}ms`;
  const minutes = Math.floor(ms / 60_000);
  const seconds = Math.round((ms - minutes * 60_000)) / 1000;
  return minutes > 0 ? `${minutes}m${seconds}s` : `${seconds}s`;
}

/**
 * `x-signalbox-ratelimit-{limit,remaining,reset}-{requests,tokens}` for the tightest limit of each
 * unit (the fewest units left; on a tie, the one that takes longer to refill).
 */
export function rateLimitHeaders(states: readonly LimitState[]): Record<string, string> {
  let requests: LimitState | undefined;
  let tokens: LimitState | undefined;
  for (const state of states) {
    if (isTokenBucket(state.key)) tokens = tighter(tokens, state);
    else requests = tighter(requests, state);
  }
  const headers: Record<string, string> = {};
  if (requests !== undefined) setHeaders(headers, 'requests', requests);
  if (tokens !== undefined) setHeaders(headers, 'tokens', tokens);
  return headers;
}

function tighter(a: LimitState | undefined, b: LimitState): LimitState {
  if (a === undefined || b.remaining < a.remaining) return b;
  return b.remaining === a.remaining && b.resetMs > a.resetMs ? b : a;
}

function setHeaders(headers: Record<string, string>, unit: 'requests' | 'tokens', state: LimitState): void {
  headers[`x-signalbox-ratelimit-limit-${unit}`] = String(state.limit);
  headers[`x-signalbox-ratelimit-remaining-${unit}`] = String(state.remaining);
  headers[`x-signalbox-ratelimit-reset-${unit}`] = resetDuration(state.resetMs);
}

/**
 * The token estimate a request took, corrected once its real count is known: on the record, after
 * the response (src/server/recorder.ts), never on the request's path.
 */
export class TokenCharge {
  constructor(
    private readonly store: LimitStore,
    /** The token takes of the request (their `cost` is what was taken). */
    private readonly takes: readonly LimitTake[],
    private readonly clock: () => number,
  ) {}

  /** `realTokens`: prompt plus completion as the upstream reported them. A store's failure is `onError`'s. */
  settle(realTokens: number, onError: (err: unknown) => void): void {
    const now = this.clock();
    for (const take of this.takes) {
      const delta = realTokens - take.cost;
      if (delta === 0) continue;
      try {
        const pending = this.store.adjust(take.key, take.limit, take.periodMs, delta, now);
        if (pending !== undefined) pending.catch(onError);
      } catch (err) {
        onError(err);
      }
    }
  }
}

/** What the limit step gives the route: headers for the response, and the refusal or the charge to settle. */
export type RateLimitOutcome =
  | { readonly headers: Record<string, string>; readonly refusal: RateLimitExceededError; readonly retryAfterSeconds: number }
  | { readonly headers: Record<string, string>; readonly refusal: undefined; readonly charge: TokenCharge | undefined };

/** The store and its clock (injected: tests move time by hand). */
export class RateLimiter {
  constructor(
    readonly store: LimitStore,
    readonly clock: () => number = Date.now,
  ) {}

  /** Takes the request's limits; undefined when the caller has none (nothing is asked of the store). */
  async take(caller: Caller, body: unknown): Promise<RateLimitOutcome | undefined> {
    const limits = caller.limits;
    const team = caller.team;
    if (limits.rpm === undefined && limits.tpm === undefined && team?.rpm === undefined && team?.tpm === undefined) return undefined;
    const takes = rateLimitTakes(caller, requestTokenEstimate(body));
    const result = await this.store.take(takes, this.clock());
    const headers = rateLimitHeaders(result.states);
    if (!result.allowed) {
      const refusal = new RateLimitExceededError(`${limitDescription(result.refused.key)} (${result.refused.limit})`);
      // Retry-After is whole seconds (RFC 9110 §10.2.3): rounded up, so a client that obeys it is not refused again.
      return { headers, refusal, retryAfterSeconds: Math.max(1, Math.ceil(result.retryAfterMs / 1000)) };
    }
    const tokenTakes = takes.filter((take) => isTokenBucket(take.key));
    return { headers, refusal: undefined, charge: tokenTakes.length > 0 ? new TokenCharge(this.store, tokenTakes, this.clock) : undefined };
  }
}
