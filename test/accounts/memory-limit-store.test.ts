import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { LimitResult, LimitTake } from '../../src/accounts/limit-store.js';
import { MemoryLimitStore, SWEEP_INTERVAL_MS } from '../../src/accounts/memory-limit-store.js';
import { runLimitStoreContract, runSpendStoreContract } from '../support/limit-store-contract.js';

const MINUTE = 60_000;

function rpm(key: string, limit: number): LimitTake {
  return { key, limit, periodMs: MINUTE, cost: 1 };
}

function refusedBy(result: LimitResult): { key: string; retryAfterMs: number } {
  assert.equal(result.allowed, false, 'refused');
  if (result.allowed) throw new Error('unreachable');
  return { key: result.refused.key, retryAfterMs: result.retryAfterMs };
}

test('GCRA: a full bucket lets `limit` requests through at once, counting down remaining and reset', () => {
  const store = new MemoryLimitStore();
  const seen = [0, 1, 2].map(() => store.take([rpm('k', 3)], 0));
  assert.deepEqual(seen.map((r) => r.allowed), [true, true, true]);
  assert.deepEqual(seen.map((r) => r.states[0]!.remaining), [2, 1, 0]);
  assert.deepEqual(seen.map((r) => r.states[0]!.resetMs), [20_000, 40_000, 60_000]);
});

test('GCRA: past the burst, Retry-After is exactly when one emission interval has refilled', () => {
  const store = new MemoryLimitStore();
  for (let i = 0; i < 3; i++) store.take([rpm('k', 3)], 0);
  assert.deepEqual(refusedBy(store.take([rpm('k', 3)], 0)), { key: 'k', retryAfterMs: 20_000 });
  assert.deepEqual(refusedBy(store.take([rpm('k', 3)], 19_999)), { key: 'k', retryAfterMs: 1 });
  const refill = store.take([rpm('k', 3)], 20_000);
  assert.equal(refill.allowed, true, 'one request is back after 20 s');
  assert.equal(refill.states[0]!.remaining, 0);
  // A refused take took nothing: the refusals above did not push the bucket further out.
  assert.deepEqual(refusedBy(store.take([rpm('k', 3)], 20_000)), { key: 'k', retryAfterMs: 20_000 });
});

test('GCRA: refill is steady, one unit per interval, never above the limit', () => {
  const store = new MemoryLimitStore();
  for (let i = 0; i < 3; i++) store.take([rpm('k', 3)], 0);
  const later = store.take([rpm('k', 3)], 10 * MINUTE);
  assert.equal(later.states[0]!.remaining, 2, 'a long idle bucket is full, not over-full');
});

test('atomic: a multi-take refused by one bucket takes nothing from the others', () => {
  const store = new MemoryLimitStore();
  assert.equal(store.take([rpm('team', 1)], 0).allowed, true);
  const both = store.take([rpm('key', 10), rpm('team', 1)], 0);
  assert.equal(refusedBy(both).key, 'team');
  assert.equal(both.states[0]!.remaining, 10, 'the key bucket is reported as it is, untaken');
  assert.equal(store.take([rpm('key', 10)], 0).states[0]!.remaining, 9, 'the key bucket was full: nothing was taken');
});

test('atomic: retryAfterMs is the longest wait of the refusing takes', () => {
  const store = new MemoryLimitStore();
  store.take([rpm('a', 2), rpm('b', 1)], 0);
  store.take([rpm('a', 2)], 0);
  // a: 60 s ahead, +30 s for one more -> 30 s; b: 60 s ahead, +60 s -> 60 s.
  const result = store.take([rpm('a', 2), rpm('b', 1)], 0);
  assert.deepEqual(refusedBy(result), { key: 'a', retryAfterMs: 60_000 });
});

test('adjust: a token bucket is corrected by the real count, both ways', () => {
  const store = new MemoryLimitStore();
  const tpm = (cost: number): LimitTake => ({ key: 't', limit: 1000, periodMs: MINUTE, cost });
  assert.equal(store.take([tpm(800)], 0).states[0]!.remaining, 200);
  assert.equal(store.take([tpm(900)], 0).allowed, false, 'the estimate holds the bucket');
  store.adjust('t', 1000, MINUTE, -700, 0);
  const after = store.take([tpm(900)], 0);
  assert.equal(after.allowed, true, 'the real count (100) freed 700 tokens');
  assert.equal(after.states[0]!.remaining, 0);
  store.adjust('t', 1000, MINUTE, 500, 0);
  assert.equal(refusedBy(store.take([tpm(1)], 0)).retryAfterMs, 30_000 + 60, 'usage above the estimate is debt');
  store.adjust('t', 1000, MINUTE, -1_000_000, 0);
  assert.equal(store.take([tpm(1)], 0).states[0]!.remaining, 999, 'a correction never fills past the limit');
});

test('bounded: full buckets are swept out, at most once per sweep interval', () => {
  const store = new MemoryLimitStore();
  for (let i = 0; i < 100; i++) store.take([rpm(`k${i}`, 60)], 0);
  assert.equal(store.size, 100);
  store.take([rpm('k0', 60)], 1000);
  assert.equal(store.size, 100, 'no sweep before the interval');
  store.take([rpm('k0', 60)], SWEEP_INTERVAL_MS);
  assert.equal(store.size, 1, 'every idle (full) bucket is gone; the one just taken stays');
});

test('the in-memory store keeps the LimitStore contracts (the same answers as the Redis store)', async (t) => {
  await runLimitStoreContract(t, () => new MemoryLimitStore());
  await runSpendStoreContract(t, () => new MemoryLimitStore());
});

test('spend counters expire by the injected clock: read as 0, not listed, and swept', () => {
  const store = new MemoryLimitStore();
  store.settle([], [{ key: 'sp:key:a:d:2026-11-30', amountNano: 5, expireAt: 1000 }, { key: 'sp:key:a:m:2026-11', amountNano: 5, expireAt: 10 * MINUTE }], 0);
  assert.equal(store.counterCount, 2);
  const read = (now: number) => store.admit({ takes: [], reserves: [], reads: ['sp:key:a:d:2026-11-30'] }, now).balances[0]!.spentNano;
  assert.equal(read(999), 5);
  assert.equal(read(1000), 0, 'expired at its expireAt');
  assert.deepEqual(store.spend('sp:', 1000).map((e) => e.key), ['sp:key:a:m:2026-11']);
  store.admit({ takes: [], reserves: [], reads: [] }, 10 * MINUTE + 1);
  assert.equal(store.counterCount, 0, 'the sweep dropped the month counter past its expiry');
});
