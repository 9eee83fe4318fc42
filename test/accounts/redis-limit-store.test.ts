import assert from 'node:assert/strict';
import { createConnection } from 'node:net';
import { once } from 'node:events';
import { test, type TestContext } from 'node:test';
import type { LimitStore } from '../../src/accounts/limit-store.js';
import { RedisLimitStore, type RedisFailureMode, type RedisLimitStoreOptions } from '../../src/accounts/redis-limit-store.js';
import { RateLimitStoreUnavailableError } from '../../src/errors.js';
import { runLimitStoreContract, runSpendStoreContract } from '../support/limit-store-contract.js';
import { startRedis, type RedisServer } from '../support/redis.js';
import { withTimeout } from '../support/timeout.js';

interface Line {
  readonly level: 'warn' | 'info';
  readonly obj: object;
  readonly msg: string;
}

function memoryLogger() {
  const lines: Line[] = [];
  return {
    lines,
    warn: (obj: object, msg: string) => lines.push({ level: 'warn', obj, msg }),
    info: (obj: object, msg: string) => lines.push({ level: 'info', obj, msg }),
  };
}

async function connectedStore(t: TestContext, redis: RedisServer, options: Partial<RedisLimitStoreOptions> = {}) {
  const logger = memoryLogger();
  const store = new RedisLimitStore({ url: redis.url, failureMode: 'open', commandTimeoutMs: 2000, logger, ...options });
  t.after(() => store.close());
  await withTimeout(store.ready(), 'the store to connect to redis');
  return { store, logger };
}

/** One raw command on its own connection (RESP inline), for checks the store does not expose. */
async function rawCommand(redis: RedisServer, command: string): Promise<string> {
  const socket = createConnection({ port: redis.port, host: '127.0.0.1' });
  try {
    await once(socket, 'connect');
    socket.write(`${command}\r\n`);
    const [data] = (await once(socket, 'data')) as [Buffer];
    return data.toString('utf8');
  } finally {
    socket.destroy();
  }
}

test('the Redis store keeps the LimitStore contract (the same answers as the in-memory store)', async (t) => {
  const redis = await startRedis(t);
  await runLimitStoreContract(t, async (st) => (await connectedStore(st, redis)).store);
});

test('the Redis store keeps the spend contract (reservations, settle, end users, the admin listing)', async (t) => {
  const redis = await startRedis(t);
  await runSpendStoreContract(t, async (st) => (await connectedStore(st, redis)).store);
});

test('a bucket key expires when the bucket is full again (PX of its reset time, at most one period)', async (t) => {
  const redis = await startRedis(t);
  const { store } = await connectedStore(t, redis);
  const result = await store.take([{ key: 'rl:ttl', limit: 10, periodMs: 60_000, cost: 3 }], Date.now());
  assert.equal(result.allowed, true);
  const pttl = Number(/^:(-?\d+)/.exec(await rawCommand(redis, 'PTTL rl:ttl'))?.[1]);
  assert.ok(pttl > 0 && pttl <= 18_000, `PTTL ${pttl} should be in (0, 18000]`);
  // A refused take writes nothing, so it cannot extend a key's life either.
  await store.take([{ key: 'rl:ttl', limit: 10, periodMs: 60_000, cost: 20 }], Date.now());
  const after = Number(/^:(-?\d+)/.exec(await rawCommand(redis, 'PTTL rl:ttl'))?.[1]);
  assert.ok(after <= pttl, `PTTL ${after} after a refused take should not exceed ${pttl}`);
});

test('two stores (two replicas, two connections) sharing one Redis admit exactly `limit` of 200 concurrent takes', async (t) => {
  const redis = await startRedis(t);
  const { store: a } = await connectedStore(t, redis);
  const { store: b } = await connectedStore(t, redis);
  const now = Date.now();
  const takes = Array.from({ length: 200 }, (_, i) => (i % 2 === 0 ? a : b).take([
    { key: 'rl:key:shared:rpm', limit: 60, periodMs: 60_000, cost: 1 },
    { key: 'rl:team:shared:rpm', limit: 1000, periodMs: 60_000, cost: 1 },
  ], now));
  const results = await Promise.all(takes);
  assert.equal(results.filter((r) => r.allowed).length, 60);
  // All or nothing held under contention: the team bucket was taken from exactly as often.
  const team = await a.take([{ key: 'rl:team:shared:rpm', limit: 1000, periodMs: 60_000, cost: 1 }], now);
  assert.equal(team.states[0]!.remaining, 1000 - 60 - 1);
});

