/**
 * Who a request comes from, once client authentication admitted it (issue 16): the key that
 * matched, with what the keys file says about it. The request path reads it from the exchange
 * (`request.exchange.caller`); rules read it as `key.*`; limits and budgets are kept per key,
 * per team and per end user.
 */

/** Requests and tokens per minute; either may be absent (no limit). */
export interface RateLimits {
  readonly rpm?: number;
  readonly tpm?: number;
}

/** Spend caps in USD per UTC (or configured) day and month; either may be absent. */
export interface Budgets {
  readonly dailyUsd?: number;
  readonly monthlyUsd?: number;
}

export interface TeamPolicy extends RateLimits, Budgets {
  readonly name: string;
}

/** What each end user of a key (USER_SOURCE) may send and spend: the keys file's `users:`, the key's own or the file's. */
export type UserPolicy = RateLimits & Budgets;

export interface Caller {
  /** The key's name in the keys file (`key-1`, `key-2`... for the flat SIGNALBOX_API_KEYS list). */
  readonly name: string;
  readonly tier: string | undefined;
  readonly team: TeamPolicy | undefined;
  /** Custom fields of the key (`key.<field>` in rules): strings, numbers or booleans. */
  readonly meta: Readonly<Record<string, string | number | boolean>>;
  /** Model allow-list: exact ids or `provider/*`; undefined: any model. */
  readonly models: readonly string[] | undefined;
  readonly limits: RateLimits;
  readonly budgets: Budgets;
  /** Each end user's limits and budgets under this key; undefined: none (their spend is still kept). */
  readonly users: UserPolicy | undefined;
}
