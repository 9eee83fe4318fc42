import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { readLabelledSet } from '../../src/classify/dataset.js';
import { COMPLEXITY_LABELS } from '../../src/classify/labels.js';
import { classifierFromArtifact, HEADS, LocalClassifier, MODEL_VERSION, readClassifierFile, weightRows, type ModelArtifact } from '../../src/classify/model.js';
import { FIXTURE_BITS, FIXTURE_SET, fixtureModel } from '../support/classifier.js';

function artifact(): ModelArtifact {
  return JSON.parse(JSON.stringify(fixtureModel().toArtifact())) as ModelArtifact;
}

function problemsOf(value: unknown): string[] {
  const result = classifierFromArtifact(value);
  assert.ok(Array.isArray(result), 'expected the artifact to be refused');
  return result;
}

test('model: an artifact read back gives the weights within quantisation error and the same verdicts', () => {
  const model = fixtureModel();
  const a = artifact();
  const back = classifierFromArtifact(a);
  assert.ok(back instanceof LocalClassifier);
  assert.equal(back.bits, FIXTURE_BITS);
  assert.deepEqual(back.trained, model.trained);
  assert.equal(back.weights.length, weightRows(FIXTURE_BITS) * HEADS);
  // int8 rounding: at most half a step, plus float32's own rounding.
  for (let i = 0; i < back.weights.length; i++) {
    assert.ok(Math.abs(back.weights[i]! - model.weights[i]!) <= a.scale / 2 + 1e-6 * Math.abs(model.weights[i]!), `weight ${i}`);
  }
  const p = new Float64Array(HEADS);
  const q = new Float64Array(HEADS);
  for (const prompt of readLabelledSet(FIXTURE_SET).prompts) {
    model.probabilities(prompt.input, p);
    back.probabilities(prompt.input, q);
    for (let j = 0; j < HEADS; j++) assert.ok(Math.abs(p[j]! - q[j]!) < 0.01, `${prompt.id}: head ${j}: ${p[j]} vs ${q[j]}`);
    assert.equal(back.classify(prompt.input).complexity, model.classify(prompt.input).complexity, prompt.id);
  }
});

test('model: every problem of a bad artifact is named by its field', () => {
  assert.deepEqual(problemsOf(null), ['not a JSON object']);
  assert.deepEqual(problemsOf([]), ['not a JSON object']);

  const wrongLabels = { ...artifact(), complexity: [...COMPLEXITY_LABELS].reverse(), task: ['chat'] };
  const labels = problemsOf(wrongLabels);
  assert.equal(labels.length, 2);
  assert.match(labels[0]!, /^complexity: expected the labels simple, medium, complex, frontier$/);
  assert.match(labels[1]!, /^task: expected the labels chat, simple_qa, /);

  for (const bits of [9, 21, 12.5, '12', null]) assert.deepEqual(problemsOf({ ...artifact(), hash_bits: bits }), ['hash_bits: expected an integer from 10 to 20'], String(bits));

  const a = artifact();
  const truncated = { ...a, weights: Buffer.from(a.weights, 'base64').subarray(0, 100).toString('base64') };
  assert.deepEqual(problemsOf(truncated), [`weights: expected ${weightRows(FIXTURE_BITS) * HEADS} int8 values for hash_bits ${FIXTURE_BITS}, got 100`]);
  // Weights of another size than hash_bits says: refused, not read past or half used.
  assert.match(problemsOf({ ...a, hash_bits: FIXTURE_BITS + 1 })[0]!, /^weights: expected \d+ int8 values for hash_bits 13, got \d+$/);

  assert.deepEqual(problemsOf({ ...artifact(), version: MODEL_VERSION + 1 }), ['version: expected 1 (this Signalbox reads version 1 models)']);

  // Several problems at once are all reported.
  const many = problemsOf({ ...artifact(), format: 'other', features: 'hashed-v0', dense_features: [], scale: 0, weights: 7, trained: [] });
  assert.deepEqual(many.map((p) => p.split(':')[0]), ['format', 'features', 'dense_features', 'scale', 'weights', 'trained']);
});

function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'signalbox-model-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('model: readClassifierFile names the file and the reason: missing, not JSON, not a model; a good file reads', (t) => {
  const dir = tempDir(t);
  const missing = join(dir, 'missing.json');
  assert.deepEqual(readClassifierFile(missing), [`${missing}: cannot read the classifier model (ENOENT)`]);
  assert.deepEqual(readClassifierFile(dir), [`${dir}: the classifier model is not a regular file (symlinks are followed; a FIFO, device or directory is refused)`]);
  const notJson = join(dir, 'not.json');
  writeFileSync(notJson, '{"format": ');
  const notJsonProblems = readClassifierFile(notJson);
  assert.ok(Array.isArray(notJsonProblems) && notJsonProblems.length === 1 && notJsonProblems[0]!.startsWith(`${notJson}: not JSON (`), String(notJsonProblems));
  const old = join(dir, 'old.json');
  writeFileSync(old, JSON.stringify({ ...artifact(), version: 0 }));
  assert.deepEqual(readClassifierFile(old), [`${old}: version: expected 1 (this Signalbox reads version 1 models)`]);
  const good = join(dir, 'good.json');
  writeFileSync(good, JSON.stringify(artifact()));
  assert.ok(readClassifierFile(good) instanceof LocalClassifier);
});
