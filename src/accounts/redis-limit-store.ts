/**
 * Rate-limit and budget state in Redis (REDIS_URL; issue 16, items 3 and 5): every replica takes
 * from the same buckets and reserves against the same spend counters, so limits and budgets hold
 * across any number of them while Redis is reachable. Needs Redis 5.0+ (ZPOPMIN); not Redis
 * Cluster (a script touches several callers' keys, some named inside it).
 *
 * One Lua script per `admit` (and `take`): it reads every bucket and counter, decides, and writes
 * all of them or none, in one round trip (a script runs atomically: https://redis.io/docs/latest/develop/interact/programmability/eval-intro/).
 * The algorithm is GCRA (the generic cell rate algorithm, as in redis-cell and Stripe's limiter):
 * a bucket is one number, its theoretical arrival time (TAT), so the state is one string key per
 * bucket, and it expires (PX) when the bucket is full again, which is at most one period away.
 *
 * The semantics, shared with the in-memory store (test/support/limit-store-contract.ts checks both):
 *   interval = periodMs / limit; tat = max(stored TAT or now, now); newTat = tat + cost * interval;
 *   a take fits when newTat - now <= periodMs (the burst is the whole limit).
 *   All fit: every TAT becomes newTat; remaining = floor((periodMs - (newTat - now)) / interval),
 *   resetMs = ceil(newTat - now). One does not: nothing is written, the states are the current
 *   ones (tat instead of newTat), `refused` is the first take that does not fit, and retryAfterMs =
 *   ceil of the largest (newTat - now - periodMs) among those that do not (when every bucket would
 *   let the request through again).
 * A take must not name the same bucket twice in one call.
 *
 * `now` is the caller's clock, not Redis's TIME: the tests inject it, and replicas' clocks are
 * NTP-synchronised; a replica whose clock is s ms ahead sees buckets s ms emptier, no more.
 */
import { createHash } from 'node:crypto';
import { createClient } from 'redis';
import { RateLimitStoreUnavailableError } from '../errors.js';
import type { AdmitResult, Admission, Balance, BudgetRefusal, LimitResult, LimitState, LimitStore, LimitTake, ReserveRelease, SpendCharge, SpendEntry } from './limit-store.js';

/**
 * Slack for floating-point error in milliseconds: TATs are sums of fractional intervals
 * (60000 / 7), so `limit` takes of 1 can land a few ulps over periodMs and must still fit.
 */
const EPS = 1e-6;

/**
 * The whole admission (`admit`; `take` is an admission with takes only), so the rate limits and the
 * budget reservations are one round trip and one atomic step.
 * KEYS: the buckets (nT), the reserved counters (nR), the read counters (nD), then the user's set
 * when there is one. ARGV: now, nT, nR, nD, hasUser (0/1), then limit, periodMs, cost per bucket,
 * capNano, amountNano, expireAt per reservation, then member, max, counterPrefix, setTtlMs and the
 * counter suffixes (the rest) for the user.
 * Reply: refused take (0: none), retryAfterMs, remaining and resetMs per bucket, refusing budget
 * (0: none), its spent and reserved, then spent and reserved per read counter.
 *
 * Counters are hashes {s: spent, r: reserved} in nano-USD. Lua numbers are doubles (exact up to
 * 2^53): amounts go into commands as the ARGV strings the caller sent (never tostring() of a Lua
 * number, which writes 1e15 as "1e+15", refused by HINCRBY; a computed TTL goes through
 * string.format('%d')). A counter's expiry only ever moves later: a month counter reserved with a
 * day's expireAt keeps its month. Expiry is PEXPIRE of expireAt - now, the caller's clock as for
 * the buckets (see the top of this file), not PEXPIREAT against Redis's clock: the tests inject
 * `now`, and a TTL needs no PEXPIRETIME (Redis 7), so the scripts run on Redis 5.0+ (ZPOPMIN).
 * An evicted user's counters are DELeted by names built here, not passed in KEYS: the script
 * touches keys it does not declare, which a Redis Cluster refuses (not supported; see the docs).
 */
