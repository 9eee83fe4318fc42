import type { SignalboxError } from '../errors.js';
import type { RetryOverride } from '../rules/actions.js';

/**
 * When the proxy tries again: before the first byte reached the client, on a retryable status or
 * a network failure, within a number of attempts and a time budget, honouring Retry-After.
 * Pure functions; the attempt machine (src/upstream/attempts.ts) applies them.
 */

export interface RetryPolicy {
  /** Upstream attempts per request, the first included (1: never retry). */
  readonly maxAttempts: number;
  /** Statuses after which the next attempt is made (402 also counts when it carries Retry-After). */
  readonly statuses: ReadonlySet<number>;
  /** No attempt starts later than this after the request arrived. */
  readonly budgetMs: number;
  /** A Retry-After longer than this is not waited for: the client gets the answer at once. */
  readonly retryAfterCapMs: number;
  /** Retry connection failures and connect/header timeouts too. */
  readonly onNetworkErrors: boolean;
}

/**
 * Merged policies, by base policy then by override. Both keys are long-lived and immutable: the
 * base is the app's (one per app, built once from config), an override is compiled with its rule.
 * Weak on both, so a reload that drops a rule, or an app that closes, takes its entries with it:
 * the cache never holds more than one entry per rule in force (of each live app).
 */
const mergedPolicies = new WeakMap<RetryPolicy, WeakMap<RetryOverride, RetryPolicy>>();

/**
 * The policy of a request whose rule has its own retry settings: what the override sets, over
 * `base`. Built once per (base, override) and then returned as is, so the chat route merges
 * nothing per request.
 */
export function withRetryOverride(base: RetryPolicy, override: RetryOverride): RetryPolicy {
  let byOverride = mergedPolicies.get(base);
  if (byOverride === undefined) {
    byOverride = new WeakMap();
    mergedPolicies.set(base, byOverride);
  }
  let merged = byOverride.get(override);
  if (merged === undefined) {
    merged = Object.freeze({
      ...base,
      ...(override.maxAttempts !== undefined && { maxAttempts: override.maxAttempts }),
      ...(override.statuses !== undefined && { statuses: override.statuses }),
      ...(override.budgetMs !== undefined && { budgetMs: override.budgetMs }),
    });
    byOverride.set(override, merged);
  }
  return merged;
}

/**
 * Milliseconds a response asks to wait, from `retry-after-ms` (OpenAI's, milliseconds),
 * `retry-after` in seconds or as an HTTP date (RFC 9110 §10.2.3); undefined when absent or unreadable.
 */
export function retryAfterMs(headers: Record<string, string | string[] | undefined>, now = Date.now()): number | undefined {
  const ms = first(headers['retry-after-ms']);
  if (ms !== undefined && /^\d+(\.\d+)?$/.test(ms.trim())) return Math.ceil(Number(ms));
  const value = first(headers['retry-after'])?.trim();
  if (value === undefined || value === '') return undefined;
  if (/^\d+$/.test(value)) return Number(value) * 1000;
  // An HTTP date starts with the day's name (IMF-fixdate, RFC 850 and asctime forms alike);
  // anything else ("-5", "soon", "May 2") is unreadable, however lenient Date.parse would be.
  if (!/^(Mon|Tue|Wed|Thu|Fri|Sat|Sun)[a-z]*[, ]/.test(value)) return undefined;
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

function first(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

export function isRetryableStatus(
  policy: RetryPolicy, status: number, headers: Record<string, string | string[] | undefined>, now = Date.now(),
): boolean {
  if (policy.statuses.has(status)) return true;
  // "Payment required" is final, unless the upstream says when to come back.
  return status === 402 && retryAfterMs(headers, now) !== undefined;
}

/**
 * Whether an OpenAI SDK retries a response of this status on its own when no `x-should-retry`
 * says otherwise: 408, 409, 429 and every 5xx (openai-node 6.49 `shouldRetry`,
 * https://github.com/openai/openai-node/blob/v6.49.0/src/client.ts#L1035). The header, when
 * present, wins over the status in that same function.
 */
export function sdkRetriesStatus(status: number): boolean {
  return status === 408 || status === 409 || status === 429 || status >= 500;
}

/** Network failures worth another attempt: nothing was answered (refused, reset, timed out before headers). */
export function isRetryableError(policy: RetryPolicy, error: SignalboxError): boolean {
  return policy.onNetworkErrors && (error.code === 'upstream_unreachable' || error.code === 'upstream_timeout');
}

/** Backoff before trying the same model again: 250 ms, 500 ms, 1 s... with ±20% jitter so clients do not retry in step. */
export function backoffMs(attempt: number, random = Math.random): number {
  const base = 250 * 2 ** Math.max(0, attempt - 1);
  return Math.round(base * (0.8 + 0.4 * random()));
}

export type RetryVerdict =
  | { readonly retry: true; readonly waitMs: number }
  | { readonly retry: false; readonly reason: 'attempts' | 'budget' | 'retry_after_over_cap' | 'final' };

/**
 * Whether attempt `attempt` (1-based, just failed) is followed by another, and after how long.
 * `sameModel`: the next attempt goes to the model that just failed (no fallback left).
 * `random`: the backoff's jitter source (tests inject one).
 */
export function nextAttempt(
  policy: RetryPolicy,
  attempt: number,
  elapsedMs: number,
  retryAfter: number | undefined,
  sameModel: boolean,
  random: () => number = Math.random,
): RetryVerdict {
  if (attempt >= policy.maxAttempts) return { retry: false, reason: 'attempts' };
  if (retryAfter !== undefined && retryAfter > policy.retryAfterCapMs) return { retry: false, reason: 'retry_after_over_cap' };
  const waitMs = Math.max(retryAfter ?? 0, sameModel ? backoffMs(attempt, random) : 0);
  if (elapsedMs + waitMs >= policy.budgetMs) return { retry: false, reason: 'budget' };
  return { retry: true, waitMs };
}
