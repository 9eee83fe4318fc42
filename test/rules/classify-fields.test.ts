import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { Classification } from '../../src/classify/labels.js';
import { compileRules, RulesError } from '../../src/rules/compile.js';
import { compileRulesText } from '../../src/rules-file/loader.js';
import type { RequestContext } from '../../src/rules/decision.js';

const RULES = `
version: 1
rules:
  - name: fixed
    when: { header.x-fixed: "yes" }
    route: { model: openai/gpt-4o-mini }
  - name: by-task
    when: { classify.task: code_generation }
    route: { model: openai/gpt-4o }
`;

function context(headers: Record<string, string>, resolved?: Classification): RequestContext {
  const body = { model: 'auto', messages: [{ role: 'user', content: 'write a function' }] };
  return { headers, body, requestedModel: 'auto', ...(resolved && { resolved: { classification: resolved } }) };
}

test('classify.*: computed only when a rule reads it; a verdict resolved before evaluation is used as is', () => {
  const rules = compileRulesText(RULES, 'rules.yaml');
  assert.equal(rules.readsClassification, true);
  assert.equal(rules.decide(context({ 'x-fixed': 'yes' })).classification, undefined, 'the first rule decided: no classification');
  const local = rules.decide(context({})).classification;
  assert.equal(local?.method, 'local');
  const resolved: Classification = { complexity: 'frontier', task: 'code_generation', confidence: 0.42, method: 'llm' };
  const decision = rules.decide(context({}, resolved));
  assert.equal(decision.rule, 'by-task');
  assert.deepEqual(decision.classification, resolved);
  assert.equal(compileRulesText('version: 1\nrules: [{ name: a, route: { model: x/y } }]\n', 'r.yaml').readsClassification, false);
});

test('classifier.model_file: a file that is not a model is a load error naming the rules file line and the model file', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'classifier-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'model.json'), JSON.stringify({ format: 'signalbox-classifier', version: 9 }));
  const text = `version: 1\nclassifier:\n  model_file: ./model.json\nrules: []\n`;
  assert.throws(() => compileRulesText(text, join(dir, 'rules.yaml')), (err: unknown) => {
    assert.ok(err instanceof RulesError);
    assert.match(err.problems.join('\n'), /rules\.yaml:3:\d+: .*model\.json: version: expected 1/);
    return true;
  });
  assert.throws(() => compileRulesText(`version: 1\nclassifier:\n  model_file: ./missing.json\nrules: []\n`, join(dir, 'rules.yaml')), /missing\.json: cannot read the classifier model \(ENOENT\)/);
  assert.throws(() => compileRulesText(`version: 1\nclassifier:\n  method: magic\nrules: []\n`, join(dir, 'rules.yaml')), /classifier\.method must be one of/);
});

test('the pure engine reads no model file: compiled without a classifier, rules that read classify.* do not load', () => {
  assert.throws(() => compileRules(RULES, 'rules.yaml'), /rules\.yaml:\d+:\d+: rules\[1\] "by-task": classify fields need a classifier/);
  assert.equal(compileRules('version: 1\nrules: [{ name: a, route: { model: x/y } }]\n', 'r.yaml').classifier, undefined);
});
