import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Accounts } from '../../src/accounts/accounts.js';
import type { Caller } from '../../src/accounts/caller.js';
import { MemoryLimitStore } from '../../src/accounts/memory-limit-store.js';
import { PeriodClock } from '../../src/accounts/spend.js';
import { parseCatalog } from '../../src/catalog/catalog.js';

const CATALOG = parseCatalog({
  data: [
    { id: 'acme/cheap', context_length: 100_000, pricing: { prompt: '0', completion: '0.000001' } },
    { id: 'acme/dear', context_length: 100_000, pricing: { prompt: '0', completion: '0.00001' } },
  ],
});
const CALLER: Caller = { name: 'alice', tier: undefined, team: undefined, meta: {}, models: undefined, limits: {}, budgets: { dailyUsd: 1 }, users: undefined };
const BODY = { messages: [{ role: 'user', content: 'hi' }], max_tokens: 1000 };

test('a cascade reserves the worst case of every tier it may escalate to: each escalation is a paid answer', async () => {
  const store = new MemoryLimitStore();
  const accounts = new Accounts(store, { periods: new PeriodClock('UTC'), userSource: undefined, historyDays: 35, maxUsersPerKey: 10, unpricedReserveUsd: 0.5 }, () => Date.UTC(2026, 10, 30));
  const reserved = async (laterSteps?: string[][]) => {
    const outcome = await accounts.admit(accounts.open(CALLER, BODY, {}), { limits: false, reads: false, reserveFor: { models: ['acme/cheap'], laterSteps, catalog: CATALOG } });
    return outcome.settlement!.reservedNano;
  };
  // 1,000 completion tokens: $0.001 on the cheap model, $0.01 on the dear one.
  assert.equal(await reserved(), 1_000_000);
  assert.equal(await reserved([['acme/dear']]), 11_000_000);
  assert.equal(await reserved([['acme/cheap', 'acme/dear'], ['acme/dear']]), 21_000_000);
});
