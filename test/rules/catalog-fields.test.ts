import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseCatalog } from '../../src/catalog/catalog.js';
import { compileRules } from '../../src/rules/compile.js';
import type { JsonObject } from '../../src/rules/decision.js';

const catalog = parseCatalog({
  data: [
    {
      id: 'openai/gpt-4o', canonical_slug: 'openai/gpt-4o-2024-08-06', context_length: 128_000,
      architecture: { input_modalities: ['text', 'image'] }, supported_parameters: ['tools', 'response_format', 'max_tokens'],
      pricing: { prompt: '0.0000025', completion: '0.00001', image: '0.003613' },
    },
    {
      id: 'meta-llama/llama-3.1-8b-instruct', context_length: 16_384, architecture: { input_modalities: ['text'] }, supported_parameters: ['max_tokens'],
      pricing: { prompt: '0.00000002', completion: '0.00000005', request: '0.001' },
    },
  ],
});

const RULES = `
version: 1
rules:
  - name: expensive
    when: { request.cost_estimate_usd: { gt: 0.05 } }
    route: { model: meta-llama/llama-3.1-8b-instruct }
  - name: cannot-see
    when: { request.has_images: true, model.supports.vision: false }
    route: { model: openai/gpt-4o }
  - name: unknown-model
    when: { model.known: false }
    route: { model: openai/gpt-4o }
`;

function context(body: JsonObject, withCatalog = true) {
  return { headers: {}, body, requestedModel: typeof body.model === 'string' ? body.model : undefined, ...(withCatalog && { catalog }) };
}

const hi = [{ role: 'user', content: 'hi' }];
const image = [{ role: 'user', content: [{ type: 'text', text: 'what is this?' }, { type: 'image_url', image_url: { url: 'https://example.com/x.png' } }] }];

test('model.* fields read the requested model from the catalog, by id or canonical slug', () => {
  const rules = compileRules(`version: 1\nrules:\n  - name: r\n    when: { model.known: true, model.context_length: { gte: 100000 }, model.price.prompt: 2.5, model.price.completion: 10, model.supports.tools: true, model.supports.vision: true, model.supports.json_mode: true, model.supports.reasoning: false }\n    route: { pass: true }\n`, 'f.yaml');
  assert.equal(rules.decide(context({ model: 'openai/gpt-4o', messages: hi })).rule, 'r');
  assert.equal(rules.decide(context({ model: 'openai/gpt-4o-2024-08-06', messages: hi })).rule, 'r', 'by canonical slug');
  const fields = rules.explain(context({ model: 'meta-llama/llama-3.1-8b-instruct', messages: hi })).fields;
  assert.deepEqual([fields['model.known'], fields['model.context_length'], fields['model.price.prompt'], fields['model.supports.tools']], [true, 16_384, 0.02, false]);
});

test('request.cost_estimate_usd prices the conservative estimate, max_tokens, the request and the images on the requested model', () => {
  const rules = compileRules(`version: 1\nrules:\n  - name: r\n    when: { request.cost_estimate_usd: { gt: 0 } }\n    route: { pass: true }\n`, 'f.yaml');
  const cheap = rules.explain(context({ model: 'meta-llama/llama-3.1-8b-instruct', messages: hi, max_tokens: 100 })).fields['request.cost_estimate_usd'] as number;
  // the request price dominates: 0.001 plus a few tokens at 2e-8 and 100 at 5e-8
  assert.ok(cheap > 0.001 && cheap < 0.001011, String(cheap));
  const withImage = rules.explain(context({ model: 'openai/gpt-4o', messages: image, max_tokens: 0 })).fields['request.cost_estimate_usd'] as number;
  const withoutImage = rules.explain(context({ model: 'openai/gpt-4o', messages: [{ role: 'user', content: 'what is this?' }], max_tokens: 0 })).fields['request.cost_estimate_usd'] as number;
  assert.ok(withImage - withoutImage >= 0.003613, 'the image part is priced once at least');
});

test('rules on cost and capabilities route: an expensive estimate goes cheaper, a model that cannot see is swapped, an unknown one too', () => {
  const rules = compileRules(RULES, 'f.yaml');
  const long = [{ role: 'user', content: 'x '.repeat(5000) }];
  assert.equal(rules.decide(context({ model: 'openai/gpt-4o', messages: long, max_tokens: 4000 })).rule, 'expensive');
  assert.equal(rules.decide(context({ model: 'meta-llama/llama-3.1-8b-instruct', messages: image, max_tokens: 10 })).rule, 'cannot-see');
  assert.equal(rules.decide(context({ model: 'nobody/knows', messages: hi, max_tokens: 10 })).rule, 'unknown-model');
  assert.equal(rules.decide(context({ model: 'openai/gpt-4o', messages: hi, max_tokens: 10 })).rule, 'none');
});

test('without a catalog the model fields are unknown: no rule on them matches, nothing fails', () => {
  const rules = compileRules(RULES, 'f.yaml');
  const explanation = rules.explain(context({ model: 'nobody/knows', messages: image }, false));
  assert.equal(explanation.rule, 'none');
  assert.equal(explanation.fields['model.known'], null);
  assert.equal(explanation.fields['request.cost_estimate_usd'], null);
});
