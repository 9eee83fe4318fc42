import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  budgetDescription, budgetFields, budgetReserves, compileUserSource, MAX_USER_ID_CHARS, reservationNano, spendCharges, spendLines, userTouch,
  type BudgetOptions,
} from '../../src/accounts/budget.js';
import type { Caller } from '../../src/accounts/caller.js';
import { PeriodClock } from '../../src/accounts/spend.js';
import { parseCatalog } from '../../src/catalog/catalog.js';
import { InvalidRequestError } from '../../src/errors.js';

const OPTIONS: BudgetOptions = { historyDays: 35, maxUsersPerKey: 3, unpricedReserveUsd: 0.5 };
const NOW = Date.UTC(2026, 10, 30, 17, 0, 0);
const PERIODS = new PeriodClock('UTC').at(NOW);
const DAY = 86_400_000;

function caller(over: Partial<Caller> = {}): Caller {
  return { name: 'alice', tier: undefined, team: undefined, meta: {}, models: undefined, limits: {}, budgets: {}, users: undefined, ...over };
}

test('lines: key day and month always, team and end user when there are; caps from each budget; history kept for keys and teams only', () => {
  const lines = spendLines(caller({
    budgets: { dailyUsd: 5 }, team: { name: 'research', monthlyUsd: 1000 }, users: { dailyUsd: 0.25 },
  }), 'bob@example.com', PERIODS, OPTIONS);
  const endOfDay = Date.UTC(2026, 11, 1);
  const endOfMonth = Date.UTC(2026, 11, 1);
  assert.deepEqual(lines, [
    { key: 'sp:key:alice:d:2026-11-30', scope: 'key', kind: 'd', capNano: 5e9, expireAt: endOfDay + 35 * DAY },
    { key: 'sp:key:alice:m:2026-11', scope: 'key', kind: 'm', capNano: undefined, expireAt: endOfMonth + 35 * DAY },
    { key: 'sp:team:research:d:2026-11-30', scope: 'team', kind: 'd', capNano: undefined, expireAt: endOfDay + 35 * DAY },
    { key: 'sp:team:research:m:2026-11', scope: 'team', kind: 'm', capNano: 1000e9, expireAt: endOfMonth + 35 * DAY },
    { key: 'sp:user:alice:bob@example.com:d:2026-11-30', scope: 'user', kind: 'd', capNano: 0.25e9, expireAt: endOfDay },
    { key: 'sp:user:alice:bob@example.com:m:2026-11', scope: 'user', kind: 'm', capNano: undefined, expireAt: endOfMonth },
  ]);
  assert.deepEqual(spendLines(caller(), undefined, PERIODS, OPTIONS).map((l) => l.key), ['sp:key:alice:d:2026-11-30', 'sp:key:alice:m:2026-11']);
  // Reservations only against capped lines.
  assert.deepEqual(budgetReserves(lines, 700).map((r) => [r.key, r.capNano, r.amountNano]), [
    ['sp:key:alice:d:2026-11-30', 5e9, 700], ['sp:team:research:m:2026-11', 1000e9, 700], ['sp:user:alice:bob@example.com:d:2026-11-30', 0.25e9, 700],
  ]);
  assert.deepEqual(userTouch(caller(), 'bob', PERIODS, OPTIONS), {
    setKey: 'us:alice', member: 'bob', max: 3, counterPrefix: 'sp:user:alice:', counterSuffixes: [':d:2026-11-30', ':m:2026-11'],
  });
});

const CATALOG = parseCatalog({
  data: [
    { id: 'acme/cheap', context_length: 100_000, pricing: { prompt: '0.000001', completion: '0.000002' } },
    { id: 'acme/dear', context_length: 100_000, pricing: { prompt: '0.00001', completion: '0.00003', request: '0.01' } },
    { id: 'acme/free', context_length: 100_000, pricing: { prompt: '0', completion: '0' } },
    { id: 'acme/unpriced', context_length: 100_000, pricing: {} },
  ],
});