export const ADMIT_SCRIPT = `
local eps = ${EPS}
local now = tonumber(ARGV[1])
local nT, nR, nD, hasUser = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5] == '1'
local tats, newTats, intervals, periods = {}, {}, {}, {}
local refused, retry = 0, 0
for i = 1, nT do
  local a = 5 + 3 * i
  local limit, period, cost = tonumber(ARGV[a - 2]), tonumber(ARGV[a - 1]), tonumber(ARGV[a])
  local interval = period / limit
  local tat = tonumber(redis.call('GET', KEYS[i]) or now) or now
  if tat < now then tat = now end
  local newTat = tat + cost * interval
  tats[i], newTats[i], intervals[i], periods[i] = tat, newTat, interval, period
  local over = newTat - now - period
  if over > eps then
    if refused == 0 then refused = i end
    if over > retry then retry = over end
  end
end
local function expireNoEarlier(key, expireAt)
  local ttl = tonumber(expireAt) - now
  if ttl < 1 then ttl = 1 end
  if redis.call('PTTL', key) < ttl then redis.call('PEXPIRE', key, string.format('%d', ttl)) end
end
local function balance(key)
  local v = redis.call('HMGET', key, 's', 'r')
  return tonumber(v[1]) or 0, tonumber(v[2]) or 0
end
local reads = {}
for i = 1, nD do
  local s, r = balance(KEYS[nT + nR + i])
  reads[2 * i - 1], reads[2 * i] = s, r
end
local budget, bSpent, bReserved = 0, 0, 0
local rArg = 5 + 3 * nT
if refused == 0 then
  for i = 1, nR do
    local cap, amount = tonumber(ARGV[rArg + 3 * i - 2]), tonumber(ARGV[rArg + 3 * i - 1])
    if amount > 0 then
      local s, r = balance(KEYS[nT + i])
      if s + r + amount > cap then
        budget, bSpent, bReserved = i, s, r
        break
      end
    end
  end
end
local admitted = refused == 0 and budget == 0
local reply = { refused, math.ceil(retry - eps) }
for i = 1, nT do
  local t = tats[i]
  if admitted then
    t = newTats[i]
    local ttl = math.ceil(t - now - eps)
    if ttl > 0 then redis.call('SET', KEYS[i], t, 'PX', ttl) else redis.call('DEL', KEYS[i]) end
  end
  local remaining = math.floor((periods[i] - (t - now)) / intervals[i] + eps)
  if remaining < 0 then remaining = 0 end
  local reset = math.ceil(t - now - eps)
  if reset < 0 then reset = 0 end
  reply[2 * i + 1], reply[2 * i + 2] = remaining, reset
end
if admitted then
  for i = 1, nR do
    local key, amount, expireAt = KEYS[nT + i], ARGV[rArg + 3 * i - 1], ARGV[rArg + 3 * i]
    if tonumber(amount) > 0 then
      redis.call('HINCRBY', key, 'r', amount)
      expireNoEarlier(key, expireAt)
    end
  end
  if hasUser then
    local u = rArg + 3 * nR
    local setKey, member, max, prefix = KEYS[nT + nR + nD + 1], ARGV[u + 1], tonumber(ARGV[u + 2]), ARGV[u + 3]
    redis.call('ZADD', setKey, ARGV[1], member)
    local excess = redis.call('ZCARD', setKey) - max
    if excess > 0 then
      local evicted = redis.call('ZPOPMIN', setKey, excess)
      for e = 1, #evicted, 2 do
        for x = u + 5, #ARGV do redis.call('DEL', prefix .. evicted[e] .. ARGV[x]) end
      end
    end
    redis.call('PEXPIRE', setKey, ARGV[u + 4])
  end
end
local n = #reply
reply[n + 1], reply[n + 2], reply[n + 3] = budget, bSpent, bReserved
for i = 1, 2 * nD do reply[n + 3 + i] = reads[i] end
return reply
`;

