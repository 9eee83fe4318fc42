import type { AdmitResult, Admission, LimitResult, LimitState, LimitStore, LimitTake, ReserveRelease, SpendCharge, SpendEntry, UserTouch } from './limit-store.js';

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
 * keys and teams (src/accounts/rate-limit.ts), so their number is bounded by the keys file, and end
 * users of keys with `users:` limits (one bucket per end user that sent in the last period); a
 * bucket whose TAT has passed is full, the same as absent, and is dropped by a sweep that runs at
 * most once per SWEEP_INTERVAL_MS of the injected clock (docs/bounds.md).
 *
 * Spend counters (src/accounts/spend.ts) live here too, for budgets: one per key, team and model
 * and day or month (bounded by the keys file and the catalog, kept SPEND_HISTORY_DAYS past their
 * period), and per end user (at most MAX_USERS_PER_KEY per key: the least recently seen is
 * evicted with its counters). Expired counters are swept like full buckets.
 */

/** How often, in the clock's ms, full buckets are swept out: a minute, the period of rpm and tpm. */
export const SWEEP_INTERVAL_MS = 60_000;

/** The spend of a MemoryLimitStore as written to DATA_DIR (JSON). */
export interface SpendSnapshot {
  readonly version: 1;
  /** [counter key, spent nano-USD, expires at (ms since the epoch)]. */
  readonly counters: readonly (readonly [string, number, number])[];
  /** [key's set (`us:<key>`), its end users, least recently seen first]. */
  readonly users: readonly (readonly [string, readonly string[]])[];
}

