import type { IncomingHttpHeaders } from 'node:http';
import type { Catalog } from '../catalog/catalog.js';
import { requestEstimateUsd } from '../catalog/cost.js';
import { clipText } from '../bounded-text.js';
import { InvalidRequestError } from '../errors.js';
import type { Budgets, Caller, RateLimits } from './caller.js';
import type { Balance, BudgetRefusal, BudgetReserve, SpendCharge, UserTouch } from './limit-store.js';
import { fromNano, parseSpendKey, spendKey, toNanoUp, type PeriodKind, type SpendPeriods, type SpendScope } from './spend.js';

/**
 * Budgets (issue 16, items 2 and 3), the pure part: which spend counters a request counts in, what
 * it reserves against the capped ones, the rules' `budget.*` fields from their balances, and what
 * its real cost adds. The stores hold the counters (src/accounts/limit-store.ts); the account step
 * (src/accounts/accounts.ts) asks them.
 */

const DAY_MS = 86_400_000;

/** The longest end user id kept (OpenAI's `user` is an opaque string; ids are hashes or emails in practice). */
export const MAX_USER_ID_CHARS = 256;

/** One counter a request counts in; `capNano` when a budget caps it. */
export interface SpendLine {
  readonly key: string;
  readonly scope: Exclude<SpendScope, 'model'>;
  readonly kind: PeriodKind;
  readonly capNano: number | undefined;
  readonly expireAt: number;
}

export interface BudgetOptions {
  /** SPEND_HISTORY_DAYS: how long key, team and model counters outlive their period. */
  readonly historyDays: number;
  /** MAX_USERS_PER_KEY. */
  readonly maxUsersPerKey: number;
  /** UNPRICED_RESERVE_USD: what a model without a catalog price reserves. */
  readonly unpricedReserveUsd: number;
}

/**
 * Where the end user's id is read (USER_SOURCE): OpenAI's body field `user`, or a header. The
 * text of the setting is checked at config load; compiled once here.
 */
export type UserSource = (body: Readonly<Record<string, unknown>>, headers: IncomingHttpHeaders) => string | undefined;

export function compileUserSource(setting: string | undefined): UserSource | undefined {
  if (setting === undefined) return undefined;
  if (setting === 'body.user') return (body) => userId(body.user, 'the body\'s user field');
  const name = setting.slice('header.'.length).toLowerCase();
  return (_body, headers) => {
    const value = headers[name];
    return userId(Array.isArray(value) ? value[0] : value, `the ${name} header`);
  };
}

/** An end user id as given, or undefined when absent or empty; a client error when it is no usable id. */
function userId(value: unknown, where: string): string | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  if (typeof value !== 'string') throw new InvalidRequestError(`The end user id (${where}) must be a string`, 'invalid_user');
  if (value.length > MAX_USER_ID_CHARS) throw new InvalidRequestError(`The end user id (${where}) is longer than ${MAX_USER_ID_CHARS} characters`, 'invalid_user');
  return value;
}

/** Whether any budget or rate limit applies to a caller (its key's, its team's, its end users'). */
export function isAccountable(caller: Caller): boolean {
  const policies: readonly ((RateLimits & Budgets) | undefined)[] = [{ ...caller.budgets, ...caller.limits }, caller.team, caller.users];
  return policies.some((p) => p !== undefined && (p.dailyUsd !== undefined || p.monthlyUsd !== undefined || p.rpm !== undefined || p.tpm !== undefined));
}

function expiry(kind: PeriodKind, periods: SpendPeriods, keepDays: number): number {
  return (kind === 'd' ? periods.dayEndsAt : periods.monthEndsAt) + keepDays * DAY_MS;
}

function capNano(usd: number | undefined): number | undefined {
  return usd === undefined ? undefined : Math.floor(usd * 1e9);
}

/**
 * The counters a request of `caller` (for end user `user`, when there is one) counts in, in this
 * order: key day, key month, team day, team month, user day, user month. Capped when the key, its
 * team or the end users' policy sets `daily_usd` / `monthly_usd`. End users' counters are not kept
 * past their period (there can be many); keys' and teams' are, for SPEND_HISTORY_DAYS.
 */
export function spendLines(caller: Caller, user: string | undefined, periods: SpendPeriods, options: BudgetOptions): SpendLine[] {
  const lines: SpendLine[] = [];
  const add = (scope: SpendLine['scope'], name: string, daily: number | undefined, monthly: number | undefined, keepDays: number) => {
    lines.push({ key: spendKey(scope, name, periods.day), scope, kind: 'd', capNano: capNano(daily), expireAt: expiry('d', periods, keepDays) });
    lines.push({ key: spendKey(scope, name, periods.month), scope, kind: 'm', capNano: capNano(monthly), expireAt: expiry('m', periods, keepDays) });
  };
  add('key', caller.name, caller.budgets.dailyUsd, caller.budgets.monthlyUsd, options.historyDays);
  const team = caller.team;
  if (team !== undefined) add('team', team.name, team.dailyUsd, team.monthlyUsd, options.historyDays);
  if (user !== undefined) add('user', userName(caller, user), caller.users?.dailyUsd, caller.users?.monthlyUsd, 0);
  return lines;
}