/**
 * `settle`, off the request path. KEYS: the released counters (nRel), then the charged ones.
 * ARGV: now, nRel, minus amountNano per release (the caller negates it), then amountNano, expireAt per charge. A release never takes
 * `r` below 0 and never creates a counter (one that expired meanwhile stays gone); a charge never
 * takes `s` below 0 and moves the expiry only later, as in ADMIT_SCRIPT.
 */
export const SETTLE_SCRIPT = `
local now = tonumber(ARGV[1])
local nRel = tonumber(ARGV[2])
for i = 1, nRel do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    if redis.call('HINCRBY', KEYS[i], 'r', ARGV[2 + i]) < 0 then redis.call('HSET', KEYS[i], 'r', 0) end
  end
end
for i = nRel + 1, #KEYS do
  local a = 2 + nRel + 2 * (i - nRel) - 1
  if redis.call('HINCRBY', KEYS[i], 's', ARGV[a]) < 0 then redis.call('HSET', KEYS[i], 's', 0) end
  local ttl = tonumber(ARGV[a + 1]) - now
  if ttl < 1 then ttl = 1 end
  if redis.call('PTTL', KEYS[i]) < ttl then redis.call('PEXPIRE', KEYS[i], string.format('%d', ttl)) end
end
return 0
`;

/** The admin reset: spent to 0 on the counters that exist (reservations in flight are kept). */
export const RESET_SCRIPT = `
for i = 1, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then redis.call('HSET', KEYS[i], 's', 0) end
end
return 0
`;

/** KEYS[1]: the bucket. ARGV: now, limit, periodMs, delta (units; negative gives back). */
export const ADJUST_SCRIPT = `
local now = tonumber(ARGV[1])
local interval = tonumber(ARGV[3]) / tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now) or now
if tat < now then tat = now end
tat = tat + tonumber(ARGV[4]) * interval
local ttl = math.ceil(tat - now - ${EPS})
if ttl > 0 then redis.call('SET', KEYS[1], tat, 'PX', ttl) else redis.call('DEL', KEYS[1]) end
return 0
`;

/** Commands in flight at most (see commandsQueueMaxLength below): a replica's concurrent requests. */
const COMMANDS_QUEUE_MAX = 10_000;

const sha1 = (text: string) => createHash('sha1').update(text).digest('hex');
const ADMIT_SHA = sha1(ADMIT_SCRIPT);
const ADJUST_SHA = sha1(ADJUST_SCRIPT);
const SETTLE_SHA = sha1(SETTLE_SCRIPT);
const RESET_SHA = sha1(RESET_SCRIPT);

/**
 * How long an end-user set lives untouched: end users' counters are kept no longer than their
 * period (SPEND_HISTORY_DAYS does not apply to them), the longest of which is a 31-day month, plus a
 * day for time zones. A set idle that long has no member whose counters still exist, so forgetting
 * it forgets nothing, and a key that stops sending requests leaves no set behind.
 */
export const USER_SET_TTL_MS = 32 * 86_400_000;

/**
 * The most counters `spend` lists (the admin API, not a request's path): the keyspace holds a
 * counter per key, team, model and end user (at most MAX_USERS_PER_KEY per key) per day and month
 * of history, and a listing past this is cut rather than held in memory whole.
 */
export const SPEND_LIST_MAX = 100_000;

/** SCAN's MATCH is a glob: a prefix is matched literally (an end user id may hold `*`, `?`, `[`). */
const globEscape = (text: string) => text.replace(/[*?[\]\\]/g, '\\$&');

export type RedisFailureMode = 'open' | 'closed';

