import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseCatalog } from '../../src/catalog/catalog.js';
import { catalogCost, requestCost } from '../../src/catalog/cost.js';

const MODEL = 'anthropic/claude-sonnet-4';
const catalog = parseCatalog({
  data: [{
    id: MODEL,
    canonical_slug: 'anthropic/claude-4-sonnet-20250522',
    context_length: 1_000_000,
    pricing: {
      prompt: '0.000003', completion: '0.000015', request: '0.0001', input_cache_read: '0.0000003', input_cache_write: '0.00000375',
      overrides: [{ min_prompt_tokens: 200_000, prompt: '0.000006', completion: '0.0000225' }],
    },
  }, { id: 'no/prices', pricing: {} }],
});
const AT = new Date('2026-11-30T12:00:00Z');

test('catalog cost: uncached prompt, cache reads and writes, completion (reasoning included) and the request, each at its price', () => {
  const usd = catalogCost(catalog, MODEL, { prompt: 1000, completion: 500, reasoning: 200, cached: 300, cacheWrite: 100 }, AT);
  // 600 × 3e-6 + 300 × 3e-7 + 100 × 3.75e-6 + 500 × 1.5e-5 + 1e-4, computed exactly
  assert.equal(usd, 0.009865);
});

test('catalog cost: the long-context override applies from its prompt size on', () => {
  assert.equal(catalogCost(catalog, MODEL, { prompt: 200_000, completion: 1000, reasoning: 0, cached: 0 }, AT), 1.2226);
  assert.equal(catalogCost(catalog, MODEL, { prompt: 199_999, completion: 0, reasoning: 0, cached: 0 }, AT), 0.600097);
});

test('catalog cost: by canonical slug too; an unknown model or one without prices has none', () => {
  assert.equal(catalogCost(catalog, 'anthropic/claude-4-sonnet-20250522', { prompt: 0, completion: 0, reasoning: 0, cached: 0 }, AT), 0.0001);
  assert.equal(catalogCost(catalog, 'nobody/knows', { prompt: 10, completion: 10, reasoning: 0, cached: 0 }, AT), undefined);
  assert.equal(catalogCost(catalog, 'no/prices', { prompt: 10, completion: 10, reasoning: 0, cached: 0 }, AT), undefined);
});

test('request cost: the upstream\'s figure wins; the catalog prices only what the upstream did not', () => {
  const usage = { prompt: 1000, completion: 0, reasoning: 0, cached: 0 };
  assert.deepEqual(requestCost(0.5, catalog, MODEL, usage, AT), { usd: 0.5, source: 'upstream' });
  assert.deepEqual(requestCost(undefined, catalog, MODEL, usage, AT), { usd: 0.0031, source: 'catalog' });
  assert.equal(requestCost(undefined, undefined, MODEL, usage, AT), undefined, 'no catalog loaded: no cost');
  assert.equal(requestCost(undefined, catalog, 'nobody/knows', usage, AT), undefined);
});

test('catalog cost: counts that do not add up (cached above the prompt) never price negative tokens', () => {
  const usd = catalogCost(catalog, MODEL, { prompt: 10, completion: 0, reasoning: 0, cached: 50, cacheWrite: 50 }, AT)!;
  assert.equal(usd, 0.000103, 'exactly: 10 cache reads at 3e-7 and the request');
});
