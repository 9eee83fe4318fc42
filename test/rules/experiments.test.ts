import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compileRules, RulesError } from '../../src/rules/compile.js';
import type { RequestContext } from '../../src/rules/decision.js';
import { cascadeStep } from '../../src/rules/ruleset.js';
import { DEFAULT_JUDGE_PROMPT } from '../../src/rules/shadow.js';

const TIERS = `
tiers:
  budget: { model: meta-llama/llama-3.1-8b-instruct, max_tokens: 256 }
  standard: { model: anthropic/claude-3.5-sonnet, fallbacks: [openai/gpt-4o] }
  premium: { model: openai/o1, system_prompt: { prepend: "Think." } }
`;

const CONTEXT: RequestContext = {
  headers: {}, body: { model: 'auto', messages: [{ role: 'user', content: 'hi' }] }, requestedModel: 'auto',
};

function problems(text: string): string {
  try {
    compileRules(text, 'rules.yaml');
  } catch (err) {
    assert.ok(err instanceof RulesError);
    return err.problems.join('\n');
  }
  assert.fail('compiled');
}

test('a cascade decides its first tier and carries the plan; later tiers are built on demand; explain shows the plan', () => {
  const rules = compileRules(`version: 1${TIERS}
rules:
  - name: cheap-first
    route:
      cascade:
        tiers: [budget, standard, premium]
        checks: { min_length: 20, refusal_phrases: ["I'm sorry"], uncertainty_phrases: ["I'm not sure"] }
        stream_hold: { chars: 100 }
`, 'rules.yaml');
  const decision = rules.decide(CONTEXT);
  assert.equal(decision.model, 'meta-llama/llama-3.1-8b-instruct');
  assert.equal(decision.tier, 'budget');
  assert.equal(decision.body.max_tokens, 256);
  const plan = decision.cascade!;
  assert.deepEqual(plan.steps.map((s) => s.tier), ['budget', 'standard', 'premium']);
  assert.deepEqual(plan.checks, { minLength: 20, refusalPhrases: ["I'm sorry"], uncertaintyPhrases: ["I'm not sure"], json: 'auto' });
  assert.equal(plan.maxEscalations, 2, 'every tier after the first by default');
  assert.deepEqual(plan.streamHold, { chars: 100, ms: 1500 });
  const second = cascadeStep(plan, 1, CONTEXT, undefined);
  assert.equal(second.model, 'anthropic/claude-3.5-sonnet');
  assert.deepEqual(second.body.models, ['anthropic/claude-3.5-sonnet', 'openai/gpt-4o']);
  assert.equal(second.body.max_tokens, undefined, 'the client\'s body, not the first tier\'s');
  const third = cascadeStep(plan, 2, CONTEXT, undefined);
  assert.deepEqual((third.body.messages as unknown[])[0], { role: 'system', content: 'Think.' });
  assert.deepEqual(rules.explain(CONTEXT).cascade, {
    tiers: [{ tier: 'budget', model: 'meta-llama/llama-3.1-8b-instruct' }, { tier: 'standard', model: 'anthropic/claude-3.5-sonnet' }, { tier: 'premium', model: 'openai/o1' }],
    checks: { json: 'auto', min_length: 20, refusal_phrases: ["I'm sorry"], uncertainty_phrases: ["I'm not sure"] },
    max_escalations: 2,
    stream_hold: { chars: 100, ms: 1500 },
  });
  assert.ok(rules.models.includes('openai/o1'), 'a cascade\'s models are the rules\' models (metric labels)');
});

test('a cascade that cannot work is a load error with its position', () => {
  assert.match(problems(`version: 1${TIERS}rules:\n  - name: c\n    route: { cascade: { tiers: [budget, missing] } }\n`), /rules\.yaml:\d+:\d+: .*unknown tier "missing"/);
  assert.match(problems(`version: 1${TIERS}rules:\n  - name: c\n    route: { model: x/y, cascade: { tiers: [budget, standard] } }\n`), /route\.cascade stands alone; remove "model"/);
  assert.match(problems(`version: 1${TIERS}rules:\n  - name: c\n    route: { cascade: { tiers: [budget] } }\n`), /fewer than 2 items/);
  assert.match(problems(`version: 1${TIERS}rules:\n  - name: c\n    route: { cascade: { tiers: [budget, standard], stream_hold: { ms: 100000 } } }\n`), /must be <= 30000/);
  // max_escalations beyond the tiers is cut to them.
  const rules = compileRules(`version: 1${TIERS}rules:\n  - name: c\n    route: { cascade: { tiers: [budget, standard], max_escalations: 5, checks: { json: true } } }\n`, 'rules.yaml');
  assert.equal(rules.decide(CONTEXT).cascade!.maxEscalations, 1);
});

test('a shadow rides on any route but a reject: a tier or a model, with its sample, concurrency and judge', () => {
  const rules = compileRules(`version: 1${TIERS}
rules:
  - name: shadowed
    when: { header.x-shadow: "yes" }
    route:
      tier: budget
      shadow: { tier: standard, sample: 0.25, judge: { model: openai/gpt-4o-mini } }
  - name: passed
    route:
      pass: true
      shadow: { model: openai/gpt-4o, sample: 1, max_concurrency: 2, judge: { model: openai/gpt-4o-mini, prompt: "Compare." } }
`, 'rules.yaml');
  const shadowed = rules.decide({ ...CONTEXT, headers: { 'x-shadow': 'yes' } });
  assert.equal(shadowed.model, 'meta-llama/llama-3.1-8b-instruct');
  assert.equal(shadowed.shadow!.route.model, 'anthropic/claude-3.5-sonnet');
  assert.deepEqual([shadowed.shadow!.sample, shadowed.shadow!.maxConcurrency, shadowed.shadow!.judge], [0.25, 4, { model: 'openai/gpt-4o-mini', prompt: DEFAULT_JUDGE_PROMPT }]);
  assert.equal(rules.decide({ ...CONTEXT, headers: { 'x-shadow': 'yes' } }).shadow, shadowed.shadow, 'one plan per rule and load: its concurrency is counted by identity');
  const passed = rules.decide(CONTEXT);
  assert.equal(passed.model, 'auto');
  assert.deepEqual([passed.shadow!.route.model, passed.shadow!.maxConcurrency, passed.shadow!.judge?.prompt], ['openai/gpt-4o', 2, 'Compare.']);
  assert.deepEqual(rules.explain(CONTEXT).shadow, { model: 'openai/gpt-4o', sample: 1, max_concurrency: 2, judge: 'openai/gpt-4o-mini' });
  assert.match(problems(`version: 1${TIERS}rules:\n  - name: r\n    route: { reject: { status: 403 }, shadow: { model: x/y, sample: 1 } }\n`), /a rule that rejects has no answer to shadow/);
  assert.match(problems(`version: 1${TIERS}rules:\n  - name: r\n    route: { tier: budget, shadow: { model: x/y, tier: standard, sample: 1 } }\n`), /exactly one of "model" or "tier"/);
  assert.match(problems(`version: 1${TIERS}rules:\n  - name: r\n    route: { tier: budget, shadow: { tier: nope, sample: 1 } }\n`), /unknown tier "nope"/);
  assert.match(problems(`version: 1${TIERS}rules:\n  - name: r\n    route: { tier: budget, shadow: { model: x/y, sample: 2 } }\n`), /must be <= 1/);
});
