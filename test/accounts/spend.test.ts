import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fromNano, parseSpendKey, PeriodClock, spendKey, toNano, toNanoUp } from '../../src/accounts/spend.js';

test('counter keys round-trip, model ids and end user ids with colons included; anything else is no counter', () => {
  assert.equal(spendKey('model', 'google/gemma-2-9b-it:free', 'd:2026-11-30'), 'sp:model:google/gemma-2-9b-it:free:d:2026-11-30');
  assert.deepEqual(parseSpendKey('sp:model:google/gemma-2-9b-it:free:d:2026-11-30'), { scope: 'model', name: 'google/gemma-2-9b-it:free', kind: 'd', period: '2026-11-30' });
  assert.deepEqual(parseSpendKey('sp:user:alice:a:b:m:2026-11'), { scope: 'user', name: 'alice:a:b', kind: 'm', period: '2026-11' });
  for (const bad of ['sp:key::d:2026-11-30', 'sp:other:x:d:2026-11-30', 'sp:key:x:d:2026-11', 'sp:key:x:m:2026-11-30', 'rl:key:x:rpm', 'sp:key:x', 'sp:key:x:w:2026']) {
    assert.equal(parseSpendKey(bad), undefined, bad);
  }
});

test('nano-USD: spend rounds to the nearest, reservations up', () => {
  assert.equal(toNano(0.1 + 0.2), 300_000_000);
  assert.equal(toNanoUp(0.0000000011), 2);
  assert.equal(toNanoUp(0.3), 300_000_000, 'an exact amount is not rounded up by float noise');
  assert.equal(fromNano(1_500_000_000), 1.5);
});

test('periods in a time zone: the local day and month, and when they end', () => {
  const utc = new PeriodClock('UTC').at(Date.UTC(2026, 10, 30, 23, 59, 30));
  assert.deepEqual(utc, { day: 'd:2026-11-30', month: 'm:2026-11', dayEndsAt: Date.UTC(2026, 11, 1), monthEndsAt: Date.UTC(2026, 11, 1) });
  // 23:30 UTC on the 30th is already December 1st in Paris (UTC+1 in winter).
  const paris = new PeriodClock('Europe/Paris').at(Date.UTC(2026, 10, 30, 23, 30));
  assert.equal(paris.day, 'd:2026-12-01');
  assert.equal(paris.month, 'm:2026-12');
  assert.equal(paris.dayEndsAt, Date.UTC(2026, 11, 1, 23));
  assert.equal(paris.monthEndsAt, Date.UTC(2026, 11, 31, 23));
  // A zone 13:45 ahead, whose midnight is not on a whole hour.
  const chatham = new PeriodClock('Pacific/Chatham').at(Date.UTC(2026, 10, 30, 10, 14));
  assert.equal(chatham.day, 'd:2026-11-30');
  assert.equal(chatham.dayEndsAt, Date.UTC(2026, 10, 30, 10, 15));
  // February of a leap year ends on the 29th.
  assert.equal(new PeriodClock('UTC').at(Date.UTC(2028, 1, 10)).monthEndsAt, Date.UTC(2028, 2, 1));
});

test('the periods are computed once a minute: the same object within the minute, a new one at the next', () => {
  const clock = new PeriodClock('UTC');
  const first = clock.at(Date.UTC(2026, 10, 30, 23, 59, 1));
  assert.equal(clock.at(Date.UTC(2026, 10, 30, 23, 59, 59, 999)), first);
  assert.equal(clock.at(Date.UTC(2026, 11, 1, 0, 0, 0)).day, 'd:2026-12-01');
  assert.throws(() => new PeriodClock('Mars/Olympus'), RangeError);
});
