import { completionAllowance, conservativePromptTokens } from '../catalog/estimate.js';
import { clipText } from '../bounded-text.js';
import type { Caller } from './caller.js';
import type { LimitState, LimitStore, LimitTake } from './limit-store.js';

/**
 * Rate limits per key, team and end user (issue 16, item 4; docs/keys-and-budgets.md, "Rate
 * limits"): which buckets a request takes from, the headers that describe them, and the correction
 * of the token estimate afterwards. The step that takes them is src/accounts/accounts.ts.
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
export function rateLimitTakes(caller: Caller, tokens: number, user?: string): LimitTake[] {
  const takes: LimitTake[] = [];
  addTakes(takes, `rl:key:${caller.name}`, caller.limits.rpm, caller.limits.tpm, tokens);
  const team = caller.team;
  if (team !== undefined) addTakes(takes, `rl:team:${team.name}`, team.rpm, team.tpm, tokens);
  // `rl:user:<key>:<end user>:rpm`: the end user's id may hold `:`, the key's name never does.
  if (user !== undefined && caller.users !== undefined) addTakes(takes, `rl:user:${caller.name}:${user}`, caller.users.rpm, caller.users.tpm, tokens);
  return takes;
}

/** Whether a caller has any rate limit: when not, a request takes nothing. */
export function hasRateLimits(caller: Caller, user: string | undefined): boolean {
  const { limits, team, users } = caller;
  return limits.rpm !== undefined || limits.tpm !== undefined || team?.rpm !== undefined || team?.tpm !== undefined
    || (user !== undefined && (users?.rpm !== undefined || users?.tpm !== undefined));
}

function addTakes(takes: LimitTake[], prefix: string, rpm: number | undefined, tpm: number | undefined, tokens: number): void {
  if (rpm !== undefined) takes.push({ key: `${prefix}:rpm`, limit: rpm, periodMs: RATE_PERIOD_MS, cost: 1 });
  if (tpm !== undefined) takes.push({ key: `${prefix}:tpm`, limit: tpm, periodMs: RATE_PERIOD_MS, cost: Math.min(tokens, tpm) });
}

export function isTokenBucket(key: string): boolean {
  return key.endsWith(':tpm');
}

/** `rl:team:research:tpm` -> `tokens per minute of team research`: for the 429's message. */
export function limitDescription(key: string): string {
  const parts = key.split(':');
  const unit = parts.at(-1) === 'tpm' ? 'tokens' : 'requests';
  // An end user's id is the client's text: clipped, and it may hold `:`.
  const who = parts[1] === 'user' ? `end user ${clipText(parts.slice(3, -1).join(':'), 64)} of key ${parts[2]}` : `${parts[1]} ${parts[2]}`;
  return `${unit} per minute of ${who}`;
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
