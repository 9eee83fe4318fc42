import type { IncomingHttpHeaders } from 'node:http';
import type { Catalog } from '../catalog/catalog.js';
import { InsufficientQuotaError, RateLimitExceededError, type SignalboxError } from '../errors.js';
import { budgetDescription, budgetFields, budgetReserves, reservationNano, spendCharges, spendLines, userTouch, type BudgetFields, type BudgetOptions, type SpendLine, type UserSource } from './budget.js';
import type { Caller } from './caller.js';
import type { Admission, LimitStore, LimitTake } from './limit-store.js';
import { hasRateLimits, isTokenBucket, limitDescription, rateLimitHeaders, rateLimitTakes, requestTokenEstimate, TokenCharge } from './rate-limit.js';
import type { PeriodClock, SpendPeriods } from './spend.js';

/**
 * The account step of a request with a caller (issue 16): its rate limits, its budgets and the
 * rules' spend fields, asked of the store (memory or Redis) in as few round trips as the rules
 * allow, and what is settled after the response.
 *
 * The usual request makes ONE `admit` call, after the decision, before anything is sent: it takes
 * the rate limits and reserves the routed model's worst-case cost against every budget, atomically.
 * A request whose rules read `budget.*` (or call a classifier over the network) makes two: the
 * rate limits (with the balances the rules read) before the classifier and the decision, so that a
 * limited caller never costs a classifier call and the rules see the balances; then the
 * reservation once the decision named the model. The rate-limit units of a request its budget then
 * refuses stay taken (its tokens are given back when it is recorded).
 */

export interface AccountsOptions extends BudgetOptions {
  /** BUDGET_TIMEZONE's days and months. */
  readonly periods: PeriodClock;
  /** USER_SOURCE, compiled; undefined: no end users. */
  readonly userSource: UserSource | undefined;
}

/** One request's account: who, for which end user, in which counters. Built once per request. */
export interface AccountRequest {
  readonly caller: Caller;
  readonly user: string | undefined;
  readonly periods: SpendPeriods;
  readonly lines: readonly SpendLine[];
  readonly body: unknown;
}

/** What one step asks: take the rate limits, read the balances, reserve for these models. */
export interface AccountStep {
  readonly limits: boolean;
  readonly reads: boolean;
  /**
   * The models the upstream may run (routed first), and for a cascade the models of each tier it may
   * escalate to (each a paid answer: their worst cases add up); absent: nothing reserved in this step.
   */
  readonly reserveFor?: { readonly models: readonly string[]; readonly laterSteps?: readonly (readonly string[])[]; readonly catalog: Catalog | undefined } | undefined;
}

export interface AccountOutcome {
  /** The rate-limit headers for the response (empty when no limit was taken). */
  readonly headers: Record<string, string>;
  /** Set when the request is refused: by a rate limit (with `retryAfterSeconds`) or a budget. */
  readonly refusal: SignalboxError | undefined;
  readonly retryAfterSeconds: number | undefined;
  /** The token estimate taken, to settle to the real count. */
  readonly tokenCharge: TokenCharge | undefined;
  /** The rules' spend fields, when the step read them. */
  readonly fields: BudgetFields | undefined;
  /** What is settled after the response, when the step reserved (the request's last step). */
  readonly settlement: SpendSettlement | undefined;
}

export class Accounts {
  constructor(
    readonly store: LimitStore,
    private readonly options: AccountsOptions,
    /** ms since the epoch; injected by tests. */
    readonly clock: () => number = Date.now,
  ) {}

  /** The request's account. Throws a 400 `invalid_user` for an end user id that is no string or too long. */
  open(caller: Caller, body: Readonly<Record<string, unknown>>, headers: IncomingHttpHeaders): AccountRequest {
    const user = this.options.userSource?.(body, headers);
    const periods = this.options.periods.at(this.clock());
    return { caller, user, periods, lines: spendLines(caller, user, periods, this.options), body };
  }

  async admit(account: AccountRequest, step: AccountStep): Promise<AccountOutcome> {
    const { caller, user, lines, periods } = account;
    const takes: LimitTake[] = step.limits && hasRateLimits(caller, user) ? rateLimitTakes(caller, requestTokenEstimate(account.body), user) : [];
    const reads = step.reads ? lines.map((line) => line.key) : [];
    const now = this.clock();
    let reservedNano = 0;
    let admission: Admission = { takes, reserves: [], reads };
    if (step.reserveFor !== undefined) {
      let reserves: ReturnType<typeof budgetReserves> = [];
      if (lines.some((line) => line.capNano !== undefined)) {
        const reserve = step.reserveFor;
        const at = new Date(now);
        let amountNano = 0;
        for (const models of [reserve.models, ...(reserve.laterSteps ?? [])]) amountNano += reservationNano(models, account.body, reserve.catalog, at, this.options);
        reserves = budgetReserves(lines, amountNano);
      }
      reservedNano = reserves[0]?.amountNano ?? 0;
      admission = { ...admission, reserves, user: user === undefined ? undefined : userTouch(caller, user, periods, this.options) };
    }
    const settlement = step.reserveFor === undefined ? undefined : new SpendSettlement(this.store, caller.name, lines, reservedNano, periods, this.options.historyDays, this.clock);
    // Nothing to ask: no limit, no budget, no balance, no end user. Spend is still settled.
    if (admission.takes.length === 0 && admission.reserves.length === 0 && reads.length === 0 && admission.user === undefined) {
      return { headers: {}, refusal: undefined, retryAfterSeconds: undefined, tokenCharge: undefined, fields: undefined, settlement };
    }
    const result = await this.store.admit(admission, now);
    const headers = takes.length > 0 ? rateLimitHeaders(result.limits.states) : {};
    const fields = step.reads ? budgetFields(lines, result.balances) : undefined;
    const limits = result.limits;
    if (!limits.allowed) {
      const refusal = new RateLimitExceededError(`${limitDescription(limits.refused.key)} (${limits.refused.limit})`);
      // Retry-After is whole seconds (RFC 9110 §10.2.3): rounded up, so a client that obeys it is not refused again.
      return { headers, refusal, retryAfterSeconds: Math.max(1, Math.ceil(limits.retryAfterMs / 1000)), tokenCharge: undefined, fields, settlement: undefined };
    }
    if (result.budget !== undefined) {
      return { headers, refusal: new InsufficientQuotaError(budgetDescription(result.budget)), retryAfterSeconds: undefined, tokenCharge: undefined, fields, settlement: undefined };
    }
    const tokenTakes = takes.filter((take) => isTokenBucket(take.key));
    return {
      headers, refusal: undefined, retryAfterSeconds: undefined,
      tokenCharge: tokenTakes.length > 0 ? new TokenCharge(this.store, tokenTakes, this.clock) : undefined,
      fields, settlement,
    };
  }

