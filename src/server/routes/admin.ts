/**
 * The admin API (issue 16, item 6; docs/keys-and-budgets.md#admin-api): spend by key, team, end
 * user, model and day, the keys in force, and a reset of a key's spend. Registered only with
 * ADMIN_KEY, and answers only requests that present it. Nothing here is on a request's path: each
 * call lists counters from the store (`LimitStore.spend`), and never shows a digest, a key or the
 * name of an environment variable holding one.
 */
import { timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyPluginAsync, FastifyRequest } from 'fastify';
import type { Caller, RateLimits, Budgets } from '../../accounts/caller.js';
import type { LimitStore, SpendEntry } from '../../accounts/limit-store.js';
import { fromNano, parseSpendKey, spendKey, SPEND_PREFIX, type PeriodClock, type SpendScope } from '../../accounts/spend.js';
import { InvalidAdminKeyError, InvalidRequestError, KeyNotFoundError, SpendStoreUnavailableError } from '../../errors.js';
import type { KeysSource } from '../client-auth.js';
import { presentedKey } from '../client-auth.js';
import { sha256 } from '../../accounts/keys-file.js';

export interface AdminRoutesOptions {
  /** The SHA-256 of ADMIN_KEY: only digests are compared, so the comparison's time says nothing about the key. */
  readonly adminDigest: Buffer;
  /** The client keys in force; undefined without client keys. */
  readonly keys: KeysSource | undefined;
  readonly store: LimitStore;
  /** The day and month in BUDGET_TIMEZONE. */
  readonly periods: PeriodClock;
  readonly clock: () => number;
  /** SPEND_HISTORY_DAYS: counters are kept that long after their period, so a range spans at most this many days plus today. */
  readonly historyDays: number;
}

const GROUPINGS = ['key', 'team', 'user', 'model', 'day'] as const;
type Grouping = (typeof GROUPINGS)[number];
const RESET_PERIODS = ['day', 'month', 'all'] as const;
const DAY = /^\d{4}-\d{2}-\d{2}$/;
/** A key's name as the keys file allows it: it is also a counter key's prefix, so no `:`. */
const KEY_NAME = /^[A-Za-z0-9_.-]{1,64}$/;
const DAY_MS = 86_400_000;

interface SpendRow { spent_usd: number; reserved_usd: number }

/** The one value of query parameter `name`, or undefined; repeated or unknown parameters are refused (400). */
function queryOf(request: FastifyRequest, allowed: readonly string[]): Record<string, string> {
  const query = (request.query ?? {}) as Record<string, unknown>;
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(query)) {
    if (!allowed.includes(name)) throw new InvalidRequestError(`Unknown query parameter ${JSON.stringify(name.slice(0, 64))}: expected ${allowed.join(', ')}`, 'bad_request');
    if (typeof value !== 'string') throw new InvalidRequestError(`Query parameter ${name} is given more than once`, 'bad_request');
    out[name] = value;
  }
  return out;
}

function oneOf<T extends string>(name: string, value: string | undefined, values: readonly T[], fallback: T): T {
  if (value === undefined) return fallback;
  if (!(values as readonly string[]).includes(value)) throw new InvalidRequestError(`${name} must be one of ${values.join(', ')}`, 'bad_request');
  return value as T;
}

/** A `YYYY-MM-DD` day as ms since the epoch (UTC midnight: only differences between days are used); 400 when it is no date. */
function dayNumber(name: string, day: string): number {
  const ms = DAY.test(day) ? Date.parse(`${day}T00:00:00Z`) : Number.NaN;
  // Date.parse rolls 2026-02-30 over to March: a day must print back as itself.
  if (Number.isNaN(ms) || new Date(ms).toISOString().slice(0, 10) !== day) throw new InvalidRequestError(`${name} must be a day, YYYY-MM-DD`, 'bad_request');
  return ms;
}

const usd = (nano: number): number => fromNano(nano);

/** Rows of `sums` as `{ <by>: name, spent_usd, reserved_usd }`, most spent first (then by name, so the order is stable). */
function rowsOf(by: string, sums: ReadonlyMap<string, { spent: number; reserved: number }>): Record<string, string | number>[] {
  return [...sums]
    .sort(([a, x], [b, y]) => y.spent - x.spent || (a < b ? -1 : a > b ? 1 : 0))
    .map(([name, s]) => ({ [by]: name, spent_usd: usd(s.spent), reserved_usd: usd(s.reserved) }));
}

function add(sums: Map<string, { spent: number; reserved: number }>, name: string, entry: SpendEntry): void {
  const sum = sums.get(name);
  if (sum === undefined) sums.set(name, { spent: entry.spentNano, reserved: entry.reservedNano });
  else {
    sum.spent += entry.spentNano;
    sum.reserved += entry.reservedNano;
  }
}

function limitsOf(policy: (RateLimits & Budgets) | undefined): Record<string, number | null> {
  return { rpm: policy?.rpm ?? null, tpm: policy?.tpm ?? null, daily_usd: policy?.dailyUsd ?? null, monthly_usd: policy?.monthlyUsd ?? null };
}

