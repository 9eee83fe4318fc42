import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseCatalog } from '../../src/catalog/catalog.js';
import { LiveCatalog } from '../../src/catalog/refresher.js';
import { compileRules } from '../../src/rules/compile.js';
import { CHAT_BODY, startHarness } from '../support/harness.js';

const PREMIUM = 'anthropic/claude-3.5-sonnet';
const RULES = `
version: 1
baseline: premium
tiers:
  premium: { model: ${PREMIUM} }
  cheap: { model: openai/gpt-4o-mini }
rules:
  - name: cheap-by-default
    when: { header.x-own-baseline: { exists: false } }
    route: { tier: cheap }
  - name: own-baseline
    route: { tier: cheap, baseline: openai/gpt-4o }
`;

test('baseline: a rule\'s own baseline wins over the file\'s; a tier resolves to its model', () => {
  const rules = compileRules(RULES, 'baseline.yaml');
  const body = { model: 'auto', messages: [{ role: 'user', content: 'hi' }] };
  assert.equal(rules.decide({ headers: {}, body, requestedModel: 'auto' }).baseline, PREMIUM);
  assert.equal(rules.decide({ headers: { 'x-own-baseline': '1' }, body, requestedModel: 'auto' }).baseline, 'openai/gpt-4o');
  assert.equal(rules.explain({ headers: {}, body, requestedModel: 'auto' }).baseline, PREMIUM);
});

test('baseline: a name that is neither a tier nor a model id is refused with its position', () => {
  assert.throws(() => compileRules(RULES.replace('baseline: premium', 'baseline: premum'), 'baseline.yaml'), (err: Error) => {
    const text = String((err as { problems?: string[] }).problems ?? err.message);
    assert.match(text, /baseline\.yaml:3/);
    assert.match(text, /unknown tier "premum"/);
    return true;
  });
});

test('what routing saves: the log line and signalbox_baseline_cost_usd_total price the same tokens on the baseline', { timeout: 30_000 }, async (t) => {
  const catalog = new LiveCatalog();
  // Prices chosen so that every product is exact in binary too.
  catalog.replace(parseCatalog({ data: [
    { id: PREMIUM, pricing: { prompt: '0.000004', completion: '0.000016' } },
    { id: 'openai/gpt-4o-mini', pricing: { prompt: '0.00000025', completion: '0.000001' } },
  ] }), Date.now());
  const h = await startHarness({ rules: RULES, catalog, env: { METRICS_ENABLED: 'true' } });
  t.after(() => h.close());
  const res = await fetch(`${h.url}/v1/chat/completions`, {
    method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer sk-or-test', 'x-request-id': 'saves-1' }, body: JSON.stringify(CHAT_BODY),
  });
  assert.equal(res.status, 200);
  const usage = ((await res.json()) as { usage: { prompt_tokens: number; completion_tokens: number } }).usage;
  const line = await h.logs.requestLine('saves-1');
  const expected = (usage.prompt_tokens * 4 + usage.completion_tokens * 16) / 1e6;
  assert.ok(Math.abs((line.baseline_cost_usd as number) - expected) < 1e-15, `baseline ${String(line.baseline_cost_usd)}, expected ${expected}`);
  assert.equal(line.cost_source, 'upstream');
  const scrape = await (await fetch(`${h.url}/metrics`)).text();
  const sample = /^signalbox_baseline_cost_usd_total\{rule="cheap-by-default"\} (\S+)$/m.exec(scrape);
  assert.ok(sample, 'the baseline counter has the rule\'s series');
  assert.ok(Math.abs(Number(sample[1]) - expected) < 1e-15);
});
