/**
 * Rate-limit state in Redis (REDIS_URL; issue 16, item 5): every replica takes from the same
 * buckets, so a limit holds across any number of them while Redis is reachable.
 *
 * One Lua script per `take`: it reads every bucket, decides, and writes all of them or none, in one
 * round trip (a script runs atomically: https://redis.io/docs/latest/develop/interact/programmability/eval-intro/).
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
import type { AdmitResult, Admission, LimitResult, LimitState, LimitStore, LimitTake, ReserveRelease, SpendCharge, SpendEntry } from './limit-store.js';

/**
 * Slack for floating-point error in milliseconds: TATs are sums of fractional intervals
 * (60000 / 7), so `limit` takes of 1 can land a few ulps over periodMs and must still fit.
 */
const EPS = 1e-6;

/** KEYS: the buckets. ARGV: now, then limit, periodMs, cost per bucket. Reply: refused index (0: none), retryAfterMs, then remaining and resetMs per bucket. */
export const TAKE_SCRIPT = `
local eps = ${EPS}
local now = tonumber(ARGV[1])
local n = #KEYS
local tats, newTats, intervals, periods = {}, {}, {}, {}
local refused, retry = 0, 0
for i = 1, n do
  local limit, period, cost = tonumber(ARGV[3 * i - 1]), tonumber(ARGV[3 * i]), tonumber(ARGV[3 * i + 1])
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
local reply = { refused, math.ceil(retry - eps) }
for i = 1, n do
  local t = tats[i]
  if refused == 0 then
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
return reply
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
const TAKE_SHA = sha1(TAKE_SCRIPT);
const ADJUST_SHA = sha1(ADJUST_SCRIPT);

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
  /** Takes admitted without Redis (fail open). */
  failedOpen: number;
  /** Takes refused because Redis was unreachable (fail closed). */
  failedClosed: number;
  /** Adjustments lost or left to the fallback because Redis was unreachable. */
  adjustmentsMissed: number;
}

export class RedisLimitStore implements LimitStore {
  readonly stats: RedisLimitStoreStats = { outages: 0, failedOpen: 0, failedClosed: 0, adjustmentsMissed: 0 };
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

  async take(takes: readonly LimitTake[], now: number): Promise<LimitResult> {
    if (takes.length === 0) return { allowed: true, states: [] };
    const keys = takes.map((t) => t.key);
    const args = [String(now)];
    for (const t of takes) args.push(String(t.limit), String(t.periodMs), String(t.cost));
    let reply: number[];
    try {
      reply = await this.run(TAKE_SHA, TAKE_SCRIPT, keys, args) as number[];
    } catch (err) {
      this.markDown(err);
      if (this.options.failureMode === 'closed') {
        this.stats.failedClosed++;
        throw new RateLimitStoreUnavailableError('Redis did not answer', { cause: err });
      }
      this.stats.failedOpen++;
      if (this.options.fallback) return this.options.fallback.take(takes, now);
      return { allowed: true, states: takes.map((t) => ({ key: t.key, limit: t.limit, remaining: Math.max(0, t.limit - t.cost), resetMs: 0 })) };
    }
    this.markUp();
    const states: LimitState[] = takes.map((t, i) => ({ key: t.key, limit: t.limit, remaining: reply[2 + 2 * i]!, resetMs: reply[3 + 2 * i]! }));
    const refusedIndex = reply[0]!;
    if (refusedIndex === 0) return { allowed: true, states };
    return { allowed: false, states, refused: states[refusedIndex - 1]!, retryAfterMs: reply[1]! };
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
    const command = (async () => {
      try {
        return await this.client.sendCommand(['EVALSHA', sha, ...tail]);
      } catch (err) {
        if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err;
        return await this.client.sendCommand(['EVAL', script, ...tail]);
      }
    })();
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
