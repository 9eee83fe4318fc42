import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { EmbeddingClassifier } from '../../src/classify/embedding.js';
import type { EmbeddingSettings } from '../../src/classify/config.js';
import type { ReceivedRequest } from '../../src/dev/fake-openrouter.js';
import { startHarness, type Harness } from '../support/harness.js';

const PROOF = 'Prove the Riemann hypothesis';
// Three copies of the proof request: the fake's vectors are a function of the text, so a request
// with that text has these three as its nearest neighbours (cosine 1), whatever the others' vectors.
const EXAMPLES = [
  ...[1, 2, 3].map(() => ({ text: PROOF, complexity: 'frontier', task: 'math' })),
  { text: 'hello', complexity: 'simple', task: 'chat' },
  { text: 'thanks a lot', complexity: 'simple', task: 'chat' },
  { text: 'translate cat to French', complexity: 'simple', task: 'translation' },
  { text: 'write an essay on trains', complexity: 'complex', task: 'creative_writing' },
].map((e) => JSON.stringify(e)).join('\n') + '\n';

function setup(t: { after(fn: () => void): void }): { dir: string; examples: string; rules: string } {
  const dir = mkdtempSync(join(tmpdir(), 'embedding-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const examples = join(dir, 'examples.jsonl');
  writeFileSync(examples, EXAMPLES);
  const rules = `
version: 1
classifier:
  method: embedding
  embedding: { examples_file: ${JSON.stringify(examples)}, k: 3 }
rules:
  - name: hard
    when: { classify.complexity: frontier }
    route: { model: openai/gpt-4o }
  - name: easy
    route: { model: openai/gpt-4o }
`;
  return { dir, examples, rules };
}

function embeddingCalls(h: Harness): { examples: number; windows: number } {
  const calls = h.fake.received.filter((r: ReceivedRequest) => r.url.endsWith('/embeddings')).map((r) => (r.json as { input: string[] }).input.length);
  return { examples: calls.filter((n) => n > 1).length, windows: calls.filter((n) => n === 1).length };
}

async function chat(h: Harness, id: string, text: string): Promise<Record<string, unknown>> {
  const res = await fetch(`${h.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: 'Bearer sk-or-test', 'x-request-id': id },
    body: JSON.stringify({ model: 'auto', messages: [{ role: 'user', content: text }] }),
  });
  assert.equal(res.status, 200);
  await res.arrayBuffer();
  return h.logs.requestLine(id);
}

test('method embedding: the examples are embedded once (shared by concurrent first requests) and cached in DATA_DIR; the k nearest vote', { timeout: 60_000 }, async (t) => {
  const { dir, rules } = setup(t);
  const env = { DATA_DIR: dir, METRICS_ENABLED: 'true' };
  const first = await startHarness({ rules, env });
  t.after(() => first.close());
  const lines = await Promise.all([PROOF, 'hi', 'bye'].map((text, i) => chat(first, `first-${i}`, text)));
  assert.deepEqual(lines[0]!.classify, { complexity: 'frontier', task: 'math', confidence: 1, method: 'embedding' });
  assert.equal(lines[0]!.rule, 'hard');
  for (const line of lines) assert.equal((line.classify as { method: string }).method, 'embedding');
  assert.deepEqual(embeddingCalls(first), { examples: 1, windows: 3 });
  await chat(first, 'again', PROOF);
  assert.deepEqual(embeddingCalls(first), { examples: 1, windows: 3 }, 'a window seen before is not embedded again');
  const scrape = await (await fetch(`${first.url}/metrics`)).text();
  assert.match(scrape, /^signalbox_classifier_requests_total\{method="embedding",outcome="cached"\} 1$/m);
  const cacheFiles = readdirSync(dir).filter((f) => f.startsWith('embeddings-'));
  assert.equal(cacheFiles.length, 1);

  // Another process with the same model and examples: the vectors come from DATA_DIR.
  const second = await startHarness({ rules, env });
  t.after(() => second.close());
  assert.equal(((await chat(second, 'second', PROOF)).classify as { complexity: string }).complexity, 'frontier');
  assert.deepEqual(embeddingCalls(second), { examples: 0, windows: 1 });

  // A corrupt cache file is ignored and recomputed.
  writeFileSync(join(dir, cacheFiles[0]!), 'garbage');
  const third = await startHarness({ rules, env });
  t.after(() => third.close());
  assert.equal(((await chat(third, 'third', PROOF)).classify as { complexity: string }).complexity, 'frontier');
  assert.deepEqual(embeddingCalls(third), { examples: 1, windows: 1 });
});

test('method embedding: when the examples cannot be embedded the local verdict decides, counted; the next request tries again', { timeout: 30_000 }, async (t) => {
  const { dir, rules } = setup(t);
  const h = await startHarness({ rules, env: { DATA_DIR: dir, METRICS_ENABLED: 'true' } });
  t.after(() => h.close());
  h.fake.enqueue({ type: 'status', status: 500 });
  assert.equal(((await chat(h, 'failed', PROOF)).classify as { method: string }).method, 'local');
  assert.equal(existsSync(join(dir, readdirSync(dir).find((f) => f.startsWith('embeddings-')) ?? 'none')), false);
  const scrape = await (await fetch(`${h.url}/metrics`)).text();
  assert.match(scrape, /^signalbox_classifier_requests_total\{method="embedding",outcome="error"\} 2$/m, 'the examples batch and the request');
  assert.equal(((await chat(h, 'retried', PROOF)).classify as { method: string }).method, 'embedding');
});

test('EmbeddingClassifier.vote: the k nearest by cosine, weighted by (1 + cosine) / 2; confidence is the complexity winner\'s share', () => {
  const example = (complexity: string, task: string) => ({ complexity, task }) as never;
  const settings = { model: 'm', examplesFile: 'f', examplesBytes: Buffer.alloc(0), k: 3,
    examples: [example('simple', 'chat'), example('simple', 'chat'), example('complex', 'analysis'), example('frontier', 'math')] } as EmbeddingSettings;
  const classifier = new EmbeddingClassifier(settings, tmpdir(), { upstream: { fetchWhole: () => Promise.reject(new Error('unused')) }, catalog: () => undefined });
  const vectors = [[1, 0], [0, 1], [1, 0], [-1, 0]].map((v) => Float32Array.from(v));
  // Query [1, 0]: cosines 1, 0, 1, -1; the three nearest are examples 0 (simple, 1), 2 (complex, 1) and 1 (simple, 0.5).
  const verdict = classifier.vote(Float32Array.from([1, 0]), vectors);
  assert.deepEqual(verdict, { complexity: 'simple', task: 'chat', confidence: 1.5 / 2.5, method: 'embedding' });
});