/** The part of pino's Logger the store writes to. */
export interface StoreLogger {
  warn(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
}

export interface RedisLimitStoreOptions {
  /** redis:// or rediss:// URL (REDIS_URL); may hold a password, so it is never logged. */
  readonly url: string;
  /** REDIS_FAILURE_MODE: see the setting's reason. */
  readonly failureMode: RedisFailureMode;
  /** REDIS_COMMAND_TIMEOUT_MS: the longest a take waits for Redis. */
  readonly commandTimeoutMs: number;
  readonly logger: StoreLogger;
  /**
   * Fail open: the store that takes over while Redis is unreachable (the in-memory store), so
   * limits still hold per replica. Without one, fail open admits every request.
   */
  readonly fallback?: LimitStore;
}

/** What the outages cost so far (exposed for metrics and tests). */
export interface RedisLimitStoreStats {
  /** Times Redis went from reachable to unreachable (each logged once). */
  outages: number;
  /** Admissions (takes) admitted without Redis (fail open). */
  failedOpen: number;
  /** Admissions (takes) refused because Redis was unreachable (fail closed). */
  failedClosed: number;
  /** Adjustments lost or left to the fallback because Redis was unreachable. */
  adjustmentsMissed: number;
  /** Settlements (reservations given back, spend added) lost or left to the fallback because Redis was unreachable. */
  settlementsMissed: number;
}

export class RedisLimitStore implements LimitStore {
  readonly stats: RedisLimitStoreStats = { outages: 0, failedOpen: 0, failedClosed: 0, adjustmentsMissed: 0, settlementsMissed: 0 };
  private readonly client;
  private readonly options: RedisLimitStoreOptions;
  private down = false;
  private closed = false;

  constructor(options: RedisLimitStoreOptions) {
    this.options = options;
    this.client = createClient({
      url: options.url,
      // A command sent while the connection is down fails at once instead of waiting in a queue
      // for a reconnect: the request gets its failure mode now, not after the timeout.
      disableOfflineQueue: true,
      // Bounds the commands waiting for a stuck Redis (each a request's take): past it a take fails
      // at once into the failure mode. Far above what a healthy Redis ever has in flight.
      commandsQueueMaxLength: COMMANDS_QUEUE_MAX,
      // Reconnecting is the client's: exponential backoff up to 2 s with jitter (its default strategy).
      socket: { connectTimeout: Math.max(options.commandTimeoutMs, 1000) },
    });
    // node-redis emits 'error' on every failed (re)connect; without a listener that would be an
    // uncaught exception. One log line per outage, not one per reconnect attempt.
    this.client.on('error', (err: unknown) => this.markDown(err));
    this.client.on('ready', () => this.markUp());
    // Not awaited: a replica starts and serves (in its failure mode) while Redis is unreachable.
    this.client.connect().catch((err: unknown) => this.markDown(err));
  }

  /**
   * Whether the last command got its reply and the connection is up (signalbox_limit_store_up):
   * false before the first connection, during an outage, and while Redis is too slow to answer.
   */
  get up(): boolean {
    return !this.down && this.client.isReady;
  }

  /** Resolves once the first connection is up (tests; a replica does not need to wait). */
  async ready(): Promise<void> {
    if (this.client.isReady) return;
    await new Promise<void>((resolve) => this.client.once('ready', resolve));
  }

  /** An admission with takes only: the same script, one round trip. */
  async take(takes: readonly LimitTake[], now: number): Promise<LimitResult> {
    if (takes.length === 0) return { allowed: true, states: [] };
    const viaFallback = async (fallback: LimitStore): Promise<AdmitResult> => ({ limits: await fallback.take(takes, now), budget: undefined, balances: [] });
    return (await this.evaluate({ takes, reserves: [], reads: [] }, now, viaFallback)).limits;
  }

  admit(admission: Admission, now: number): Promise<AdmitResult> {
    return this.evaluate(admission, now, (fallback) => fallback.admit(admission, now));
  }