/** A user counter's name: end users exist only under their key. */
function userName(caller: Caller, user: string): string {
  return `${caller.name}:${user}`;
}

/** Recording the end user as seen, which evicts the least recently seen past MAX_USERS_PER_KEY. */
export function userTouch(caller: Caller, user: string, periods: SpendPeriods, options: BudgetOptions): UserTouch {
  return {
    setKey: `us:${caller.name}`,
    member: user,
    max: options.maxUsersPerKey,
    counterPrefix: `sp:user:${caller.name}:`,
    counterSuffixes: [`:${periods.day}`, `:${periods.month}`],
  };
}

/**
 * What a request reserves, in nano-USD: its worst case over every model the upstream may run
 * (the routed one and OpenRouter's fallbacks), each the catalog's conservative estimate of the
 * prompt, images and `max_tokens` (else DEFAULT_COMPLETION_TOKENS) at its price
 * (`requestEstimateUsd`). A model without a price, or no model at all (the account's default),
 * reserves UNPRICED_RESERVE_USD, never nothing. A free model (price 0) reserves 0.
 */
export function reservationNano(models: readonly string[], body: unknown, catalog: Catalog | undefined, now: Date, options: BudgetOptions): number {
  let worst = models.length === 0 ? options.unpricedReserveUsd : 0;
  for (const id of models) {
    const model = catalog?.get(id);
    const usd = model === undefined ? undefined : requestEstimateUsd(model, body, now);
    worst = Math.max(worst, usd ?? options.unpricedReserveUsd);
  }
  return toNanoUp(worst);
}

/** The reservations of a request: `amountNano` against every capped line. */
export function budgetReserves(lines: readonly SpendLine[], amountNano: number): BudgetReserve[] {
  const reserves: BudgetReserve[] = [];
  for (const line of lines) if (line.capNano !== undefined) reserves.push({ key: line.key, capNano: line.capNano, amountNano, expireAt: line.expireAt });
  return reserves;
}

/** The rules' spend fields (`budget.*`, `team.*`, `user.*`), USD; each absent when nothing applies. */
export interface BudgetFields {
  /** The smallest amount left among every capped counter (never below 0); absent when no budget applies. */
  readonly remainingUsd?: number;
  readonly keySpentTodayUsd?: number;
  readonly keySpentMonthUsd?: number;
  readonly teamSpentTodayUsd?: number;
  readonly teamSpentMonthUsd?: number;
  readonly userSpentTodayUsd?: number;
  readonly userSpentMonthUsd?: number;
}

const FIELD_OF: Record<SpendLine['scope'], Record<PeriodKind, keyof BudgetFields>> = {
  key: { d: 'keySpentTodayUsd', m: 'keySpentMonthUsd' },
  team: { d: 'teamSpentTodayUsd', m: 'teamSpentMonthUsd' },
  user: { d: 'userSpentTodayUsd', m: 'userSpentMonthUsd' },
};

/** The fields from the lines' balances (in `lines` order). Spent is settled spend; remaining also counts what requests in flight hold. */
export function budgetFields(lines: readonly SpendLine[], balances: readonly Balance[]): BudgetFields {
  const fields: { -readonly [K in keyof BudgetFields]: number } = {};
  let remaining: number | undefined;
  lines.forEach((line, i) => {
    const balance = balances[i] ?? { spentNano: 0, reservedNano: 0 };
    fields[FIELD_OF[line.scope][line.kind]] = fromNano(balance.spentNano);
    if (line.capNano !== undefined) {
      const left = Math.max(0, line.capNano - balance.spentNano - balance.reservedNano);
      remaining = remaining === undefined ? left : Math.min(remaining, left);
    }
  });
  if (remaining !== undefined) fields.remainingUsd = fromNano(remaining);
  return fields;
}

/** `sp:team:research:d:2026-11-30` -> `daily budget of team research (50 USD)`: the 429's message. */
export function budgetDescription(refusal: BudgetRefusal): string {
  const parsed = parseSpendKey(refusal.key);
  if (parsed === undefined) return 'a budget';
  const what = parsed.scope === 'user' ? `end user ${clipText(parsed.name.slice(parsed.name.indexOf(':') + 1), 64)}` : `${parsed.scope} ${parsed.name}`;
  return `${parsed.kind === 'd' ? 'daily' : 'monthly'} budget of ${what} (${fromNano(refusal.capNano)} USD)`;
}

/**
 * What a request's cost adds: the same amount to every line, and to the served model's day
 * counter (`model` already bounded by the caller: a catalog id or `other`).
 */
export function spendCharges(lines: readonly SpendLine[], model: string | undefined, amountNano: number, periods: SpendPeriods, historyDays: number): SpendCharge[] {
  const charges: SpendCharge[] = lines.map((line) => ({ key: line.key, amountNano, expireAt: line.expireAt }));
  if (model !== undefined) charges.push({ key: spendKey('model', model, periods.day), amountNano, expireAt: expiry('d', periods, historyDays) });
  return charges;
}