  /**
   * What is left of each caller's own daily and monthly budget (signalbox_budget_remaining_usd),
   * one read of the store for all of them; callers without a budget are not read.
   */
  async budgetsRemaining(callers: readonly Caller[]): Promise<{ key: string; period: 'day' | 'month'; usd: number }[]> {
    const periods = this.options.periods.at(this.clock());
    const lines: { key: string; period: 'day' | 'month'; line: SpendLine }[] = [];
    for (const caller of callers) {
      if (caller.budgets.dailyUsd === undefined && caller.budgets.monthlyUsd === undefined) continue;
      for (const line of spendLines(caller, undefined, periods, this.options)) {
        if (line.scope === 'key' && line.capNano !== undefined) lines.push({ key: caller.name, period: line.kind === 'd' ? 'day' : 'month', line });
      }
    }
    if (lines.length === 0) return [];
    const result = await this.store.admit({ takes: [], reserves: [], reads: lines.map((l) => l.line.key) }, this.clock());
    return lines.map((l, i) => {
      const balance = result.balances[i]!;
      return { key: l.key, period: l.period, usd: Math.max(0, l.line.capNano! - balance.spentNano - balance.reservedNano) / 1e9 };
    });
  }

  /**
   * Adds `costNano` to an account's own day and month counters and to `model`'s day counter, with
   * no reservation and no budget check: the spend of the server's own calls (shadow copies and
   * their judge, SHADOW_ACCOUNT), shown by GET /admin/spend like a key's. A store failure is `onError`'s.
   */
  charge(account: string, costNano: number, model: string | undefined, onError: (err: unknown) => void): void {
    const periods = this.options.periods.at(this.clock());
    const owner: Caller = { name: account, tier: undefined, team: undefined, meta: {}, models: undefined, limits: {}, budgets: {}, users: undefined };
    new SpendSettlement(this.store, account, spendLines(owner, undefined, periods, this.options), 0, periods, this.options.historyDays, this.clock).settle(costNano, model, onError);
  }

  /** The spend fields alone, nothing taken or reserved (explain). */
  async read(account: AccountRequest): Promise<BudgetFields> {
    const result = await this.store.admit({ takes: [], reserves: [], reads: account.lines.map((line) => line.key) }, this.clock());
    return budgetFields(account.lines, result.balances);
  }
}

/**
 * A request's spend, settled when it is recorded (src/server/recorder.ts), off its path: its
 * reservation given back and its cost added to every counter it counts in. A cost that is not
 * known yet (a stream cut before its usage) counts the reservation, the catalog's price of the
 * worst case, and is corrected by `reconcile` when the generation's cost arrives.
 */
export class SpendSettlement {
  private settled = false;

  constructor(
    private readonly store: LimitStore,
    /** The caller's key name: the `key` label of signalbox_spend_usd_total. */
    readonly keyName: string,
    private readonly lines: readonly SpendLine[],
    /** What was reserved against each capped line (0 when none was). */
    readonly reservedNano: number,
    private readonly periods: SpendPeriods,
    private readonly historyDays: number,
    private readonly clock: () => number,
  ) {}

  /** Gives the reservation back and adds `costNano` (to `model`'s counter too, when named). Once; a store failure is `onError`'s. */
  settle(costNano: number, model: string | undefined, onError: (err: unknown) => void): void {
    if (this.settled) return;
    this.settled = true;
    const release = this.reservedNano === 0 ? [] : this.lines.filter((line) => line.capNano !== undefined).map((line) => ({ key: line.key, amountNano: this.reservedNano }));
    const charges = costNano === 0 ? [] : spendCharges(this.lines, model, costNano, this.periods, this.historyDays);
    this.write(release, charges, onError);
  }

  /** Adds `deltaNano` (either sign) once the real cost of a provisionally settled request is known. */
  reconcile(deltaNano: number, model: string | undefined, onError: (err: unknown) => void): void {
    if (deltaNano === 0) return;
    this.write([], spendCharges(this.lines, model, deltaNano, this.periods, this.historyDays), onError);
  }

  private write(release: readonly { key: string; amountNano: number }[], charges: ReturnType<typeof spendCharges>, onError: (err: unknown) => void): void {
    if (release.length === 0 && charges.length === 0) return;
    try {
      const pending = this.store.settle(release, charges, this.clock());
      if (pending !== undefined) pending.catch(onError);
    } catch (err) {
      onError(err);
    }
  }
}
