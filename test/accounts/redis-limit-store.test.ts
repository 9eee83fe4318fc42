import assert from 'node:assert/strict';
import { createConnection } from 'node:net';
import { once } from 'node:events';
import { test, type TestContext } from 'node:test';
import type { Admission, LimitStore } from '../../src/accounts/limit-store.js';
import { RedisLimitStore, USER_SET_TTL_MS, type RedisFailureMode, type RedisLimitStoreOptions } from '../../src/accounts/redis-limit-store.js';
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

test('two stores sharing one Redis under 200 concurrent admits reserving against one cap admit exactly floor(cap / amount)', async (t) => {
  const redis = await startRedis(t);
  const { store: a } = await connectedStore(t, redis);
  const { store: b } = await connectedStore(t, redis);
  const now = Date.now();
  const cap = 10_000_000;
  const amount = 333_333;
  const reserve = { key: 'sp:key:shared:d:2026-11-30', capNano: cap, amountNano: amount, expireAt: now + 86_400_000 };
  const results = await Promise.all(Array.from({ length: 200 }, (_, i) => (i % 2 === 0 ? a : b).admit({
    takes: [{ key: 'rl:key:shared:rpm', limit: 1000, periodMs: 60_000, cost: 1 }],
    reserves: [reserve],
    reads: [],
  }, now)));
  const admitted = Math.floor(cap / amount);
  assert.equal(results.filter((r) => r.budget === undefined).length, admitted);
  const [balance] = (await a.admit({ takes: [], reserves: [], reads: [reserve.key] }, now)).balances;
  assert.deepEqual(balance, { spentNano: 0, reservedNano: admitted * amount });
  // The refused ones took no unit of the rate limit either (one script, all or nothing).
  const rpm = await a.take([{ key: 'rl:key:shared:rpm', limit: 1000, periodMs: 60_000, cost: 1 }], now);
  assert.equal(rpm.states[0]!.remaining, 1000 - admitted - 1);
});

test('counters expire at their expireAt (never earlier than a later expiry already set), and amounts past 1e15 stay integers', async (t) => {
  const redis = await startRedis(t);
  const { store } = await connectedStore(t, redis);
  const now = Date.now();
  const pttl = async (key: string) => Number(/^:(-?\d+)/.exec(await rawCommand(redis, `PTTL ${key}`))?.[1]);
  const month = 'sp:key:ttl:m:2026-11';
  await store.admit({ takes: [], reserves: [{ key: month, capNano: 4e15, amountNano: 1e15, expireAt: now + 3_000_000 }], reads: [] }, now);
  const first = await pttl(month);
  assert.ok(first > 3_000_000 - 5000 && first <= 3_000_000, `PTTL ${first} should be about 3,000,000`);
  // A settle naming an earlier expiry does not shorten the counter's life; a later one extends it.
  await store.settle([{ key: month, amountNano: 1e15 }], [{ key: month, amountNano: 2e15, expireAt: now + 1_000_000 }], now);
  assert.ok(await pttl(month) > 3_000_000 - 5000);
  await store.settle([], [{ key: month, amountNano: 1, expireAt: now + 9_000_000 }], now);
  const later = await pttl(month);
  assert.ok(later > 9_000_000 - 5000 && later <= 9_000_000, `PTTL ${later} should be about 9,000,000`);
  const [balance] = (await store.admit({ takes: [], reserves: [], reads: [month] }, now)).balances;
  assert.deepEqual(balance, { spentNano: 2e15 + 1, reservedNano: 0 });
  // A release for a counter that is gone does not create one without an expiry.
  await store.settle([{ key: 'sp:key:ttl:d:2026-11-29', amountNano: 5 }], [], now);
  assert.equal(await pttl('sp:key:ttl:d:2026-11-29'), -2);
});

test('end users stay bounded when two stores (replicas) touch the same key\'s set', async (t) => {
  const redis = await startRedis(t);
  const { store: a } = await connectedStore(t, redis);
  const { store: b } = await connectedStore(t, redis);
  const now = Date.now();
  const prefix = 'sp:user:k:';
  const touch = (member: string) => ({ setKey: 'us:k', member, max: 5, counterPrefix: prefix, counterSuffixes: [':d:2026-11-30'] });
  await Promise.all(Array.from({ length: 40 }, (_, i) => (i % 2 === 0 ? a : b).settle([], [{ key: `${prefix}u${i}:d:2026-11-30`, amountNano: 1, expireAt: now + 60_000 }], now)));
  await Promise.all(Array.from({ length: 40 }, (_, i) => (i % 2 === 0 ? a : b).admit({ takes: [], reserves: [], reads: [], user: touch(`u${i}`) }, now + i)));
  assert.match(await rawCommand(redis, 'ZCARD us:k'), /^:5\r\n/);
  // Exactly the members still in the set kept their counters: the others went with their eviction.
  const members = (await rawCommand(redis, 'ZRANGE us:k 0 -1')).split('\r\n').filter((line) => /^u\d+$/.test(line)).sort();
  assert.deepEqual(members, ['u35', 'u36', 'u37', 'u38', 'u39']);
  const listed = (await a.spend(prefix, now)).map((e) => e.key.slice(prefix.length, -':d:2026-11-30'.length)).sort();
  assert.deepEqual(listed, members);
  const setTtl = Number(/^:(-?\d+)/.exec(await rawCommand(redis, 'PTTL us:k'))?.[1]);
  assert.ok(setTtl > 0 && setTtl <= USER_SET_TTL_MS, `the set expires (PTTL ${setTtl})`);
});

