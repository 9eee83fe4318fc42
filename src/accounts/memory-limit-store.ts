import type { AdmitResult, Admission, LimitResult, LimitState, LimitStore, LimitTake, ReserveRelease, SpendCharge, SpendEntry } from './limit-store.js';

/**
 * Rate limits in process memory (the embedded default; src/accounts/limit-store.ts): GCRA, the
 * generic cell rate algorithm (https://en.wikipedia.org/wiki/Generic_cell_rate_algorithm, as
 * redis-cell and the `throttled` library use it). Why GCRA rather than a sliding window: one number
 * per bucket (its theoretical arrival time, TAT) instead of a log of timestamps or two windows'
 * counts, O(1) per take, exact Retry-After, and the same arithmetic fits in one Redis Lua script
 * (s1), so both stores answer alike.
 *
 * A bucket of `limit` units per `periodMs` emits one unit every `periodMs / limit` ms and lets a
 * full period's worth through at once (burst = limit): a request of `cost` units moves the TAT
 * from max(TAT, now) by `cost` emission intervals, and is allowed when the new TAT is at most one
 * period ahead of now.
 *
 * Bound: one entry per bucket key that took something and is not full again. Keys name configured
 * keys and teams (src/accounts/rate-limit.ts), so their number is bounded by the keys file; a
 * bucket whose TAT has passed is full, the same as absent, and is dropped by a sweep that runs at
 * most once per SWEEP_INTERVAL_MS of the injected clock (docs/bounds.md).
 */

/** How often, in the clock's ms, full buckets are swept out: a minute, the period of rpm and tpm. */
export const SWEEP_INTERVAL_MS = 60_000;

export class MemoryLimitStore implements LimitStore {
  /** Bucket key -> theoretical arrival time (ms of the caller's clock). */
  private readonly tats = new Map<string, number>();
  private lastSweep = Number.NEGATIVE_INFINITY;

  /** Buckets held (tests and docs/bounds.md). */
  get size(): number {
    return this.tats.size;
  }

  /** Checks every take first, then writes them all: synchronous, so no other take can run between. */
  take(takes: readonly LimitTake[], now: number): LimitResult {
    this.sweep(now);
    const states: LimitState[] = [];
    const next: number[] = [];
    let refused: LimitState | undefined;
    let retryAfterMs = 0;
    for (const take of takes) {
      const interval = take.periodMs / take.limit;
      const from = Math.max(this.tats.get(take.key) ?? now, now);
      const tat = from + take.cost * interval;
      const ahead = tat - now;
      if (ahead > take.periodMs) {
        // Refused: the state as it is now (nothing taken), and when this take would fit.
        const state = stateOf(take, from - now, interval);
        states.push(state);
        const wait = ahead - take.periodMs;
        if (refused === undefined) refused = state;
        if (wait > retryAfterMs) retryAfterMs = wait;
        next.push(Number.NaN);
      } else {
        states.push(stateOf(take, ahead, interval));
        next.push(tat);
      }
    }
    if (refused !== undefined) {
      // Nothing is taken: every state is the bucket as it is now (LimitState.remaining).
      const current = takes.map((take) => stateOf(take, Math.max((this.tats.get(take.key) ?? now) - now, 0), take.periodMs / take.limit));
      return { allowed: false, states: current, refused: current[states.indexOf(refused)]!, retryAfterMs };
    }
    for (let i = 0; i < takes.length; i++) this.tats.set(takes[i]!.key, next[i]!);
    return { allowed: true, states };
  }

  /** Moves the bucket's TAT by `delta` units; it never goes below now (a bucket holds at most `limit`). */
  adjust(key: string, limit: number, periodMs: number, delta: number, now: number): void {
    const tat = Math.max(this.tats.get(key) ?? now, now) + delta * (periodMs / limit);
    if (tat <= now) this.tats.delete(key);
    else this.tats.set(key, tat);
  }

  // WORK IN PROGRESS (issue 16 budgets): replaced by the store's implementation before it lands.
  admit(_admission: Admission, _now: number): AdmitResult {
    throw new Error('admit: not built yet');
  }

  settle(_release: readonly ReserveRelease[], _charges: readonly SpendCharge[], _now: number): void {
    throw new Error('settle: not built yet');
  }

  spend(_prefix: string, _now: number): SpendEntry[] {
    throw new Error('spend: not built yet');
  }

  resetSpend(_keys: readonly string[]): void {
    throw new Error('resetSpend: not built yet');
  }

  async close(): Promise<void> {
    this.tats.clear();
  }

  private sweep(now: number): void {
    if (now - this.lastSweep < SWEEP_INTERVAL_MS) return;
    this.lastSweep = now;
    for (const [key, tat] of this.tats) if (tat <= now) this.tats.delete(key);
  }
}

/** `ahead`: how far the bucket's TAT is past now (0: full). */
function stateOf(take: LimitTake, ahead: number, interval: number): LimitState {
  return {
    key: take.key,
    limit: take.limit,
    // The epsilon: a tpm's interval (60000 / 100000 = 0.6) is not exact in binary, and 2.9999999 units left are 3.
    remaining: Math.max(0, Math.floor((take.periodMs - ahead) / interval + 1e-9)),
    resetMs: Math.max(0, ahead),
  };
}
