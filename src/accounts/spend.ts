/**
 * Spend counters (issue 16, item 2): their keys, the day and month they belong to, and USD in the
 * stores' integer nano-USD. Pure: the stores (src/accounts/*-limit-store.ts) hold the counters,
 * the budget step (src/accounts/budget.ts) decides which a request counts in.
 *
 * A counter key is `sp:<scope>:<name>:<period>`:
 * - scope `key` (name: the key's name), `team` (the team's), `user` (`<key name>:<end user id>`:
 *   end users exist only under a key) or `model` (the model that served, or was routed to);
 * - period `d:YYYY-MM-DD` or `m:YYYY-MM`, in the budgets' time zone (BUDGET_TIMEZONE, UTC by default).
 * Key and team names are `[A-Za-z0-9_.-]`; a model id or an end user id may hold `:`, so a key is
 * parsed from both ends: the scope after `sp:`, the period from the last two segments.
 */

export const SPEND_PREFIX = 'sp:';

export type SpendScope = 'key' | 'team' | 'user' | 'model';
export type PeriodKind = 'd' | 'm';

const NANO_PER_USD = 1e9;

/** USD as integer nano-USD, rounded to the nearest (a spend). */
export function toNano(usd: number): number {
  return Math.round(usd * NANO_PER_USD);
}

/** USD as integer nano-USD, rounded up (a reservation or a cap check must never round in the caller's favour). */
export function toNanoUp(usd: number): number {
  // The epsilon keeps float noise (0.3 * 1e9 = 300000000.00000006) from adding a nano; never below 0.
  const nano = Math.ceil(usd * NANO_PER_USD - 1e-6);
  return nano > 0 ? nano : 0;
}

export function fromNano(nano: number): number {
  return nano / NANO_PER_USD;
}

export function spendKey(scope: SpendScope, name: string, period: string): string {
  return `${SPEND_PREFIX}${scope}:${name}:${period}`;
}

export interface ParsedSpendKey {
  readonly scope: SpendScope;
  /** For `user`: `<key name>:<end user id>`. */
  readonly name: string;
  readonly kind: PeriodKind;
  /** `YYYY-MM-DD` for a day, `YYYY-MM` for a month. */
  readonly period: string;
}

const SCOPES = new Set<string>(['key', 'team', 'user', 'model']);

/** The parts of a counter key; undefined for anything that is not one. */
export function parseSpendKey(key: string): ParsedSpendKey | undefined {
  if (!key.startsWith(SPEND_PREFIX)) return undefined;
  const rest = key.slice(SPEND_PREFIX.length);
  const scopeEnd = rest.indexOf(':');
  const periodStart = rest.lastIndexOf(':');
  const kindStart = rest.lastIndexOf(':', periodStart - 1);
  if (scopeEnd === -1 || kindStart <= scopeEnd) return undefined;
  const scope = rest.slice(0, scopeEnd);
  const kind = rest.slice(kindStart + 1, periodStart);
  const period = rest.slice(periodStart + 1);
  const name = rest.slice(scopeEnd + 1, kindStart);
  if (!SCOPES.has(scope) || name === '') return undefined;
  if (kind === 'd' ? !/^\d{4}-\d{2}-\d{2}$/.test(period) : kind === 'm' ? !/^\d{4}-\d{2}$/.test(period) : true) return undefined;
  return { scope: scope as SpendScope, name, kind: kind as PeriodKind, period };
}

/** The day and the month an instant belongs to, as counter periods (`d:2026-11-30`, `m:2026-11`). */
export interface SpendPeriods {
  readonly day: string;
  readonly month: string;
  /** When the day and the month end, ms since the epoch (at most an hour off across a DST change: expiry only). */
  readonly dayEndsAt: number;
  readonly monthEndsAt: number;
}

const DAY_MS = 86_400_000;
const MINUTE_MS = 60_000;

/**
 * The periods of an instant in one time zone. Time zones move their midnight by whole minutes, so
 * the answer is computed once per minute of the clock (Intl formatting costs microseconds) and the
 * same object served to every request of that minute.
 */
export class PeriodClock {
  private readonly format: Intl.DateTimeFormat;
  private cachedMinute = Number.NaN;
  private cached: SpendPeriods | undefined;

  /** `timeZone`: an IANA name (BUDGET_TIMEZONE); throws a RangeError for an unknown one. */
  constructor(readonly timeZone: string) {
    this.format = new Intl.DateTimeFormat('en-US', {
      timeZone, year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23',
    });
  }

  at(now: number): SpendPeriods {
    const minute = Math.floor(now / MINUTE_MS);
    if (minute === this.cachedMinute && this.cached !== undefined) return this.cached;
    const parts: Record<string, string> = {};
    for (const part of this.format.formatToParts(now)) parts[part.type] = part.value;
    const year = Number(parts.year);
    const month = Number(parts.month);
    const day = Number(parts.day);
    const sinceMidnight = ((Number(parts.hour) * 60 + Number(parts.minute)) * 60 + Number(parts.second)) * 1000 + (now % 1000);
    const dayEndsAt = now - sinceMidnight + DAY_MS;
    const daysInMonth = new Date(Date.UTC(year, month, 0)).getUTCDate();
    const monthEndsAt = dayEndsAt + (daysInMonth - day) * DAY_MS;
    const mm = String(month).padStart(2, '0');
    this.cached = { day: `d:${year}-${mm}-${String(day).padStart(2, '0')}`, month: `m:${year}-${mm}`, dayEndsAt, monthEndsAt };
    this.cachedMinute = minute;
    return this.cached;
  }
}
