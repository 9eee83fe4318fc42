import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compileRules, RulesError } from '../../src/rules/compile.js';
import type { RequestContext } from '../../src/rules/decision.js';
import type { RuleSet } from '../../src/rules/ruleset.js';

const rulesWith = (control: number, candidate: number, sticky = 'header.x-session-id') => `
version: 1
tiers:
  standard: { model: anthropic/claude-3.5-sonnet }
rules:
  - name: experiment
    route:
      split:
        sticky: ${sticky}
        arms:
          - { name: control, weight: ${control}, tier: standard }
          - { name: candidate, weight: ${candidate}, model: anthropic/claude-3.5-haiku, max_tokens: 512 }
`;

function context(session: string | undefined, random?: () => number): RequestContext {
  return {
    headers: session === undefined ? {} : { 'x-session-id': session },
    body: { model: 'auto', messages: [{ role: 'user', content: 'hi' }] },
    requestedModel: 'auto',
    ...(random !== undefined && { random }),
  };
}

function armsOf(rules: RuleSet, subjects: number): string[] {
  return Array.from({ length: subjects }, (_, i) => rules.decide(context(`session-${i}`)).split!.variant);
}

test('a 90/10 split over 10,000 subjects lands within statistical tolerance, each arm routing as its route says', () => {
  const rules = compileRules(rulesWith(90, 10), 'rules.yaml');
  const arms = armsOf(rules, 10_000);
  const candidates = arms.filter((a) => a === 'candidate').length;
  // Binomial(10,000, 0.1): mean 1,000, standard deviation 30; 4 deviations either side.
  assert.ok(candidates > 880 && candidates < 1120, `${candidates} of 10,000 in the 10% arm`);
  const decision = rules.decide(context('session-1'));
  const expected = decision.split!.variant === 'candidate' ? 'anthropic/claude-3.5-haiku' : 'anthropic/claude-3.5-sonnet';
  assert.equal(decision.model, expected);
  assert.equal(decision.split!.assignment, 'sticky');
  const candidate = Array.from({ length: 100 }, (_, i) => rules.decide(context(`session-${i}`))).find((d) => d.split!.variant === 'candidate')!;
  assert.equal(candidate.body.max_tokens, 512, 'the arm\'s actions apply');
});

test('every subject keeps its arm across requests and across a reload of the same file', () => {
  const first = armsOf(compileRules(rulesWith(90, 10), 'rules.yaml'), 2000);
  const again = armsOf(compileRules(rulesWith(90, 10), 'rules.yaml'), 2000);
  assert.deepEqual(again, first);
  const rules = compileRules(rulesWith(50, 50), 'rules.yaml');
  for (let i = 0; i < 200; i++) {
    const arm = rules.decide(context('same-subject')).split!.variant;
    assert.equal(arm, rules.decide(context('same-subject')).split!.variant);
  }
});

test('a reload moving 10 points of weight changes the arm of at most 12% of subjects, all into the arm that grew', () => {
  const before = armsOf(compileRules(rulesWith(90, 10), 'rules.yaml'), 10_000);
  const after = armsOf(compileRules(rulesWith(80, 20), 'rules.yaml'), 10_000);
  const moved = before.map((arm, i) => [arm, after[i]!] as const).filter(([a, b]) => a !== b);
  assert.ok(moved.length <= 1200, `${moved.length} of 10,000 subjects changed arm`);
  assert.ok(moved.length >= 800, `${moved.length}: about 10% must move for the weights to hold`);
  assert.ok(moved.every(([from, to]) => from === 'control' && to === 'candidate'), 'nobody left the arm that grew');
});

test('without sticky, or without a value in the sticky field, the arm is drawn per request (and says so)', () => {
  const draws = [0.95, 0.05];
  const random = () => draws.shift()!;
  const sticky = compileRules(rulesWith(90, 10), 'rules.yaml');
  assert.deepEqual(sticky.decide(context(undefined, random)).split, { variant: 'candidate', assignment: 'missing' });
  assert.deepEqual(sticky.decide(context('', random)).split, { variant: 'control', assignment: 'missing' }, 'an empty value is no subject');
  const unsticky = compileRules(rulesWith(90, 10).replace('        sticky: header.x-session-id\n', ''), 'rules.yaml');
  assert.deepEqual(unsticky.decide(context('ignored', () => 0.99)).split, { variant: 'candidate', assignment: 'random' });
  assert.deepEqual(unsticky.decide(context('ignored', () => 0)).split, { variant: 'control', assignment: 'random' });
});

test('explain shows the arm, how it was chosen and the weights; arms can be any route but a split or a reject', () => {
  const rules = compileRules(`
version: 1
tiers:
  cheap: { model: openai/gpt-4o-mini }
  standard: { model: anthropic/claude-3.5-sonnet }
rules:
  - name: experiment
    route:
      retry: { max_attempts: 2 }
      split:
        sticky: key.name
        arms:
          - { name: control, weight: 1, tier: standard }
          - { name: chooser, weight: 0, choose: { from: [cheap, standard] } }
          - { name: cascade, weight: 0, cascade: { tiers: [cheap, standard] } }
`, 'rules.yaml');
  const explanation = rules.explain({ ...context(undefined), caller: { name: 'alice', tier: undefined, team: undefined, meta: {}, models: undefined, limits: {}, budgets: {}, users: undefined } });
  assert.deepEqual(explanation.split, {
    variant: 'control', assignment: 'sticky', sticky: 'key.name',
    arms: [{ name: 'control', weight: 1 }, { name: 'chooser', weight: 0 }, { name: 'cascade', weight: 0 }],
  });
  assert.equal(explanation.model, 'anthropic/claude-3.5-sonnet');
  assert.equal(rules.decide(context(undefined, () => 0.5)).retry?.maxAttempts, 2, 'the split\'s retry applies to its arms');
});

test('a split that cannot work is a load error with its position', () => {
  const problems = (text: string): string[] => {
    try {
      compileRules(text, 'rules.yaml');
    } catch (err) {
      assert.ok(err instanceof RulesError);
      return [...err.problems];
    }
    assert.fail('compiled');
  };
  const base = (arms: string, extra = '') => `version: 1\nrules:\n  - name: s\n    route:\n${extra}      split:\n        arms:\n${arms}`;
  assert.match(problems(base('          - { name: a, weight: 1, model: x/y }\n          - { name: a, weight: 1, model: x/z }\n')).join('\n'), /rules\.yaml:\d+:\d+: .*duplicate arm name "a"/);
  assert.match(problems(base('          - { name: none, weight: 1, model: x/y }\n          - { name: b, weight: 1, model: x/z }\n')).join('\n'), /the arm name "none" is reserved/);
  assert.match(problems(base('          - { name: a, weight: 0, model: x/y }\n          - { name: b, weight: 0, model: x/z }\n')).join('\n'), /weights add up to 0/);
  assert.match(problems(base('          - { name: a, weight: 1, model: x/y }\n          - { name: b, weight: 1, reject: { status: 403 } }\n')).join('\n'), /an arm cannot reject/);
  assert.match(problems(base('          - { name: a, weight: 1, model: x/y }\n          - { name: b, weight: 1, model: x/z }\n', '      model: x/w\n')).join('\n'), /route\.split stands alone; remove "model"/);
  assert.match(problems(base('          - { name: a, weight: 1, model: x/y }\n          - { name: b, weight: 1, split: { arms: [] } }\n')).join('\n'), /unknown key "split"/);
  assert.match(problems(base('          - { name: a, weight: 1, model: x/y }\n')).join('\n'), /must NOT have fewer than 2 items/);
});
