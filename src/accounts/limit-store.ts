/**
 * Where rate-limit state lives (issue 16, item 4): in process memory by default, in Redis with
 * REDIS_URL so that limits hold across replicas. One call checks and takes every limit that
 * applies to a request, atomically: either all are taken or none is.
 */

/** One limit to take from: a bucket named by `key` (e.g. `rl:key:alice:rpm`), `limit` per `periodMs`. */
export interface LimitTake {
  readonly key: string;
  /** Units allowed per period (requests, or tokens). */
  readonly limit: number;
  readonly periodMs: number;
  /** Units this request takes (1 for requests; the token estimate for tokens). */
  readonly cost: number;
}

export interface LimitState {
  readonly key: string;
  readonly limit: number;
  /** Units left after this request (or now, when refused). */
  readonly remaining: number;
  /** Milliseconds until the bucket is full again. */
  readonly resetMs: number;
}

export type LimitResult =
  | { readonly allowed: true; readonly states: readonly LimitState[] }
  | { readonly allowed: false; readonly states: readonly LimitState[]; /** The first refusing limit. */ readonly refused: LimitState; readonly retryAfterMs: number };

export interface LimitStore {
  /** Takes `cost` from every bucket, or from none when any would go over its limit. `now` in ms. */
  take(takes: readonly LimitTake[], now: number): Promise<LimitResult> | LimitResult;
  /** Corrects a token bucket once the real count is known (`delta` may be negative). */
  adjust(key: string, limit: number, periodMs: number, delta: number, now: number): Promise<void> | void;
  close(): Promise<void>;
}