/** Longest counter key or end user id a snapshot entry may hold: a user id is at most 256 characters, a model id 256, a key name 64. */
const MAX_SNAPSHOT_KEY_CHARS = 1024;

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** A count of nano-USD or milliseconds: a non-negative safe integer. */
function isAmount(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

/** A spend counter (src/accounts/spend.ts), nano-USD. */
interface Counter {
  spent: number;
  reserved: number;
  /** When it may be forgotten, ms of the caller's clock. */
  expireAt: number;
}

export class MemoryLimitStore implements LimitStore {
  /** Bucket key -> theoretical arrival time (ms of the caller's clock). */
  private readonly tats = new Map<string, number>();
  /** Spend counter key -> its balance. */
  private readonly counters = new Map<string, Counter>();
  /** Per key (`us:<key>`), its end users by last seen: a Set keeps insertion order, so the first is the least recently seen. */
  private readonly users = new Map<string, Set<string>>();
  private lastSweep = Number.NEGATIVE_INFINITY;
  /** Bumped by every change of spend (settle, reset, an end user evicted): a snapshot is due when it moved. */
  version = 0;

  /** Buckets held (tests and docs/bounds.md). */
  get size(): number {
    return this.tats.size;
  }

  /** Same as `admit` with takes only. */
  take(takes: readonly LimitTake[], now: number): LimitResult {
    return this.admit({ takes, reserves: [], reads: [] }, now).limits;
  }

  /**
   * The takes' outcome, nothing written: allowed with the states after the takes (and the new TATs
   * to write), or refused with the states as they are now. `current`: the states as they are now,
   * whatever the outcome.
   */
  private takeLimits(takes: readonly LimitTake[], now: number, current: boolean): LimitResult & { readonly tats?: readonly number[] } {
    const states: LimitState[] = [];
    const tats: number[] = [];
    let refused: LimitState | undefined;
    let retryAfterMs = 0;
    for (const take of takes) {
      const interval = take.periodMs / take.limit;
      const from = Math.max(this.tats.get(take.key) ?? now, now);
      const tat = from + take.cost * interval;
      const over = tat - now - take.periodMs;
      if (current || over > EPS) {
        const state = stateOf(take, from - now, interval);
        states.push(state);
        if (over > EPS) {
          if (refused === undefined) refused = state;
          retryAfterMs = Math.max(retryAfterMs, over);
        }
      } else {
        states.push(stateOf(take, tat - now, interval));
        tats.push(tat);
      }
    }
    if (refused === undefined) return current ? { allowed: true, states } : { allowed: true, states, tats };
    // Refused: nothing is taken, every state is the bucket as it is now (LimitState.remaining).
    if (!current) return this.takeLimits(takes, now, true);
    return { allowed: false, states, refused, retryAfterMs: Math.ceil(retryAfterMs - EPS) };
  }

  /** Writes the TATs an allowed result was computed with. */
  private commitTakes(takes: readonly LimitTake[], limits: { readonly tats?: readonly number[] }): void {
    const tats = limits.tats ?? [];
    for (let i = 0; i < takes.length; i++) this.tats.set(takes[i]!.key, tats[i]!);
  }

  /** Moves the bucket's TAT by `delta` units; it never goes below now (a bucket holds at most `limit`). */
  adjust(key: string, limit: number, periodMs: number, delta: number, now: number): void {
    const tat = Math.max(this.tats.get(key) ?? now, now) + delta * (periodMs / limit);
    if (tat <= now) this.tats.delete(key);
    else this.tats.set(key, tat);
  }

  /**
   * The whole admission in one synchronous step (no other admission can run between its checks
   * and its writes): reads first (balances before), then the rate limits, then the reservations,
   * then every write or none, then the end user, only when admitted.
   */
  admit(admission: Admission, now: number): AdmitResult {
    this.sweep(now);
    const balances = admission.reads.map((key) => this.balance(key, now));
    const { tats, ...limits } = this.takeLimits(admission.takes, now, false);
    if (!limits.allowed) return { limits, budget: undefined, balances };
    for (const reserve of admission.reserves) {
      if (reserve.amountNano === 0) continue;
      const { spentNano, reservedNano } = this.balance(reserve.key, now);
      if (spentNano + reservedNano + reserve.amountNano > reserve.capNano) {
        // Nothing taken: the limits' states as they are now.
        return { limits: this.takeLimits(admission.takes, now, true), budget: { key: reserve.key, capNano: reserve.capNano, spentNano, reservedNano }, balances };
      }
    }
    this.commitTakes(admission.takes, { tats });
    for (const reserve of admission.reserves) {
      if (reserve.amountNano === 0) continue;
      const counter = this.counter(reserve.key, reserve.expireAt, now);
      counter.reserved += reserve.amountNano;
    }
    if (admission.user !== undefined) this.touchUser(admission.user);
    return { limits, budget: undefined, balances };
  }

  settle(release: readonly ReserveRelease[], charges: readonly SpendCharge[], now: number): void {
    for (const { key, amountNano } of release) {
      const counter = this.live(key, now);
      if (counter === undefined) continue;
      counter.reserved = Math.max(0, counter.reserved - amountNano);
      this.dropIfEmpty(key, counter);
    }
    for (const { key, amountNano, expireAt } of charges) {
      const counter = this.counter(key, expireAt, now);
      counter.spent = Math.max(0, counter.spent + amountNano);
      this.dropIfEmpty(key, counter);
    }
    this.version++;
  }

  spend(prefix: string, now: number): SpendEntry[] {
    const entries: SpendEntry[] = [];
    for (const [key, counter] of this.counters) {
      if (key.startsWith(prefix) && counter.expireAt > now) entries.push({ key, spentNano: counter.spent, reservedNano: counter.reserved });
    }
    return entries;
  }

  resetSpend(keys: readonly string[]): void {
    for (const key of keys) {
      const counter = this.counters.get(key);
      if (counter === undefined) continue;
      counter.spent = 0;
      this.dropIfEmpty(key, counter);
    }
    this.version++;
  }

  async close(): Promise<void> {
    this.tats.clear();
  }

  /**
   * The spend as a plain JSON value (src/accounts/spend-snapshots.ts writes it to DATA_DIR): every
   * live counter's spent amount and expiry, and each key's end users, least recently seen first.
   * Reservations are not in it: the requests holding them end with the process.
   */
  snapshot(now: number): SpendSnapshot {
    const counters: [string, number, number][] = [];
    for (const [key, counter] of this.counters) if (counter.spent > 0 && counter.expireAt > now) counters.push([key, counter.spent, counter.expireAt]);
    const users: [string, string[]][] = [];
    for (const [setKey, members] of this.users) users.push([setKey, [...members]]);
    return { version: 1, counters, users };
  }

  /**
   * Loads a snapshot (a file: possibly corrupt or hostile), adding its spend to what the store
   * holds. Entries that are not well formed, or have expired, are skipped and counted.
   */
  restore(value: unknown, now: number): { loaded: number; skipped: number } {
    let loaded = 0;
    let skipped = 0;
    if (!isRecord(value) || value.version !== 1) throw new Error('not a version 1 spend snapshot');
    const counters = Array.isArray(value.counters) ? value.counters : [];
    for (const entry of counters) {
      if (Array.isArray(entry) && entry.length === 3 && typeof entry[0] === 'string' && entry[0].length <= MAX_SNAPSHOT_KEY_CHARS
        && isAmount(entry[1]) && isAmount(entry[2]) && entry[2] > now) {
        const counter = this.counter(entry[0], entry[2], now);
        counter.spent += entry[1];
        loaded++;
      } else {
        skipped++;
      }
    }
    const users = Array.isArray(value.users) ? value.users : [];
    for (const entry of users) {
      if (Array.isArray(entry) && entry.length === 2 && typeof entry[0] === 'string' && Array.isArray(entry[1])) {
        const members = this.users.get(entry[0]) ?? new Set<string>();
        for (const member of entry[1]) if (typeof member === 'string' && member.length <= MAX_SNAPSHOT_KEY_CHARS) members.add(member);
        this.users.set(entry[0], members);
        loaded++;
      } else {
        skipped++;
      }
    }
    return { loaded, skipped };
  }

  /** Spend counters held (tests and docs/bounds.md). */
  get counterCount(): number {
    return this.counters.size;
  }

  private sweep(now: number): void {
    if (now - this.lastSweep < SWEEP_INTERVAL_MS) return;
    this.lastSweep = now;
    for (const [key, tat] of this.tats) if (tat <= now) this.tats.delete(key);
    for (const [key, counter] of this.counters) if (counter.expireAt <= now) this.counters.delete(key);
  }

  /** A counter's balance; 0, 0 when absent or expired. */
  private balance(key: string, now: number): { spentNano: number; reservedNano: number } {
    const counter = this.live(key, now);
    return counter === undefined ? { spentNano: 0, reservedNano: 0 } : { spentNano: counter.spent, reservedNano: counter.reserved };
  }

  private live(key: string, now: number): Counter | undefined {
    const counter = this.counters.get(key);
    if (counter === undefined) return undefined;
    if (counter.expireAt > now) return counter;
    this.counters.delete(key);
    return undefined;
  }

  /** The live counter, made when absent; its expiry only moves later. */
  private counter(key: string, expireAt: number, now: number): Counter {
    let counter = this.live(key, now);
    if (counter === undefined) {
      counter = { spent: 0, reserved: 0, expireAt };
      this.counters.set(key, counter);
    } else if (expireAt > counter.expireAt) {
      counter.expireAt = expireAt;
    }
    return counter;
  }

  /** A counter at 0, 0 is the same as none. */
  private dropIfEmpty(key: string, counter: Counter): void {
    if (counter.spent === 0 && counter.reserved === 0) this.counters.delete(key);
  }

  /** Records the end user as seen now; past `max`, the least recently seen are forgotten with their counters. */
  private touchUser(user: UserTouch): void {
    let members = this.users.get(user.setKey);
    if (members === undefined) {
      members = new Set();
      this.users.set(user.setKey, members);
    }
    members.delete(user.member);
    members.add(user.member);
    while (members.size > user.max) {
      const oldest = members.values().next().value as string;
      members.delete(oldest);
      for (const suffix of user.counterSuffixes) this.counters.delete(user.counterPrefix + oldest + suffix);
      this.version++;
    }
  }
}

/**
 * Slack for floating-point error in milliseconds, as in the Redis script: TATs are sums of
 * fractional intervals (60000 / 7) at the scale of epoch milliseconds, so `limit` takes of 1 can
 * land a few ulps over periodMs and must still fit.
 */
const EPS = 1e-6;

/**
 * `ahead`: how far the bucket's TAT is past now (0: full). `remaining` is floored, `resetMs` rounded
 * up to whole milliseconds, as the Redis store answers (test/support/limit-store-contract.ts).
 */
function stateOf(take: LimitTake, ahead: number, interval: number): LimitState {
  return {
    key: take.key,
    limit: take.limit,
    remaining: Math.max(0, Math.floor((take.periodMs - ahead) / interval + EPS)),
    resetMs: Math.max(0, Math.ceil(ahead - EPS)),
  };
}
