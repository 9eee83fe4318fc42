/**
 * Where the accounts' state lives (issue 16, items 3-5): rate-limit buckets and spend counters,
 * in process memory by default, in Redis with REDIS_URL so that limits and budgets hold across
 * replicas. One call (`admit`) checks and takes every rate limit and reserves every budget that
 * applies to a request, atomically: either all are taken and reserved or none is.
 *
 * Spend is kept in integer nano-USD (1e-9 USD): a sum of many small costs stays exact, budgets
 * compare exactly, and Redis adds integers (HINCRBY) without float drift. 2^53 nano-USD is
 * 9 million USD, far above any one counter. Counter keys are built and parsed by src/accounts/spend.ts.
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

/**
 * A budget a request reserves its worst-case cost against: the counter `key`
 * (`sp:key:alice:d:2026-11-30`), its cap, and what this request reserves. It fits when
 * `amountNano` is 0 (a free request is never refused, whatever was spent) or when
 * `spent + reserved + amountNano <= capNano`.
 */
export interface BudgetReserve {
  readonly key: string;
  readonly capNano: number;
  readonly amountNano: number;
  /** When the counter may be forgotten, ms since the epoch (its period's end plus the history kept). */
  readonly expireAt: number;
}

/**
 * The end user a request is for (USER_SOURCE), under its key: `member` is recorded as seen now
 * in the key's set `setKey`; when the set then holds more than `max` members, the least recently
 * seen are evicted and their counters (`counterPrefix + member + suffix` for each suffix) deleted,
 * so a client cannot mint unlimited end users (each with a fresh budget) under one key.
 */
export interface UserTouch {
  readonly setKey: string;
  readonly member: string;
  readonly max: number;
  readonly counterPrefix: string;
  readonly counterSuffixes: readonly string[];
}

/** Everything one request asks of the store before it is sent, done atomically. */
export interface Admission {
  /** Rate limits to take (all or none). */
  readonly takes: readonly LimitTake[];
  /** Budgets to reserve against (all or none; only when every take fits). */
  readonly reserves: readonly BudgetReserve[];
  /** Counters whose balances to return (rules read `budget.*`): as they were before this admission. */
  readonly reads: readonly string[];
  /** The end user to record as seen, when the request names one. */
  readonly user?: UserTouch | undefined;
}

/** A spend counter: what was settled, and what requests in flight hold reserved. */
export interface Balance {
  readonly spentNano: number;
  readonly reservedNano: number;
}

/** The budget that refused a request: its counter and balance before the request. */
export interface BudgetRefusal extends Balance {
  readonly key: string;
  readonly capNano: number;
}

/**
 * What `admit` did. `limits` refused: nothing taken, nothing reserved (`budget` undefined).
 * `limits` allowed but `budget` set: the first budget that could not hold its reservation refused
 * the request, and nothing was taken or reserved either (the limits' states are then as they are
 * now). Neither: every take taken, every reservation held. `balances`: one per `reads`, before
 * this admission, whatever the outcome (a counter never written reads 0, 0). The user was
 * touched (`Admission.user`) only when the request was admitted.
 */
export interface AdmitResult {
  readonly limits: LimitResult;
  readonly budget: BudgetRefusal | undefined;
  readonly balances: readonly Balance[];
}

/** A reservation given back once the request's real cost is known. */
export interface ReserveRelease {
  readonly key: string;
  readonly amountNano: number;
}

/** Spend added to a counter (`amountNano` may be negative: a reconciled cost below the provisional one). */
export interface SpendCharge {
  readonly key: string;
  readonly amountNano: number;
  readonly expireAt: number;
}

/** A counter as the admin API lists it. */
export interface SpendEntry extends Balance {
  readonly key: string;
}

export interface LimitStore {
  /** Takes `cost` from every bucket, or from none when any would go over its limit. `now` in ms. Same as `admit` with takes only. */
  take(takes: readonly LimitTake[], now: number): Promise<LimitResult> | LimitResult;
  /** The request's rate limits, budget reservations, balance reads and end user, in one atomic step. */
  admit(admission: Admission, now: number): Promise<AdmitResult> | AdmitResult;
  /** Corrects a token bucket once the real count is known (`delta` may be negative). */
  adjust(key: string, limit: number, periodMs: number, delta: number, now: number): Promise<void> | void;
  /**
   * Settles a request, off its path: gives back its reservations (never below 0) and adds its
   * spend to every counter it counts in (a counter's spent never goes below 0 either).
   */
  settle(release: readonly ReserveRelease[], charges: readonly SpendCharge[], now: number): Promise<void> | void;
  /** Every spend counter whose key starts with `prefix` (e.g. `sp:`), for the admin API; not on a request's path. */
  spend(prefix: string, now: number): Promise<SpendEntry[]> | SpendEntry[];
  /** Sets the spent amount of these counters to 0 (reservations in flight are kept): the admin API's reset. */
  resetSpend(keys: readonly string[]): Promise<void> | void;
  close(): Promise<void>;
}