/** A fallback that admits and records, standing in for the in-memory store. */
function recordingFallback(): LimitStore & { takes: number } {
  return {
    takes: 0,
    take(takes) {
      this.takes++;
      return { allowed: true, states: takes.map((x) => ({ key: x.key, limit: x.limit, remaining: x.limit - x.cost, resetMs: 0 })) };
    },
    admit(admission) {
      this.takes++;
      return { limits: { allowed: true, states: [] }, budget: undefined, balances: admission.reads.map(() => ({ spentNano: 0, reservedNano: 0 })) };
    },
    adjust() {},
    settle() {},
    spend: () => [],
    resetSpend() {},
    async close() {},
  };
}

for (const failureMode of ['open', 'closed'] as const satisfies readonly RedisFailureMode[]) {
  test(`Redis killed mid-run: fail ${failureMode}`, async (t) => {
    const redis = await startRedis(t);
    const fallback = recordingFallback();
    const { store, logger } = await connectedStore(t, redis, { failureMode, fallback });
    const take = () => store.take([{ key: 'rl:outage', limit: 2, periodMs: 60_000, cost: 1 }], Date.now());
    assert.equal((await take()).allowed, true);
    assert.equal((await take()).allowed, true);
    assert.equal((await take()).allowed, false, 'Redis holds the limit while it is up');
    await redis.kill();
    for (let i = 0; i < 3; i++) {
      if (failureMode === 'open') {
        assert.equal((await take()).allowed, true, 'fail open admits under the fallback store');
      } else {
        await assert.rejects(take(), (err: unknown) => err instanceof RateLimitStoreUnavailableError && err.status === 503 && err.code === 'rate_limit_store_unavailable');
      }
    }
    await store.adjust('rl:outage', 2, 60_000, -1, Date.now());
    assert.deepEqual(store.stats, {
      outages: 1,
      failedOpen: failureMode === 'open' ? 3 : 0,
      failedClosed: failureMode === 'closed' ? 3 : 0,
      adjustmentsMissed: 1,
      settlementsMissed: 0,
    });
    assert.equal(fallback.takes, failureMode === 'open' ? 3 : 0);
    const warnings = logger.lines.filter((l) => l.level === 'warn');
    assert.equal(warnings.length, 1, 'one log line per outage, not per request or reconnect attempt');
    assert.match(warnings[0]!.msg, failureMode === 'open' ? /failing open, limits hold per replica only/ : /failing closed/);
    assert.doesNotMatch(JSON.stringify(logger.lines), new RegExp(`redis://`), 'the URL (which may hold a password) is never logged');
  });
}

test('a stuck Redis (SIGSTOP) fails a take after REDIS_COMMAND_TIMEOUT_MS, not never', async (t) => {
  const redis = await startRedis(t);
  const { store } = await connectedStore(t, redis, { failureMode: 'closed', commandTimeoutMs: 100 });
  assert.equal((await store.take([{ key: 'rl:stuck', limit: 5, periodMs: 1000, cost: 1 }], Date.now())).allowed, true);
  redis.child.kill('SIGSTOP');
  t.after(() => redis.child.kill('SIGCONT'));
  await withTimeout(
    assert.rejects(store.take([{ key: 'rl:stuck', limit: 5, periodMs: 1000, cost: 1 }], Date.now()), RateLimitStoreUnavailableError),
    'the take to time out',
    5000,
  );
});

test('a store whose Redis is not there at start serves in its failure mode, and never throws an unhandled error', async (t) => {
  const redis = await startRedis(t);
  await redis.kill();
  const logger = memoryLogger();
  const store = new RedisLimitStore({ url: redis.url, failureMode: 'closed', commandTimeoutMs: 100, logger });
  t.after(() => store.close());
  await assert.rejects(store.take([{ key: 'rl:absent', limit: 1, periodMs: 1000, cost: 1 }], Date.now()), RateLimitStoreUnavailableError);
  assert.equal(logger.lines.filter((l) => l.level === 'warn').length, 1);
});