test('the reservation is the worst case over every model the upstream may run; no price reserves the configured amount, never zero', () => {
  const body = { messages: [{ role: 'user', content: 'hello there' }], max_tokens: 1000 };
  const at = new Date(NOW);
  const cheap = reservationNano(['acme/cheap'], body, CATALOG, at, OPTIONS);
  const dear = reservationNano(['acme/dear'], body, CATALOG, at, OPTIONS);
  assert.ok(cheap > 2000 * 1000 && cheap < 2100 * 1000, `cheap ${cheap}: 1000 completion tokens at $2/M plus a small prompt`);
  assert.ok(dear > 0.04e9 && dear < 0.0402e9, `dear ${dear}: 1000 at $30/M plus $0.01 a request`);
  assert.equal(reservationNano(['acme/cheap', 'acme/dear'], body, CATALOG, at, OPTIONS), dear, 'a fallback that costs more is the worst case');
  assert.equal(reservationNano(['acme/free'], body, CATALOG, at, OPTIONS), 0, 'a free model reserves nothing');
  assert.equal(reservationNano(['acme/unpriced'], body, CATALOG, at, OPTIONS), 0.5e9);
  assert.equal(reservationNano(['acme/not-listed'], body, CATALOG, at, OPTIONS), 0.5e9);
  assert.equal(reservationNano(['acme/cheap'], body, undefined, at, OPTIONS), 0.5e9, 'no catalog yet');
  assert.equal(reservationNano([], body, CATALOG, at, OPTIONS), 0.5e9, 'no model: the account\'s default, unknown');
});

test('fields: spent per scope; remaining is the tightest capped counter, reservations counted, never below 0; missing when nothing applies', () => {
  const lines = spendLines(caller({ budgets: { dailyUsd: 5, monthlyUsd: 100 }, team: { name: 'research', dailyUsd: 50 } }), undefined, PERIODS, OPTIONS);
  const fields = budgetFields(lines, [
    { spentNano: 3e9, reservedNano: 0.5e9 }, { spentNano: 40e9, reservedNano: 0.5e9 }, { spentNano: 49.8e9, reservedNano: 0 }, { spentNano: 60e9, reservedNano: 0 },
  ]);
  assert.deepEqual(fields, {
    keySpentTodayUsd: 3, keySpentMonthUsd: 40, teamSpentTodayUsd: 49.8, teamSpentMonthUsd: 60,
    remainingUsd: 0.2,
  });
  const unbudgeted = budgetFields(spendLines(caller(), undefined, PERIODS, OPTIONS), [{ spentNano: 1e9, reservedNano: 0 }, { spentNano: 2e9, reservedNano: 0 }]);
  assert.deepEqual(unbudgeted, { keySpentTodayUsd: 1, keySpentMonthUsd: 2 });
  const over = budgetFields(lines.slice(0, 1), [{ spentNano: 6e9, reservedNano: 0 }]);
  assert.equal(over.remainingUsd, 0);
});

test('a refusal names the budget; an end user\'s id is clipped', () => {
  assert.equal(budgetDescription({ key: 'sp:team:research:m:2026-11', capNano: 1000e9, spentNano: 0, reservedNano: 0 }), 'monthly budget of team research (1000 USD)');
  assert.equal(budgetDescription({ key: 'sp:user:alice:bob:1:d:2026-11-30', capNano: 0.25e9, spentNano: 0, reservedNano: 0 }), 'daily budget of end user bob:1 (0.25 USD)');
  const long = budgetDescription({ key: `sp:user:alice:${'x'.repeat(200)}:d:2026-11-30`, capNano: 1e9, spentNano: 0, reservedNano: 0 });
  assert.ok(long.length < 120, long);
});

test('charges: the same amount to every line and to the model\'s day counter', () => {
  const lines = spendLines(caller({ team: { name: 't' } }), undefined, PERIODS, OPTIONS);
  assert.deepEqual(spendCharges(lines, 'acme/cheap', 123, PERIODS, 35).map((c) => [c.key, c.amountNano]), [
    ['sp:key:alice:d:2026-11-30', 123], ['sp:key:alice:m:2026-11', 123], ['sp:team:t:d:2026-11-30', 123], ['sp:team:t:m:2026-11', 123],
    ['sp:model:acme/cheap:d:2026-11-30', 123],
  ]);
});

test('the end user comes from the body\'s user field or a header; absent or empty is none; anything else is a 400', () => {
  const body = compileUserSource('body.user')!;
  assert.equal(body({ user: 'bob' }, {}), 'bob');
  assert.equal(body({}, { 'x-user': 'bob' }), undefined);
  assert.equal(body({ user: '' }, {}), undefined);
  assert.throws(() => body({ user: 42 }, {}), (err) => err instanceof InvalidRequestError && err.code === 'invalid_user');
  assert.throws(() => body({ user: 'x'.repeat(MAX_USER_ID_CHARS + 1) }, {}), (err) => err instanceof InvalidRequestError && err.code === 'invalid_user');
  const header = compileUserSource('header.X-End-User')!;
  assert.equal(header({ user: 'ignored' }, { 'x-end-user': 'carol' }), 'carol');
  assert.equal(header({}, { 'x-end-user': ['first', 'second'] }), 'first');
  assert.equal(compileUserSource(undefined), undefined);
});