export const adminRoutes: FastifyPluginAsync<AdminRoutesOptions> = async (admin: FastifyInstance, options) => {
  const { adminDigest, store, periods, clock } = options;
  admin.addHook('onRequest', (request, _reply, done) => {
    const presented = presentedKey(request);
    done(presented !== undefined && timingSafeEqual(sha256(presented), adminDigest) ? undefined : new InvalidAdminKeyError());
  });

  /** The store's counters under `prefix`; its failure (Redis unreachable) is a 503, logged without the request's details. */
  const listed = async (request: FastifyRequest, prefix: string, now: number): Promise<SpendEntry[]> => {
    try {
      return await store.spend(prefix, now);
    } catch (err) {
      request.log.warn({ err: err instanceof Error ? err.message : String(err) }, 'admin API: the spend store could not list counters');
      throw new SpendStoreUnavailableError('the spend counters could not be read');
    }
  };

  admin.get('/admin/spend', async (request) => {
    const query = queryOf(request, ['by', 'from', 'to', 'key']);
    const by = oneOf<Grouping>('by', query.by, GROUPINGS, 'key');
    const now = clock();
    const current = periods.at(now);
    const today = current.day.slice(2);
    const from = query.from ?? query.to ?? today;
    const to = query.to ?? (query.from === undefined ? today : from);
    const days = (dayNumber('to', to) - dayNumber('from', from)) / DAY_MS + 1;
    if (days < 1) throw new InvalidRequestError('from must not be after to', 'bad_request');
    // Older counters are gone (SPEND_HISTORY_DAYS): a longer range would read as zero spend, not as unknown.
    if (days > options.historyDays + 1) throw new InvalidRequestError(`The range spans ${days} days: at most ${options.historyDays + 1} (SPEND_HISTORY_DAYS + 1) are kept`, 'bad_request');
    const keyName = query.key;
    if (keyName !== undefined && !KEY_NAME.test(keyName)) throw new InvalidRequestError('key must be a key\'s name, [A-Za-z0-9_.-]{1,64}', 'bad_request');
    // Team and model counters do not say which key spent: a key filter cannot apply to them.
    if (keyName !== undefined && (by === 'team' || by === 'model')) throw new InvalidRequestError(`key filters by=key, user or day, not by=${by} (its counters do not record the key)`, 'bad_request');
    // by=day sums the key counters: team and model counters count the same spend again, so scopes are never added together.
    const scope: SpendScope = by === 'day' ? 'key' : by;
    // Key and user counters begin with the key's name (`sp:user:<key>:<end user>:...`).
    const prefix = `${SPEND_PREFIX}${scope}:${keyName === undefined ? '' : `${keyName}:`}`;
    const entries = await listed(request, prefix, now);
    const range = new Map<string, { spent: number; reserved: number }>();
    const month = new Map<string, { spent: number; reserved: number }>();
    const monthPeriod = current.month.slice(2);
    for (const entry of entries) {
      const parsed = parseSpendKey(entry.key);
      // The filter's prefix `sp:key:alice:` matches alice's counters only (names hold no `:`), but a store's answer is checked anyway.
      if (parsed === undefined || parsed.scope !== scope) continue;
      if (keyName !== undefined && parsed.name !== keyName && !parsed.name.startsWith(`${keyName}:`)) continue;
      if (parsed.kind === 'd' && parsed.period >= from && parsed.period <= to) add(range, by === 'day' ? parsed.period : parsed.name, entry);
      else if (parsed.kind === 'm' && parsed.period === monthPeriod) add(month, by === 'day' ? monthPeriod : parsed.name, entry);
    }
    return {
      by, timezone: periods.timeZone, from, to,
      ...(keyName !== undefined && { key: keyName }),
      rows: rowsOf(by, range),
      month: { month: monthPeriod, rows: rowsOf(by === 'day' ? 'month' : by, month) },
    };
  });

  admin.get('/admin/keys', async (request) => {
    queryOf(request, []);
    const callers: readonly Caller[] = options.keys?.current.callers ?? [];
    const now = clock();
    const current = periods.at(now);
    const spent = new Map<string, SpendEntry>();
    if (callers.length > 0) for (const entry of await listed(request, `${SPEND_PREFIX}key:`, now)) spent.set(entry.key, entry);
    const balance = (name: string, period: string): { spent_usd: number; reserved_usd: number } => {
      const entry = spent.get(spendKey('key', name, period));
      return { spent_usd: usd(entry?.spentNano ?? 0), reserved_usd: usd(entry?.reservedNano ?? 0) };
    };
    return {
      timezone: periods.timeZone, day: current.day.slice(2), month: current.month.slice(2),
      // A caller holds no digest and no env variable's name: only what the keys file says about the key.
      keys: callers.map((caller) => ({
        name: caller.name,
        tier: caller.tier ?? null,
        team: caller.team?.name ?? null,
        meta: caller.meta,
        models: caller.models ?? null,
        ...limitsOf({ ...caller.limits, ...caller.budgets }),
        users: caller.users === undefined ? null : limitsOf(caller.users),
        today: balance(caller.name, current.day),
        this_month: balance(caller.name, current.month),
      })),
    };
  });

  admin.post<{ Params: { name: string } }>('/admin/keys/:name/reset', async (request) => {
    const period = oneOf('period', queryOf(request, ['period']).period, RESET_PERIODS, 'all');
    const { name } = request.params;
    const caller = options.keys?.current.callers.find((c) => c.name === name);
    // The name is echoed only when it is one a key could have: it is the client's bytes otherwise.
    if (caller === undefined) throw new KeyNotFoundError(KEY_NAME.test(name) ? JSON.stringify(name) : '(not a key name)');
    const current = periods.at(clock());
    const reset = [...(period !== 'month' ? [current.day] : []), ...(period !== 'day' ? [current.month] : [])];
    try {
      await store.resetSpend(reset.map((p) => spendKey('key', name, p)));
    } catch (err) {
      request.log.warn({ err: err instanceof Error ? err.message : String(err), client_key: name }, 'admin API: the spend store could not reset counters');
      throw new SpendStoreUnavailableError('the spend counters could not be reset');
    }
    request.log.info({ admin_action: 'spend_reset', client_key: name, period, counters: reset }, 'admin: key spend reset');
    return { key: name, period, reset: reset.map((p) => p.slice(2)) };
  });
};
