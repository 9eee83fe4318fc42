import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { TestContext } from 'node:test';
import type { LimitResult, LimitStore, LimitTake } from '../../src/accounts/limit-store.js';

/**
 * The GCRA semantics every LimitStore has (issue 16, item 4), as subtests of `t`: the in-memory
 * store and the Redis store run the same sequences and must give the same answers, so a deployment
 * that adds REDIS_URL changes where the state lives, not what a client sees. The semantics are
 * written out in src/accounts/redis-limit-store.ts (interval = periodMs / limit, burst = limit,
 * remaining floored, resetMs and retryAfterMs rounded up to whole milliseconds).
 *
 * `makeStore` gives a fresh store per subtest (closed by the contract); bucket keys are unique per
 * subtest, so stores may share their backend.
 */
export async function runLimitStoreContract(t: TestContext, makeStore: (t: TestContext) => LimitStore | Promise<LimitStore>): Promise<void> {
  const T0 = 1_700_000_000_000;
  const setup = async (st: TestContext) => {
    const store = await makeStore(st);
    st.after(() => store.close());
    const prefix = `contract:${randomUUID()}:`;
    const take = (now: number, ...takes: LimitTake[]) => Promise.resolve(store.take(takes.map((x) => ({ ...x, key: prefix + x.key })), now));
    return { store, prefix, take };
  };
  const rpm = (key: string, cost = 1): LimitTake => ({ key, limit: 5, periodMs: 1000, cost });
  const strip = (r: LimitResult, prefix: string) => ({
    ...r,
    states: r.states.map((s) => ({ ...s, key: s.key.slice(prefix.length) })),
    ...(!r.allowed && { refused: { ...r.refused, key: r.refused.key.slice(prefix.length) } }),
  });

  await t.test('a burst of `limit` is admitted, the next take is refused with the time until one fits', async (st) => {
    const { take, prefix } = await setup(st);
    for (let i = 1; i <= 5; i++) {
      assert.deepEqual(strip(await take(T0, rpm('a')), prefix), { allowed: true, states: [{ key: 'a', limit: 5, remaining: 5 - i, resetMs: 200 * i }] });
    }
    const state = { key: 'a', limit: 5, remaining: 0, resetMs: 1000 };
    assert.deepEqual(strip(await take(T0, rpm('a')), prefix), { allowed: false, states: [state], refused: state, retryAfterMs: 200 });
    // One interval later exactly one more fits; half an interval later none does yet.
    assert.equal((await take(T0 + 100, rpm('a'))).allowed, false);
    assert.deepEqual(strip(await take(T0 + 200, rpm('a')), prefix), { allowed: true, states: [{ key: 'a', limit: 5, remaining: 0, resetMs: 1000 }] });
    // A full period after the last take the bucket is full again.
    assert.deepEqual(strip(await take(T0 + 1200, rpm('a')), prefix), { allowed: true, states: [{ key: 'a', limit: 5, remaining: 4, resetMs: 200 }] });
  });

  await t.test('all or nothing: a refused take leaves every bucket as it was; `refused` is the first refusing one', async (st) => {
    const { take, prefix } = await setup(st);
    const team = (cost = 1): LimitTake => ({ key: 'team', limit: 2, periodMs: 1000, cost });
    assert.equal((await take(T0, rpm('key'), team())).allowed, true);
    assert.equal((await take(T0, rpm('key'), team())).allowed, true);
    const refused = strip(await take(T0, rpm('key'), team()), prefix);
    assert.deepEqual(refused, {
      allowed: false,
      states: [{ key: 'key', limit: 5, remaining: 3, resetMs: 400 }, { key: 'team', limit: 2, remaining: 0, resetMs: 1000 }],
      refused: { key: 'team', limit: 2, remaining: 0, resetMs: 1000 },
      retryAfterMs: 500,
    });
    // The key's bucket was not taken from by the refused request.
    assert.deepEqual(strip(await take(T0, rpm('key')), prefix), { allowed: true, states: [{ key: 'key', limit: 5, remaining: 2, resetMs: 600 }] });
    // Two refusing buckets: the first named is `refused`, retryAfterMs waits for both.
    const full = { key: 'one', limit: 1, periodMs: 1000, cost: 1 };
    await take(T0, full);
    const both = await take(T0, full, team());
    assert.equal(both.allowed, false);
    if (!both.allowed) {
      assert.equal(both.refused.key, `${prefix}one`);
      assert.equal(both.retryAfterMs, 1000);
    }
  });

  await t.test('a cost above one (tokens) takes that many units; a take that does not fit waits for its whole cost', async (st) => {
    const { take, prefix } = await setup(st);
    const tpm = (cost: number): LimitTake => ({ key: 'tpm', limit: 1000, periodMs: 60_000, cost });
    assert.deepEqual(strip(await take(T0, tpm(600)), prefix), { allowed: true, states: [{ key: 'tpm', limit: 1000, remaining: 400, resetMs: 36_000 }] });
    const state = { key: 'tpm', limit: 1000, remaining: 400, resetMs: 36_000 };
    assert.deepEqual(strip(await take(T0, tpm(500)), prefix), { allowed: false, states: [state], refused: state, retryAfterMs: 6000 });
    assert.equal((await take(T0 + 6000, tpm(500))).allowed, true);
  });

  await t.test('an interval that is not a whole number of milliseconds still admits exactly `limit`', async (st) => {
    const { take, prefix } = await setup(st);
    const third = (): LimitTake => ({ key: 'third', limit: 3, periodMs: 1000, cost: 1 });
    const got = [];
    for (let i = 0; i < 4; i++) got.push(strip(await take(T0, third()), prefix));
    assert.deepEqual(got.map((r) => r.allowed), [true, true, true, false]);
    assert.deepEqual(got.map((r) => [r.states[0]!.remaining, r.states[0]!.resetMs]), [[2, 334], [1, 667], [0, 1000], [0, 1000]]);
    assert.equal((got[3] as { retryAfterMs: number }).retryAfterMs, 334);
  });

  await t.test('adjust corrects a bucket by the real count, both ways', async (st) => {
    const { store, take, prefix } = await setup(st);
    const tpm = (cost: number): LimitTake => ({ key: 'tpm', limit: 1000, periodMs: 60_000, cost });
    await take(T0, tpm(600));
    // The request used 200 tokens, not the 600 estimated: 400 come back.
    await store.adjust(`${prefix}tpm`, 1000, 60_000, -400, T0);
    assert.deepEqual(strip(await take(T0, tpm(800)), prefix), { allowed: true, states: [{ key: 'tpm', limit: 1000, remaining: 0, resetMs: 60_000 }] });
    // A bucket charged more than its limit after the fact refuses until the excess has drained.
    await store.adjust(`${prefix}fresh`, 1000, 60_000, 1500, T0);
    const after = await take(T0, { key: 'fresh', limit: 1000, periodMs: 60_000, cost: 1 });
    assert.equal(after.allowed, false);
    if (!after.allowed) assert.equal(after.retryAfterMs, 30_060);
    // Giving back more than was taken leaves a full bucket, never more than full.
    await store.adjust(`${prefix}back`, 5, 1000, -10, T0);
    assert.deepEqual(strip(await take(T0, rpm('back')), prefix), { allowed: true, states: [{ key: 'back', limit: 5, remaining: 4, resetMs: 200 }] });
  });

  await t.test('no takes: allowed, no states', async (st) => {
    const { store } = await setup(st);
    assert.deepEqual(await store.take([], T0), { allowed: true, states: [] });
  });
}