  /** ADMIT_SCRIPT, or the failure mode; failing open, `viaFallback` asks the fallback store the same question. */
  private async evaluate(admission: Admission, now: number, viaFallback: (fallback: LimitStore) => Promise<AdmitResult> | AdmitResult): Promise<AdmitResult> {
    const { takes, reserves, reads, user } = admission;
    const keys: string[] = [];
    const args = [String(now), String(takes.length), String(reserves.length), String(reads.length), user ? '1' : '0'];
    for (const t of takes) {
      keys.push(t.key);
      args.push(String(t.limit), String(t.periodMs), String(t.cost));
    }
    // Amounts are integers below 2^53, which String() writes in full (it switches to exponents at 1e21).
    for (const r of reserves) {
      keys.push(r.key);
      args.push(String(r.capNano), String(r.amountNano), String(r.expireAt));
    }
    keys.push(...reads);
    if (user) {
      keys.push(user.setKey);
      args.push(user.member, String(user.max), user.counterPrefix, String(USER_SET_TTL_MS), ...user.counterSuffixes);
    }
    let reply: number[];
    try {
      reply = await this.run(ADMIT_SHA, ADMIT_SCRIPT, keys, args) as number[];
    } catch (err) {
      this.markDown(err);
      if (this.options.failureMode === 'closed') {
        this.stats.failedClosed++;
        throw new RateLimitStoreUnavailableError('Redis did not answer', { cause: err });
      }
      this.stats.failedOpen++;
      if (this.options.fallback) return viaFallback(this.options.fallback);
      return {
        limits: { allowed: true, states: takes.map((t) => ({ key: t.key, limit: t.limit, remaining: Math.max(0, t.limit - t.cost), resetMs: 0 })) },
        budget: undefined,
        balances: reads.map(() => ({ spentNano: 0, reservedNano: 0 })),
      };
    }
    this.markUp();
    const states: LimitState[] = takes.map((t, i) => ({ key: t.key, limit: t.limit, remaining: reply[2 + 2 * i]!, resetMs: reply[3 + 2 * i]! }));
    const refusedIndex = reply[0]!;
    const limits: LimitResult = refusedIndex === 0
      ? { allowed: true, states }
      : { allowed: false, states, refused: states[refusedIndex - 1]!, retryAfterMs: reply[1]! };
    const b = 2 + 2 * takes.length;
    const budgetIndex = reply[b]!;
    const refusing = budgetIndex === 0 ? undefined : reserves[budgetIndex - 1]!;
    const budget: BudgetRefusal | undefined = refusing && { key: refusing.key, capNano: refusing.capNano, spentNano: reply[b + 1]!, reservedNano: reply[b + 2]! };
    const balances: Balance[] = reads.map((_key, i) => ({ spentNano: reply[b + 3 + 2 * i]!, reservedNano: reply[b + 4 + 2 * i]! }));
    return { limits, budget, balances };
  }

  async adjust(key: string, limit: number, periodMs: number, delta: number, now: number): Promise<void> {
    try {
      await this.run(ADJUST_SHA, ADJUST_SCRIPT, [key], [String(now), String(limit), String(periodMs), String(delta)]);
      this.markUp();
    } catch (err) {
      // Settling is off the request path: a lost correction is counted, never thrown.
      this.markDown(err);
      this.stats.adjustmentsMissed++;
      if (this.options.failureMode === 'open' && this.options.fallback) await this.options.fallback.adjust(key, limit, periodMs, delta, now);
    }
  }

  async settle(release: readonly ReserveRelease[], charges: readonly SpendCharge[], now: number): Promise<void> {
    if (release.length === 0 && charges.length === 0) return;
    const keys = [...release.map((r) => r.key), ...charges.map((c) => c.key)];
    const args = [String(now), String(release.length), ...release.map((r) => String(-r.amountNano))];
    for (const c of charges) args.push(String(c.amountNano), String(c.expireAt));
    try {
      await this.run(SETTLE_SHA, SETTLE_SCRIPT, keys, args);
      this.markUp();
    } catch (err) {
      // Off the request path, like adjust: counted, never thrown. Failing open, the fallback
      // holds the spend this replica saw while Redis was away (it does not flow back into Redis).
      this.markDown(err);
      this.stats.settlementsMissed++;
      if (this.options.failureMode === 'open' && this.options.fallback) await this.options.fallback.settle(release, charges, now);
    }
  }

