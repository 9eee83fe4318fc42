import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  MAX_CATALOG_MODELS, MAX_LIST_ENTRIES, MAX_MODEL_ID_LENGTH, MAX_OVERRIDES, parseCatalog, parseDecimal, plus, priceAt, times, usd,
  type Decimal,
} from '../../src/catalog/catalog.js';

function price(text: string): Decimal {
  const d = parseDecimal(text);
  assert.ok(d, `${text} parses`);
  return d;
}

/** USD per million tokens at this price. */
function perMillion(d: Decimal | undefined): number {
  assert.ok(d, 'a price');
  return usd(times(d, 1_000_000));
}

const BASE = {
  id: 'acme/long-context', canonical_slug: 'acme/long-context-2026-01-01', context_length: 1_000_000,
  top_provider: { max_completion_tokens: 65_536, context_length: 1_000_000 },
  architecture: { input_modalities: ['text', 'image'] },
  supported_parameters: ['tools', 'response_format'],
  pricing: {
    prompt: '0.00000125', completion: '0.00001', request: '0', image: '0.005', internal_reasoning: '0.00001',
    input_cache_read: '0.00000031', input_cache_write: '0.000001625',
  },
};

/** A catalog of BASE with these `pricing.overrides`. */
function withOverrides(overrides: readonly unknown[]) {
  return parseCatalog({ data: [{ ...BASE, pricing: { ...BASE.pricing, overrides } }] });
}

test('prices are parsed exactly: 0.0000025 USD per token × 1,000,000 tokens is exactly 2.5', () => {
  assert.equal(perMillion(price('0.0000025')), 2.5);
  assert.equal(usd(times(price('0.00000125'), 3)), 0.00000375);
  assert.notEqual(Number('0.00000125') * 3, 0.00000375, 'a float parse would be off here');
  assert.equal(usd(plus(times(price('0.00000015'), 1000), times(price('0.0000006'), 500))), 0.00045);
  assert.equal(usd(times(price('1.5e-6'), 2_000_000)), 3);
  assert.equal(usd(times(price('2E+1'), 2)), 40);
  assert.equal(usd(times(price('0'), 10)), 0);
});

test('a price that is not a non-negative decimal string is no price', () => {
  for (const bad of ['-1', '', ' 1', '1.', '.5', '0x10', 'NaN', 'Infinity', '1e-999', '1'.repeat(65), 1, null, {}, ['1']]) {
    assert.equal(parseDecimal(bad), undefined, JSON.stringify(bad));
  }
});

test('the index has every field the issue names, by id and by canonical slug, frozen', () => {
  const catalog = parseCatalog({ data: [BASE] });
  const model = catalog.get('acme/long-context');
  assert.ok(model);
  assert.equal(catalog.get('acme/long-context-2026-01-01'), model);
  assert.equal(model.contextLength, 1_000_000);
  assert.equal(model.maxCompletionTokens, 65_536);
  assert.deepEqual(model.inputModalities, ['text', 'image']);
  assert.deepEqual(model.supportedParameters, ['tools', 'response_format']);
  assert.deepEqual(Object.keys(model.pricing).sort(), [
    'completion', 'image', 'input_cache_read', 'input_cache_write', 'internal_reasoning', 'prompt', 'request',
  ]);
  assert.equal(perMillion(model.pricing.input_cache_write), 1.625);
  assert.ok(Object.isFrozen(catalog) && Object.isFrozen(model) && Object.isFrozen(model.pricing) && Object.isFrozen(model.supportedParameters));
  assert.throws(() => {
    (model as { contextLength: number }).contextLength = 1;
  });
});

test('overrides by prompt tokens: from min_prompt_tokens on, the override prices apply; later entries win per key', () => {
  const model = withOverrides([
    { min_prompt_tokens: 200_000, prompt: '0.0000025', completion: '0.000015' },
    { min_prompt_tokens: 500_000, prompt: '0.000005' },
  ]).get(BASE.id)!;
  const at = new Date('2026-03-01T12:00:00Z');
  const small = priceAt(model, { promptTokens: 199_999, at });
  assert.equal(small, model.pricing);
  const large = priceAt(model, { promptTokens: 200_000, at });
  assert.equal(perMillion(large.prompt), 2.5);
  assert.equal(perMillion(large.completion), 15);
  assert.equal(perMillion(large.input_cache_read), 0.31, 'keys the override does not name keep the base price');
  const huge = priceAt(model, { promptTokens: 600_000, at });
  assert.equal(perMillion(huge.prompt), 5, 'the later entry wins for prompt');
  assert.equal(perMillion(huge.completion), 15, 'and the earlier one still sets completion');
  assert.equal(perMillion(model.pricing.prompt), 1.25, 'the base prices are not changed');
});

