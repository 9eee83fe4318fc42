import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { readLabelledSet } from '../../src/classify/dataset.js';
import { FIXTURE_SET, fixtureModel } from '../support/classifier.js';

const BENCH = fileURLToPath(new URL('../../bench/classifier.bench.js', import.meta.url));

test('bench:classifier --quick runs on a given set, second labelling and model, and writes its figures', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'signalbox-classifier-bench-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const model = join(dir, 'model.json');
  writeFileSync(model, JSON.stringify(fixtureModel().toArtifact()));
  // The second labelling disagrees on two prompts: one lower (under-routing), one on the task.
  const prompts = readLabelledSet(FIXTURE_SET).prompts;
  const second = join(dir, 'second.jsonl');
  writeFileSync(second, prompts.map((p, i) => JSON.stringify({
    id: p.id,
    complexity: p.id === 'fx-016' ? 'simple' : p.complexity, // medium labelled simple
    task: i === 1 ? (p.task === 'chat' ? 'simple_qa' : 'chat') : p.task,
  })).join('\n'));
  const stdout = await new Promise<string>((resolve, reject) => {
    execFile(process.execPath, ['--expose-gc', BENCH, '--quick', '--set', FIXTURE_SET, '--second', second, '--model', model, '--results', dir], { timeout: 120_000 }, (error, out, err) => {
      if (error) reject(new Error(`${error.message}\n${err}`));
      else resolve(out);
    });
  });
  assert.match(stdout, /\| 0 \(off\) {16}\|/);
  assert.match(stdout, /\| 0\.7 {20}\|/);
  assert.match(stdout, /ceiling \(second labelling vs first, 62 prompts\): complexity 98\.4%, task 98\.4%, under-routing of the second vs the first 1\.6%/);
  assert.match(stdout, /hybrid LLM share \(local confidence < min_confidence\): 0\.5: .*0\.7 \(default\): /);
  assert.match(stdout, /\| full window \(4096 chars of a \d+-char turn\)/);
  const [file] = readdirSync(dir).filter((f) => f.startsWith('classifier-') && f.endsWith('-quick.json'));
  assert.ok(file, 'no results file');
  const result = JSON.parse(readFileSync(join(dir, file), 'utf8')) as { accuracy: { raise_below_confidence: number }[]; llm_share: unknown[]; latency: { p50_us: number; bytes_per_classification?: number }[]; artifact_bytes: number; ceiling: { prompts: number } };
  assert.deepEqual(result.accuracy.map((a) => a.raise_below_confidence), [0, 0.5, 0.6, 0.7, 0.8, 0.9]);
  assert.equal(result.llm_share.length, 4);
  assert.equal(result.latency.length, 2);
  assert.ok(result.latency.every((l) => l.p50_us > 0 && typeof l.bytes_per_classification === 'number'));
  assert.ok(result.artifact_bytes > 0);
  assert.equal(result.ceiling.prompts, 62);
});
