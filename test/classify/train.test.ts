import assert from 'node:assert/strict';
import { test } from 'node:test';
import { readLabelledSet } from '../../src/classify/dataset.js';
import { DENSE_FEATURES } from '../../src/classify/features.js';
import { COMPLEXITY_LABELS, TASK_LABELS } from '../../src/classify/labels.js';
import { HEADS, LocalClassifier, weightRows } from '../../src/classify/model.js';
import { DEFAULT_TRAIN_OPTIONS, evaluate, train } from '../../src/classify/train.js';
import { FIXTURE_BITS, FIXTURE_SET, fixtureModel, prompt } from '../support/classifier.js';

test('train: learns the fixture set to high training agreement, and the same set and options train the same weights', () => {
  const prompts = readLabelledSet(FIXTURE_SET).prompts;
  const e = evaluate(fixtureModel(), prompts);
  assert.ok(e.complexityAgreement >= 0.95, `complexity ${e.complexityAgreement}`);
  assert.ok(e.taskAgreement >= 0.95, `task ${e.taskAgreement}`);
  const again = train(prompts, { ...DEFAULT_TRAIN_OPTIONS, bits: FIXTURE_BITS });
  assert.deepEqual(again.weights, fixtureModel().weights);
  assert.deepEqual(again.trained, { examples: 62, set_sha256: '', epochs: 20, l2: 1e-6, learning_rate: DEFAULT_TRAIN_OPTIONS.learningRate, seed: 1 });
  const otherSeed = train(prompts, { ...DEFAULT_TRAIN_OPTIONS, bits: FIXTURE_BITS, seed: 2 });
  assert.notDeepEqual(otherSeed.weights, fixtureModel().weights);
});

const C = COMPLEXITY_LABELS.length;
const HAS_SYSTEM = DENSE_FEATURES.indexOf('has_system');

/**
 * A model whose verdicts the test knows: only the bias and the has_system row have weights.
 * Without a system message: medium, confidence e/(e+3) = 0.475; with one: complex, confidence
 * e^6/(e^6+e+2) = 0.988. Task: always chat.
 */
function knownModel(): LocalClassifier {
  const bits = 10;
  const w = new Float32Array(weightRows(bits) * HEADS);
  const bias = ((1 << bits) + DENSE_FEATURES.length) * HEADS;
  w[bias + 1] = 1; // medium
  w[bias + C + TASK_LABELS.indexOf('chat')] = 1;
  w[((1 << bits) + HAS_SYSTEM) * HEADS + 2] = 6; // complex
  return new LocalClassifier(bits, w, { examples: 0, set_sha256: '', epochs: 0, l2: 0, learning_rate: 0, seed: 0 });
}

const plain = (text: string): unknown[] => [{ role: 'user', content: text }];
const withSystem = (text: string): unknown[] => [{ role: 'system', content: 'be careful' }, { role: 'user', content: text }];

test('evaluate: agreement, under- and over-routing and both confusion matrices on a case whose answer is known', () => {
  const model = knownModel();
  assert.deepEqual(model.classify({ ...prompt('simple', 'chat', plain('hi')).input }).complexity, 'medium');
  const prompts = [
    prompt('simple', 'chat', plain('hi'), { lang: 'en' }), // medium: over
    prompt('medium', 'chat', plain('summarise'), { lang: 'en' }), // medium: agrees
    prompt('frontier', 'math', plain('prove it'), { lang: 'fr', tags: ['trap_keyword_down'] }), // medium: under
    prompt('complex', 'analysis', withSystem('compare'), { lang: 'fr' }), // complex: agrees
    prompt('frontier', 'chat', withSystem('design it all'), { tags: ['trap_keyword_down'] }), // complex: under
  ];
  const e = evaluate(model, prompts);
  assert.equal(e.prompts, 5);
  assert.equal(e.raiseBelowConfidence, 0);
  assert.equal(e.complexityAgreement, 2 / 5);
  assert.equal(e.underRouting, 2 / 5);
  assert.equal(e.overRouting, 1 / 5);
  assert.equal(e.taskAgreement, 3 / 5);
  assert.deepEqual(e.complexityConfusion, [
    [0, 1, 0, 0], // simple
    [0, 1, 0, 0], // medium
    [0, 0, 1, 0], // complex
    [0, 1, 1, 0], // frontier
  ]);
  const chat = TASK_LABELS.indexOf('chat');
  e.taskConfusion.forEach((row, label) => row.forEach((n, verdict) => {
    const expected = verdict !== chat ? 0 : ({ chat: 3, math: 1, analysis: 1 } as Record<string, number>)[TASK_LABELS[label]!] ?? 0;
    assert.equal(n, expected, `${TASK_LABELS[label]} -> ${TASK_LABELS[verdict]}`);
  }));
  assert.deepEqual(e.byGroup, {
    'lang:?': { prompts: 1, complexityAgreement: 0, underRouting: 1, taskAgreement: 1 },
    'lang:en': { prompts: 2, complexityAgreement: 0.5, underRouting: 0, taskAgreement: 1 },
    'lang:fr': { prompts: 2, complexityAgreement: 0.5, underRouting: 0.5, taskAgreement: 0 },
    'tag:trap_keyword_down': { prompts: 2, complexityAgreement: 0, underRouting: 1, taskAgreement: 0.5 },
  });
});

test('evaluate: raise_below_confidence moves exactly the verdicts below it one tier up, frontier included', () => {
  const model = knownModel();
  const unsure = prompt('complex', 'chat', plain('refactor this'));
  const sure = prompt('complex', 'chat', withSystem('refactor this'));
  const unsureConfidence = model.classify(unsure.input).confidence;
  const sureConfidence = model.classify(sure.input).confidence;
  assert.ok(Math.abs(unsureConfidence - Math.E / (Math.E + 3)) < 1e-6, String(unsureConfidence));
  assert.ok(sureConfidence > 0.98, String(sureConfidence));
  const verdicts = (threshold: number): number[] => evaluate(model, [unsure, sure], threshold).complexityConfusion[2]!;
  assert.deepEqual(verdicts(0), [0, 1, 1, 0]); // medium, complex
  assert.deepEqual(verdicts(unsureConfidence), [0, 1, 1, 0]); // not below: stays
  assert.deepEqual(verdicts(unsureConfidence + 1e-9), [0, 0, 2, 0]); // the unsure one only: medium -> complex
  assert.deepEqual(verdicts(sureConfidence + 1e-9), [0, 0, 1, 1]); // both: complex -> frontier
  const raised = evaluate(model, [unsure, sure], 0.6);
  assert.equal(raised.raiseBelowConfidence, 0.6);
  assert.equal(raised.complexityAgreement, 1);
  assert.equal(raised.underRouting, 0);
  assert.equal(evaluate(model, [unsure, sure], 0).underRouting, 0.5);
});
