import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { readLabelledSet } from '../../src/classify/dataset.js';
import { DEFAULT_MODEL_FILE, LocalClassifier, readClassifierFile } from '../../src/classify/model.js';
import { DEFAULT_TRAIN_OPTIONS, evaluate, train } from '../../src/classify/train.js';

const percent = (x: number) => `${(x * 100).toFixed(1)}%`;

test('the shipped model is what the shipped training set trains to, byte for byte, and its held-out figures are the ones docs/classifiers.md gives', { timeout: 120_000 }, () => {
  const set = readLabelledSet('datasets/classifier/train.jsonl');
  const trained = train(set.prompts, DEFAULT_TRAIN_OPTIONS);
  const model = new LocalClassifier(trained.bits, trained.weights, { ...trained.trained, set_sha256: set.sha256 });
  // As `signalbox classifier train` writes it (npm run classifier:train).
  assert.ok(readFileSync(DEFAULT_MODEL_FILE, 'utf8') === `${JSON.stringify(model.toArtifact())}\n`,
    'models/classifier-v1.json is stale: run `npm run classifier:train` after changing the features, the training or the set');

  const shipped = readClassifierFile(DEFAULT_MODEL_FILE);
  assert.ok(!Array.isArray(shipped));
  const heldout = readLabelledSet('datasets/classifier/heldout.jsonl').prompts;
  const doc = readFileSync('docs/classifiers.md', 'utf8');
  for (const raise of [0, 0.5, 0.6, 0.7, 0.8, 0.9]) {
    const e = evaluate(shipped, heldout, raise);
    const label = raise === 0 ? '0 (off)' : String(raise);
    const row = `| local, \`raise_below_confidence\` ${label} | ${percent(e.complexityAgreement)} | ${percent(e.underRouting)} | ${percent(e.taskAgreement)} |`;
    assert.ok(doc.includes(row), `docs/classifiers.md should have the row ${row}`);
  }
});