test('overrides by UTC time window: daily windows (wrapping midnight) and absolute instants', () => {
  const model = withOverrides([
    { utc_start: '16:30', utc_end: '00:30', prompt: '0.000000625' },
    { utc_start: '2026-06-01T00:00:00Z', utc_end: '2026-07-01T00:00:00Z', completion: '0' },
  ]).get(BASE.id)!;
  const promptAt = (iso: string): number => perMillion(priceAt(model, { promptTokens: 10, at: new Date(iso) }).prompt);
  assert.equal(promptAt('2026-03-01T16:29:59Z'), 1.25);
  assert.equal(promptAt('2026-03-01T16:30:00Z'), 0.625, 'the start is inclusive');
  assert.equal(promptAt('2026-03-01T23:59:59Z'), 0.625);
  assert.equal(promptAt('2026-03-02T00:29:59Z'), 0.625, 'the window wraps midnight');
  assert.equal(promptAt('2026-03-02T00:30:00Z'), 1.25, 'the end is exclusive');
  const completionAt = (iso: string): number => perMillion(priceAt(model, { promptTokens: 10, at: new Date(iso) }).completion);
  assert.equal(completionAt('2026-05-31T23:59:59Z'), 10);
  assert.equal(completionAt('2026-06-15T10:00:00Z'), 0);
  assert.equal(completionAt('2026-07-01T00:00:00Z'), 10);
});

test('an override whose condition cannot be read never applies, and is counted', () => {
  const catalog = withOverrides([
    { min_prompt_tokens: 'lots', prompt: '1' },
    { utc_start: '25:00', prompt: '1' },
    { utc_start: '2026-06-01T00:00:00', prompt: '1' },
    { utc_start: '10:00', utc_end: '2026-07-01T00:00:00Z', prompt: '1' },
    'cheap',
    null,
    ...Array.from({ length: MAX_OVERRIDES + 2 }, () => ({ min_prompt_tokens: 1, prompt: '0.000002' })),
  ]);
  const model = catalog.get(BASE.id)!;
  assert.equal(model.overrides.length, MAX_OVERRIDES - 6);
  assert.equal(catalog.skippedOverrides, 6 + 8);
  const p = priceAt(model, { promptTokens: 100, at: new Date('2026-06-15T10:30:00Z') });
  assert.equal(perMillion(p.prompt), 2);
});

test('hostile entries are skipped and counted, never thrown; fields of the wrong type are unknown', () => {
  const weird: unknown = JSON.parse('{"id":"acme/proto","__proto__":{"polluted":true},"constructor":{"prototype":{"polluted":true}}}');
  const catalog = parseCatalog({
    data: [
      null, 7, 'acme/string', [], {}, { id: 42 }, { id: '' }, { id: 'x'.repeat(MAX_MODEL_ID_LENGTH + 1) },
      {
        id: 'acme/garbage', canonical_slug: { a: 1 }, context_length: -5, top_provider: 'big', architecture: { input_modalities: 'text' },
        supported_parameters: [1, null, 'tools', 'y'.repeat(1000), ...Array.from({ length: 200 }, (_, i) => `p${i}`)],
        pricing: { prompt: -1, completion: '0.00001', request: '1e-999', image: ['0.1'], overrides: 'many' },
      },
      { id: 'acme/garbage', context_length: 10 },
      weird,
    ],
  });
  assert.equal(catalog.size, 2);
  assert.equal(catalog.skipped, 9, 'eight unusable entries and one duplicate id');
  const m = catalog.get('acme/garbage')!;
  assert.equal(m.contextLength, undefined, 'the first entry of an id wins');
  assert.equal(m.canonicalSlug, undefined);
  assert.equal(m.maxCompletionTokens, undefined);
  assert.deepEqual(m.inputModalities, []);
  assert.equal(m.supportedParameters.length, MAX_LIST_ENTRIES - 4 + 1);
  assert.equal(m.supportedParameters[0], 'tools');
  assert.deepEqual(Object.keys(m.pricing), ['completion']);
  assert.deepEqual(m.overrides, []);
  assert.equal(({} as { polluted?: boolean }).polluted, undefined);
  for (const json of [undefined, null, 'x', [], {}, { data: 'x' }, { data: {} }]) assert.equal(parseCatalog(json).size, 0);
});

test(`at most ${MAX_CATALOG_MODELS} entries are read; the rest are counted as skipped`, () => {
  const data = Array.from({ length: MAX_CATALOG_MODELS + 5 }, (_, i) => ({ id: `acme/m${i}` }));
  const catalog = parseCatalog({ data });
  assert.equal(catalog.size, MAX_CATALOG_MODELS);
  assert.equal(catalog.skipped, 5);
  assert.equal(catalog.get(`acme/m${MAX_CATALOG_MODELS}`), undefined);
});