  /** SCAN (never KEYS, which blocks Redis for the whole keyspace), then HMGET per counter; at most SPEND_LIST_MAX. Throws while Redis is unreachable (the admin API answers 503). */
  async spend(prefix: string, _now: number): Promise<SpendEntry[]> {
    return this.admin(() => this.listSpend(prefix));
  }

  private async listSpend(prefix: string): Promise<SpendEntry[]> {
    const found = new Set<string>();
    let cursor = '0';
    do {
      const [next, keys] = await this.command(['SCAN', cursor, 'MATCH', `${globEscape(prefix)}*`, 'COUNT', '1000']) as [string, string[]];
      cursor = next;
      for (const key of keys) if (found.size < SPEND_LIST_MAX) found.add(key);
    } while (cursor !== '0' && found.size < SPEND_LIST_MAX);
    // Concurrent commands share one connection's pipeline: one round trip per batch, not per key.
    return Promise.all([...found].map(async (key) => {
      const [s, r] = await this.command(['HMGET', key, 's', 'r']) as [string | null, string | null];
      return { key, spentNano: Number(s ?? 0), reservedNano: Number(r ?? 0) };
    }));
  }

  async resetSpend(keys: readonly string[]): Promise<void> {
    if (keys.length === 0) return;
    await this.admin(() => this.run(RESET_SHA, RESET_SCRIPT, keys, []));
  }

  /** The admin API's calls have no failure mode to fall into: unreachable is the registry's 503. */
  private async admin<T>(call: () => Promise<T>): Promise<T> {
    try {
      const result = await call();
      this.markUp();
      return result;
    } catch (err) {
      this.markDown(err);
      throw new RateLimitStoreUnavailableError('Redis did not answer', { cause: err });
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // destroy, not close: close() waits for pending replies, which never come from a dead Redis.
    if (this.client.isOpen) this.client.destroy();
  }

  /**
   * EVALSHA, and EVAL once when Redis does not have the script yet (after a restart or a flush),
   * within commandTimeoutMs in all. node-redis's own `timeout` option only covers a command still
   * waiting to be written, not one waiting for its reply (commands-queue.js), so a stuck Redis is
   * timed here. A reply that comes after the timeout is dropped: the take may then have been
   * counted in Redis while the request got the failure mode, which errs towards the limit.
   */
  private async run(sha: string, script: string, keys: readonly string[], args: readonly string[]): Promise<unknown> {
    const tail = [String(keys.length), ...keys, ...args];
    return this.timed((async () => {
      try {
        return await this.client.sendCommand(['EVALSHA', sha, ...tail]);
      } catch (err) {
        if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err;
        return await this.client.sendCommand(['EVAL', script, ...tail]);
      }
    })());
  }

  /** One plain command (the admin listing), within commandTimeoutMs like the scripts. */
  private command(args: readonly string[]): Promise<unknown> {
    return this.timed(this.client.sendCommand([...args]));
  }

  private async timed<T>(command: Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`no reply within ${this.options.commandTimeoutMs} ms`)), this.options.commandTimeoutMs);
    });
    // The losing side's rejection (a late failure after a timeout) must not be unhandled.
    command.catch(() => {});
    try {
      return await Promise.race([command, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  private markDown(err: unknown): void {
    if (this.down || this.closed) return;
    this.down = true;
    this.stats.outages++;
    // The message only (connection refused, timeout): never the URL, which may hold a password.
    const reason = err instanceof Error ? `${err.name}: ${err.message}` : 'unknown error';
    this.options.logger.warn(
      { failureMode: this.options.failureMode, reason },
      this.options.failureMode === 'open'
        ? 'rate-limit store (Redis) unreachable: failing open, limits hold per replica only until it is back'
        : 'rate-limit store (Redis) unreachable: failing closed, limited requests get 503 until it is back',
    );
  }

  private markUp(): void {
    if (!this.down) return;
    this.down = false;
    this.options.logger.info({}, 'rate-limit store (Redis) reachable again');
  }
}
