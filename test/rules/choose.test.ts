import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseCatalog } from '../../src/catalog/catalog.js';
import { compileRules } from '../../src/rules/compile.js';
import type { JsonObject } from '../../src/rules/decision.js';

const catalog = parseCatalog({
  data: [
    { id: 'big/vision', context_length: 200_000, architecture: { input_modalities: ['text', 'image'] }, supported_parameters: ['tools', 'response_format'], pricing: { prompt: '0.000003', completion: '0.000015' } },
    { id: 'mid/tools', context_length: 128_000, architecture: { input_modalities: ['text'] }, supported_parameters: ['tools'], pricing: { prompt: '0.0000005', completion: '0.0000015' } },
    { id: 'small/cheap', context_length: 8_000, architecture: { input_modalities: ['text'] }, supported_parameters: [], pricing: { prompt: '0.0000001', completion: '0.0000002' } },
    { id: 'same/price-a', context_length: 32_000, supported_parameters: [], pricing: { prompt: '0.000001', completion: '0.000001' } },
    { id: 'same/price-b', context_length: 64_000, supported_parameters: [], pricing: { prompt: '0.000001', completion: '0.000001' } },
  ],
});

const RULES = `
version: 1
tiers:
  premium: { model: big/vision, provider: { sort: throughput } }
rules:
  - name: tie
    when: { header.x-tie: "1" }
    route: { choose: { from: [same/price-a, same/price-b], by: cost } }
  - name: strict
    when: { header.x-strict: "1" }
    route: { choose: { from: [small/cheap], by: cost, otherwise: next_rule } }
  - name: cheapest
    route: { choose: { from: [premium, mid/tools, small/cheap, not/listed], by: cost } }
`;

function context(body: JsonObject, headers: Record<string, string> = {}, withCatalog = true) {
  return { headers, body, requestedModel: undefined, ...(withCatalog && { catalog }) };
}
const text = (content: string, extra: JsonObject = {}): JsonObject => ({ model: 'auto', messages: [{ role: 'user', content }], max_tokens: 100, ...extra });

test('choose picks the cheapest candidate that fits; the others that fit become its fallbacks, cheapest first', () => {
  const rules = compileRules(RULES, 'choose.yaml');
  const d = rules.decide(context(text('hi')));
  assert.equal(d.rule, 'cheapest');
  assert.equal(d.model, 'small/cheap');
  assert.deepEqual(d.body.models, ['small/cheap', 'mid/tools', 'big/vision']);
});

test('choose drops what cannot serve: too small a context, no tools, no image input; a tier pick brings its actions', () => {
  const rules = compileRules(RULES, 'choose.yaml');
  const long = rules.decide(context(text('word '.repeat(8000))));
  assert.equal(long.model, 'mid/tools', 'small/cheap\'s 8k context is too small');
  const tools = rules.decide(context(text('hi', { tools: [{ type: 'function', function: { name: 'f', parameters: {} } }] })));
  assert.equal(tools.model, 'mid/tools');
  assert.deepEqual(tools.body.models, ['mid/tools', 'big/vision']);
  const image = rules.decide(context({ model: 'auto', max_tokens: 10, messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'https://x/y.png' } }] }] }));
  assert.equal(image.model, 'big/vision');
  assert.equal(image.tier, 'premium');
  assert.deepEqual(image.body.provider, { sort: 'throughput' }, 'the tier\'s actions apply');
});

test('choose: ties go to the larger context window', () => {
  const d = compileRules(RULES, 'choose.yaml').decide(context(text('hi'), { 'x-tie': '1' }));
  assert.equal(d.model, 'same/price-b');
});

test('choose: explain lists every candidate with its estimated cost and why it was kept or dropped', () => {
  const e = compileRules(RULES, 'choose.yaml').explain(context(text('hi', { tools: [{ type: 'function', function: { name: 'f' } }] })));
  assert.equal(e.action, 'route');
  const byName = Object.fromEntries(e.choice!.map((v) => [v.candidate, v]));
  assert.equal(byName['mid/tools']!.reason, 'picked: cheapest that fits');
  assert.equal(byName.premium!.reason, 'fallback 1');
  assert.equal(byName['small/cheap']!.reason, 'does not support tools');
  assert.equal(byName['not/listed']!.reason, 'not in the catalog');
  assert.ok(byName['mid/tools']!.cost_estimate_usd! < byName.premium!.cost_estimate_usd!);
});

test('choose: no candidate fits -> a 400 no_model_fits naming each reason, or with otherwise: next_rule, the next rule decides', () => {
  const rules = compileRules(RULES, 'choose.yaml');
  const huge = text('word '.repeat(250_000));
  const none = rules.decide(context(huge));
  assert.equal(none.reject?.code, 'no_model_fits');
  assert.equal(none.reject?.status, 400);
  assert.match(none.reject!.message, /premium: context 200000 tokens < \d+ needed; mid\/tools: context 128000/);
  const strict = rules.explain(context(text('word '.repeat(8000)), { 'x-strict': '1' }));
  assert.equal(strict.rule, 'cheapest', 'the strict rule let evaluation go on');
  assert.match(strict.trace.find((t) => t.rule === 'strict')!.skipped!, /no candidate fits: small\/cheap: context 8000/);
});

test('choose without a catalog takes the listed order and says so; it never fails closed', () => {
  const rules = compileRules(RULES, 'choose.yaml');
  const d = rules.decide(context(text('hi'), {}, false));
  assert.equal(d.model, 'big/vision');
  assert.deepEqual(d.body.models, ['big/vision', 'mid/tools', 'small/cheap', 'not/listed']);
  assert.match(d.warning!, /no model catalog/);
  assert.match(rules.explain(context(text('hi'), {}, false)).warning!, /listed order/);
});

test('choose: an unknown tier, or actions beside it, are refused with their position', () => {
  assert.throws(() => compileRules(RULES.replace('[premium, mid/tools', '[premum, mid/tools'), 'choose.yaml'), /unknown tier "premum"/);
  assert.throws(() => compileRules(RULES.replace('by: cost, otherwise: next_rule } }', 'by: cost, otherwise: next_rule }, max_tokens: 5 }'), 'choose.yaml'), /route\.choose stands alone/);
});

test('fallbacks a route lists that cannot serve the request are not sent, and explain says why; without a catalog nothing is dropped', () => {
  const rules = compileRules(`
version: 1
tiers:
  t: { model: big/vision, fallbacks: [small/cheap, mid/tools, not/listed] }
rules:
  - name: r
    route: { tier: t }
`, 'fallbacks.yaml');
  const toolsBody = text('hi', { tools: [{ type: 'function', function: { name: 'f' } }] });
  const d = rules.decide(context(toolsBody));
  assert.deepEqual(d.body.models, ['big/vision', 'mid/tools'], 'small/cheap has no tools, not/listed is unknown');
  const e = rules.explain(context(toolsBody));
  assert.deepEqual(e.dropped_fallbacks, [{ model: 'small/cheap', reason: 'does not support tools' }, { model: 'not/listed', reason: 'not in the catalog' }]);
  const long = rules.decide(context(text('word '.repeat(8000))));
  assert.deepEqual(long.body.models, ['big/vision', 'mid/tools'], 'small/cheap\'s window is too small');
  const none = rules.decide(context(toolsBody, {}, false));
  assert.deepEqual(none.body.models, ['big/vision', 'small/cheap', 'mid/tools', 'not/listed']);
  assert.equal(rules.explain(context(toolsBody, {}, false)).dropped_fallbacks, undefined);
});
