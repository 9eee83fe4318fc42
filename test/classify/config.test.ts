import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { CLASSIFIER_DEFAULTS, DEFAULT_LLM_PROMPT, MAX_PROMPT_FILE_BYTES } from '../../src/classify/config.js';
import { COMPLEXITY_LABELS, TASK_LABELS } from '../../src/classify/labels.js';
import { RulesError } from '../../src/rules/compile.js';
import { compileRulesText } from '../../src/rules-file/loader.js';

function tempDir(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'classifier-config-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function problems(text: string, file: string): string {
  try {
    compileRulesText(text, file);
  } catch (err) {
    assert.ok(err instanceof RulesError);
    return err.problems.join('\n');
  }
  return assert.fail('expected a load error');
}

test('classifier: a method without its block gets the defaults; the built-in prompt names every label and the answer\'s shape', () => {
  const llm = compileRulesText('version: 1\nclassifier: { method: hybrid }\nrules: []\n', 'r.yaml').classifier!;
  assert.equal(llm.method, 'hybrid');
  assert.deepEqual({ ...llm.llm, prompt: undefined }, { ...CLASSIFIER_DEFAULTS.llm, prompt: undefined });
  assert.equal(llm.llm.model, 'openai/gpt-4o-mini');
  assert.equal(llm.llm.timeoutMs, 1500);
  assert.equal(llm.llm.cacheEntries, 10_000);
  assert.equal(llm.hybrid.minConfidence, 0.7);
  assert.equal(llm.llm.prompt, DEFAULT_LLM_PROMPT);
  for (const label of [...COMPLEXITY_LABELS, ...TASK_LABELS]) assert.ok(DEFAULT_LLM_PROMPT.includes(label), label);
  assert.match(DEFAULT_LLM_PROMPT, /"complexity".*"task".*"confidence"/);
  const set = compileRulesText('version: 1\nclassifier: { method: llm, llm: { model: openai/gpt-4o, timeout_ms: 300, cache_entries: 0, max_tokens: 20 }, hybrid: { min_confidence: 0.5 } }\nrules: []\n', 'r.yaml').classifier!;
  assert.deepEqual([set.llm.model, set.llm.timeoutMs, set.llm.cacheEntries, set.llm.maxTokens, set.hybrid.minConfidence], ['openai/gpt-4o', 300, 0, 20, 0.5]);
});

test('classifier.llm.prompt_file: read at load beside the rules file; unreadable, empty or too large is a positioned load error', (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'prompt.txt'), 'Label it.\n');
  const rules = (file: string) => `version: 1\nclassifier:\n  method: llm\n  llm:\n    prompt_file: ${file}\nrules: []\n`;
  assert.equal(compileRulesText(rules('./prompt.txt'), join(dir, 'rules.yaml')).classifier!.llm.prompt, 'Label it.');
  assert.match(problems(rules('./missing.txt'), join(dir, 'rules.yaml')), /rules\.yaml:5:\d+: .*missing\.txt: cannot read the classification prompt \(ENOENT\)/);
  writeFileSync(join(dir, 'empty.txt'), '  \n');
  assert.match(problems(rules('./empty.txt'), join(dir, 'rules.yaml')), /empty\.txt: empty/);
  writeFileSync(join(dir, 'big.txt'), 'x'.repeat(MAX_PROMPT_FILE_BYTES + 1));
  assert.match(problems(rules('./big.txt'), join(dir, 'rules.yaml')), /big\.txt: the classification prompt is larger than 16384 bytes \(16 KiB\), the limit/);
});

test('classifier.embedding: examples_file is required for method embedding and checked at load, line by line', (t) => {
  const dir = tempDir(t);
  assert.match(problems('version: 1\nclassifier: { method: embedding }\nrules: []\n', join(dir, 'rules.yaml')), /method embedding needs embedding\.examples_file/);
  writeFileSync(join(dir, 'examples.jsonl'), '{"text":"hi","complexity":"simple","task":"chat"}\n{"text":"x","complexity":"easy","task":"chat"}\n');
  const text = 'version: 1\nclassifier:\n  method: embedding\n  embedding: { examples_file: ./examples.jsonl }\nrules: []\n';
  assert.match(problems(text, join(dir, 'rules.yaml')), /rules\.yaml:4:\d+: .*examples\.jsonl:2: complexity: expected one of simple, medium, complex, frontier/);
  writeFileSync(join(dir, 'examples.jsonl'), '{"text":"hi","complexity":"simple","task":"chat"}\n');
  const embedding = compileRulesText(text, join(dir, 'rules.yaml')).classifier!.embedding!;
  assert.equal(embedding.model, 'openai/text-embedding-3-small');
  assert.equal(embedding.k, 5);
  assert.equal(embedding.examples.length, 1);
  // Other methods do not read it (nor need it).
  assert.equal(compileRulesText('version: 1\nclassifier: { method: llm, embedding: { examples_file: ./nowhere.jsonl } }\nrules: []\n', join(dir, 'rules.yaml')).classifier!.embedding, undefined);
});

test('classifier files that are no regular file (/dev/zero, a directory) are load errors, never read', () => {
  for (const [key, block] of [['model_file', 'model_file: /dev/zero'], ['prompt_file', 'method: llm\n  llm:\n    prompt_file: /dev/zero'], ['examples_file', 'method: embedding\n  embedding:\n    examples_file: /dev/zero']] as const) {
    assert.match(problems(`version: 1\nclassifier:\n  ${block}\nrules: []\n`, 'rules.yaml'), /\/dev\/zero: the .* is not a regular file/, key);
  }
});
