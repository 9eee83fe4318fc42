import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compileRules } from '../../src/rules/compile.js';
import type { JsonObject } from '../../src/rules/decision.js';

const RULES = (aliases: boolean): string => `
version: 1
aliases: ${aliases}
tiers:
  budget: { model: openai/gpt-4o-mini, fallbacks: [meta-llama/llama-3.1-8b-instruct], max_tokens: 512 }
  premium: { model: anthropic/claude-sonnet-4 }
rules:
  - name: budget-seen-as-sent
    when: { model: budget, header.x-force: premium }
    route: { tier: premium }
  - name: pass-explicit
    when: { header.x-pass: "1" }
    route: { pass: true, retry: { max_attempts: 1 } }
`;

function context(model: string, headers: Record<string, string> = {}) {
  const body: JsonObject = { model, messages: [{ role: 'user', content: 'hi' }] };
  return { headers, body, requestedModel: model };
}

test('aliases: a tier\'s name as the model resolves to the tier and its actions when no rule matched', () => {
  const rules = compileRules(RULES(true), 'aliases.yaml');
  const decision = rules.decide(context('budget'));
  assert.equal(decision.rule, 'none');
  assert.equal(decision.alias, 'budget');
  assert.equal(decision.tier, 'budget');
  assert.equal(decision.model, 'openai/gpt-4o-mini');
  assert.deepEqual(decision.body.models, ['openai/gpt-4o-mini', 'meta-llama/llama-3.1-8b-instruct']);
  assert.equal(decision.body.max_tokens, 512);
  assert.equal(decision.bodyChanged, true);
});

test('aliases: rules see the name the client sent, and a rule that sets a model wins over the alias', () => {
  const rules = compileRules(RULES(true), 'aliases.yaml');
  const decision = rules.decide(context('budget', { 'x-force': 'premium' }));
  assert.equal(decision.rule, 'budget-seen-as-sent');
  assert.equal(decision.alias, undefined);
  assert.equal(decision.model, 'anthropic/claude-sonnet-4');
});

test('aliases: a pass rule resolves the alias too, keeping its own retry settings and name', () => {
  const rules = compileRules(RULES(true), 'aliases.yaml');
  const decision = rules.decide(context('premium', { 'x-pass': '1' }));
  assert.equal(decision.rule, 'pass-explicit');
  assert.equal(decision.alias, 'premium');
  assert.equal(decision.model, 'anthropic/claude-sonnet-4');
  assert.equal(decision.retry?.maxAttempts, 1);
});

test('aliases: a model that is no tier, and every model without aliases: true, goes as it was sent', () => {
  const on = compileRules(RULES(true), 'aliases.yaml');
  const other = on.decide(context('openai/gpt-4o'));
  assert.equal(other.alias, undefined);
  assert.equal(other.model, 'openai/gpt-4o');
  assert.equal(other.bodyChanged, false);
  const off = compileRules(RULES(false), 'aliases.yaml').decide(context('budget'));
  assert.equal(off.alias, undefined);
  assert.equal(off.model, 'budget');
  assert.equal(off.bodyChanged, false);
});

test('aliases: explain shows the resolution and the tier\'s route', () => {
  const explanation = compileRules(RULES(true), 'aliases.yaml').explain(context('budget'));
  assert.equal(explanation.action, 'none');
  assert.equal(explanation.alias, 'budget');
  assert.equal(explanation.model, 'openai/gpt-4o-mini');
  assert.deepEqual(explanation.route, { model: 'openai/gpt-4o-mini', tier: 'budget', fallbacks: ['meta-llama/llama-3.1-8b-instruct'], max_tokens: 512 });
});

test('aliases: anything but a boolean is refused with the file, line and field', () => {
  assert.throws(() => compileRules(RULES(true).replace('aliases: true', 'aliases: yes-please'), 'aliases.yaml'), (err: Error) => {
    const text = String((err as { problems?: string[] }).problems ?? err.message);
    assert.match(text, /aliases\.yaml:3/);
    assert.match(text, /aliases/);
    return true;
  });
});
