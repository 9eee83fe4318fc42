import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { TestContext } from 'node:test';
import type { Admission, BudgetReserve, LimitResult, LimitStore, LimitTake, UserTouch } from '../../src/accounts/limit-store.js';

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

/**
 * The budget semantics every LimitStore has (issue 16, items 2, 3 and 5), as subtests of `t`: the
 * reservation rule of `admit`, `settle`, the end-user bound, the admin listing and reset. Counter
 * keys are unique per subtest (a random prefix inside the `sp:` namespace), so stores may share
 * their backend.
 */
export async function runSpendStoreContract(t: TestContext, makeStore: (t: TestContext) => LimitStore | Promise<LimitStore>): Promise<void> {
  const T0 = 1_700_000_000_000;
  const LATER = T0 + 3_600_000;
  const setup = async (st: TestContext) => {
    const store = await makeStore(st);
    st.after(() => store.close());
    const id = randomUUID().slice(0, 8);
    const k = (name: string) => `sp:key:c${id}${name}:d:2026-11-30`;
    const admit = (admission: Partial<Admission>, now = T0) =>
      Promise.resolve(store.admit({ takes: [], reserves: [], reads: [], ...admission }, now));
    const reserve = (name: string, capNano: number, amountNano: number): BudgetReserve => ({ key: k(name), capNano, amountNano, expireAt: LATER });
    const balance = async (name: string) => (await admit({ reads: [k(name)] })).balances[0];
    return { store, id, k, admit, reserve, balance };
  };

  await t.test('reservations hold until the cap; the one that would pass it is refused and holds nothing', async (st) => {
    const { admit, reserve, balance, k } = await setup(st);
    for (let i = 0; i < 3; i++) {
      const r = await admit({ reserves: [reserve('a', 1000, 300)] });
      assert.equal(r.limits.allowed, true);
      assert.equal(r.budget, undefined);
    }
    assert.deepEqual(await balance('a'), { spentNano: 0, reservedNano: 900 });
    const refused = await admit({ reserves: [reserve('a', 1000, 200)] });
    assert.deepEqual(refused.budget, { key: k('a'), capNano: 1000, spentNano: 0, reservedNano: 900 });
    assert.deepEqual(await balance('a'), { spentNano: 0, reservedNano: 900 }, 'the refused request reserved nothing');
    // Exactly up to the cap fits.
    assert.equal((await admit({ reserves: [reserve('a', 1000, 100)] })).budget, undefined);
    assert.deepEqual(await balance('a'), { spentNano: 0, reservedNano: 1000 });
  });

  await t.test('all or nothing across budgets and rate limits: one refusal leaves every counter and bucket as it was', async (st) => {
    const { admit, reserve, balance, k, id } = await setup(st);
    const bucket: LimitTake = { key: `rl:c${id}:rpm`, limit: 5, periodMs: 60_000, cost: 1 };
    await admit({ reserves: [reserve('team', 500, 400)] });
    const r = await admit({ takes: [bucket], reserves: [reserve('key', 1000, 200), reserve('team', 500, 200)] });
    assert.equal(r.limits.allowed, true, 'the limits had room');
    assert.equal(r.budget?.key, k('team'));
    assert.deepEqual(await balance('key'), { spentNano: 0, reservedNano: 0 });
    assert.deepEqual(await balance('team'), { spentNano: 0, reservedNano: 400 });
    const taken = await admit({ takes: [bucket] });
    assert.equal(taken.limits.states[0]!.remaining, 4, 'the refused request took no unit of the rate limit');
    // A rate limit that refuses: no reservation is made.
    const full: LimitTake = { key: `rl:c${id}:full`, limit: 1, periodMs: 60_000, cost: 1 };
    await admit({ takes: [full] });
    const limited = await admit({ takes: [full], reserves: [reserve('key', 1000, 100)] });
    assert.equal(limited.limits.allowed, false);
    assert.equal(limited.budget, undefined);
    assert.deepEqual(await balance('key'), { spentNano: 0, reservedNano: 0 });
  });

  await t.test('a request that reserves nothing (a free model) is never refused, even past the cap', async (st) => {
    const { store, admit, reserve, k } = await setup(st);
    await store.settle([], [{ key: k('a'), amountNano: 5000, expireAt: LATER }], T0);
    assert.equal((await admit({ reserves: [reserve('a', 1000, 0)] })).budget, undefined);
    assert.equal((await admit({ reserves: [reserve('a', 1000, 1)] })).budget?.spentNano, 5000);
  });

  await t.test('settle gives back the reservation and adds the spend; reads are the balances before the admission', async (st) => {
    const { store, admit, reserve, balance, k } = await setup(st);
    const first = await admit({ reserves: [reserve('a', 10_000, 3000)], reads: [k('a'), k('never')] });
    assert.deepEqual(first.balances, [{ spentNano: 0, reservedNano: 0 }, { spentNano: 0, reservedNano: 0 }]);
    await store.settle([{ key: k('a'), amountNano: 3000 }], [{ key: k('a'), amountNano: 1200, expireAt: LATER }, { key: k('b'), amountNano: 1200, expireAt: LATER }], T0);
    assert.deepEqual(await balance('a'), { spentNano: 1200, reservedNano: 0 });
    assert.deepEqual(await balance('b'), { spentNano: 1200, reservedNano: 0 });
    // A reconciliation below the provisional amount: negative, never below 0; a release never below 0.
    await store.settle([{ key: k('a'), amountNano: 99 }], [{ key: k('a'), amountNano: -200, expireAt: LATER }, { key: k('b'), amountNano: -5000, expireAt: LATER }], T0);
    assert.deepEqual(await balance('a'), { spentNano: 1000, reservedNano: 0 });
    assert.deepEqual(await balance('b'), { spentNano: 0, reservedNano: 0 });
    // Reads of a refused admission are still returned.
    const refused = await admit({ reserves: [reserve('a', 1000, 5)], reads: [k('a')] });
    assert.notEqual(refused.budget, undefined);
    assert.deepEqual(refused.balances, [{ spentNano: 1000, reservedNano: 0 }]);
  });

  await t.test('end users: at most `max` per key, the least recently seen evicted with its counters', async (st) => {
    const { store, admit, id } = await setup(st);
    const prefix = `sp:user:c${id}:`;
    const suffixes = [':d:2026-11-30', ':m:2026-11'];
    const touch = (member: string): UserTouch => ({ setKey: `us:c${id}`, member, max: 2, counterPrefix: prefix, counterSuffixes: suffixes });
    const counter = (member: string) => `${prefix}${member}:d:2026-11-30`;
    const spent = async (member: string) => (await admit({ reads: [counter(member)] })).balances[0]!.spentNano;
    for (const [i, member] of ['u1', 'u2'].entries()) {
      await admit({ user: touch(member) }, T0 + i);
      await store.settle([], [{ key: counter(member), amountNano: 100, expireAt: LATER }, { key: `${prefix}${member}:m:2026-11`, amountNano: 100, expireAt: LATER }], T0);
    }
    // u1 seen again: u2 is now the least recently seen, and goes when u3 comes.
    await admit({ user: touch('u1') }, T0 + 10);
    await admit({ user: touch('u3') }, T0 + 11);
    assert.equal(await spent('u1'), 100);
    assert.equal(await spent('u2'), 0, 'evicted: its day counter is gone');
    assert.equal((await admit({ reads: [`${prefix}u2:m:2026-11`] })).balances[0]!.spentNano, 0, 'and its month counter');
    // A refused admission does not record its user.
    const full: LimitTake = { key: `rl:c${id}:one`, limit: 1, periodMs: 60_000, cost: 1 };
    await admit({ takes: [full] });
    await admit({ takes: [full], user: touch('u4') }, T0 + 12);
    assert.equal(await spent('u1'), 100, 'u4 was refused: nobody was evicted');
  });

  await t.test('the admin listing and reset', async (st) => {
    const { store, admit, reserve, k, id } = await setup(st);
    await store.settle([], [{ key: k('a'), amountNano: 700, expireAt: LATER }, { key: k('b'), amountNano: 300, expireAt: LATER }], T0);
    await admit({ reserves: [reserve('a', 10_000, 50)] });
    const listed = (await store.spend(`sp:key:c${id}`, T0)).sort((x, y) => x.key.localeCompare(y.key));
    assert.deepEqual(listed, [{ key: k('a'), spentNano: 700, reservedNano: 50 }, { key: k('b'), spentNano: 300, reservedNano: 0 }]);
    await store.resetSpend([k('a')]);
    const after = (await store.spend(`sp:key:c${id}`, T0)).sort((x, y) => x.key.localeCompare(y.key));
    assert.deepEqual(after, [{ key: k('a'), spentNano: 0, reservedNano: 50 }, { key: k('b'), spentNano: 300, reservedNano: 0 }]);
  });
}