test('after SCRIPT FLUSH (a Redis restart or failover) every script is loaded again (NOSCRIPT, then EVAL)', async (t) => {
  const redis = await startRedis(t);
  const { store } = await connectedStore(t, redis);
  const now = Date.now();
  const key = 'sp:key:flush:d:2026-11-30';
  await store.admit({ takes: [{ key: 'rl:flush', limit: 5, periodMs: 1000, cost: 1 }], reserves: [{ key, capNano: 100, amountNano: 10, expireAt: now + 60_000 }], reads: [] }, now);
  await store.settle([{ key, amountNano: 10 }], [{ key, amountNano: 7, expireAt: now + 60_000 }], now);
  await store.resetSpend([key]);
  assert.match(await rawCommand(redis, 'SCRIPT FLUSH'), /^\+OK/);
  const admitted = await store.admit({ takes: [{ key: 'rl:flush', limit: 5, periodMs: 1000, cost: 1 }], reserves: [{ key, capNano: 100, amountNano: 10, expireAt: now + 60_000 }], reads: [key] }, now);
  assert.equal(admitted.limits.states[0]!.remaining, 3);
  assert.deepEqual(admitted.balances, [{ spentNano: 0, reservedNano: 0 }]);
  assert.match(await rawCommand(redis, 'SCRIPT FLUSH'), /^\+OK/);
  await store.settle([{ key, amountNano: 10 }], [{ key, amountNano: 9, expireAt: now + 60_000 }], now);
  assert.match(await rawCommand(redis, 'SCRIPT FLUSH'), /^\+OK/);
  assert.deepEqual(await store.spend('sp:key:flush:', now), [{ key, spentNano: 9, reservedNano: 0 }]);
  await store.resetSpend([key]);
  assert.deepEqual(await store.spend('sp:key:flush:', now), [{ key, spentNano: 0, reservedNano: 0 }]);
  assert.deepEqual(store.stats.settlementsMissed, 0);
});

/** A fallback that admits and records, standing in for the in-memory store. */
function recordingFallback(): LimitStore & { takes: number; admissions: Admission[]; settlements: number } {
  return {
    takes: 0,
    admissions: [],
    settlements: 0,
    take(takes) {
      this.takes++;
      return { allowed: true, states: takes.map((x) => ({ key: x.key, limit: x.limit, remaining: x.limit - x.cost, resetMs: 0 })) };
    },
    admit(admission) {
      this.takes++;
      this.admissions.push(admission);
      return { limits: { allowed: true, states: [] }, budget: undefined, balances: admission.reads.map(() => ({ spentNano: 0, reservedNano: 0 })) };
    },
    adjust() {},
    settle() {
      this.settlements++;
    },
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
    // A budget reservation goes the same way: to the fallback's admit (budgets then hold per replica), or 503.
    const reserve = { key: 'sp:key:outage:d:2026-11-30', capNano: 1000, amountNano: 10, expireAt: Date.now() + 60_000 };
    const admission: Admission = { takes: [], reserves: [reserve], reads: [reserve.key] };
    if (failureMode === 'open') {
      assert.deepEqual(await store.admit(admission, Date.now()), { limits: { allowed: true, states: [] }, budget: undefined, balances: [{ spentNano: 0, reservedNano: 0 }] });
      assert.deepEqual(fallback.admissions.at(-1), admission);
    } else {
      await assert.rejects(store.admit(admission, Date.now()), RateLimitStoreUnavailableError);
    }
    await store.adjust('rl:outage', 2, 60_000, -1, Date.now());
    await store.settle([{ key: reserve.key, amountNano: 10 }], [{ key: reserve.key, amountNano: 4, expireAt: reserve.expireAt }], Date.now());
    // The admin API's calls have no failure mode: they throw the registry's 503.
    await assert.rejects(store.spend('sp:', Date.now()), RateLimitStoreUnavailableError);
    await assert.rejects(store.resetSpend([reserve.key]), RateLimitStoreUnavailableError);
    assert.deepEqual(store.stats, {
      outages: 1,
      failedOpen: failureMode === 'open' ? 4 : 0,
      failedClosed: failureMode === 'closed' ? 4 : 0,
      adjustmentsMissed: 1,
      settlementsMissed: 1,
    });
    assert.equal(fallback.takes, failureMode === 'open' ? 4 : 0);
    assert.equal(fallback.settlements, failureMode === 'open' ? 1 : 0, 'failing open, the settlement is applied to the fallback');
    const warnings = logger.lines.filter((l) => l.level === 'warn');
    assert.equal(warnings.length, 1, 'one log line per outage, not per request or reconnect attempt');
    assert.match(warnings[0]!.msg, failureMode === 'open' ? /failing open, limits hold per replica only/ : /failing closed/);
    assert.doesNotMatch(JSON.stringify(logger.lines), new RegExp(`redis://`), 'the URL (which may hold a password) is never logged');
  });
}

test('failing open without a fallback admits every admission, with zero balances', async (t) => {
  const redis = await startRedis(t);
  const { store } = await connectedStore(t, redis, { failureMode: 'open' });
  await redis.kill();
  const reserve = { key: 'sp:key:nofallback:d:2026-11-30', capNano: 1, amountNano: 10, expireAt: Date.now() + 60_000 };
  const result = await store.admit({ takes: [{ key: 'rl:nofallback', limit: 5, periodMs: 1000, cost: 2 }], reserves: [reserve], reads: [reserve.key] }, Date.now());
  assert.deepEqual(result, {
    limits: { allowed: true, states: [{ key: 'rl:nofallback', limit: 5, remaining: 3, resetMs: 0 }] },
    budget: undefined,
    balances: [{ spentNano: 0, reservedNano: 0 }],
  });
  assert.equal(store.stats.failedOpen, 1);
});

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
