import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ReceivedRequest } from '../../src/dev/fake-openrouter.js';
import { parseLlmAnswer } from '../../src/classify/llm.js';
import { startHarness, type Harness } from '../support/harness.js';

// The classifier asks openai/gpt-4o-mini (the default); the routes send to openai/gpt-4o, so that
// the fake's canned classifier answer never reaches a routed request.
const rules = (method: string, extra = '') => `
version: 1
classifier:
  method: ${method}
  llm: { timeout_ms: 1000 }${extra}
rules:
  - name: fixed
    when: { header.x-fixed: "yes" }
    route: { model: openai/gpt-4o }
  - name: hard
    when: { classify.complexity: { in: [complex, frontier] } }
    route: { model: openai/gpt-4o }
  - name: easy
    route: { model: openai/gpt-4o }
`;

const FRONTIER = '{"complexity":"frontier","task":"math","confidence":0.9}';
const CLIENT_KEY = 'Bearer sk-or-client';

function classifierCalls(h: Harness): ReceivedRequest[] {
  return h.fake.received.filter((r) => (r.json as { model?: unknown } | null)?.model === 'openai/gpt-4o-mini');
}

async function chat(h: Harness, id: string, text: string, headers: Record<string, string> = {}): Promise<Record<string, unknown>> {
  const res = await fetch(`${h.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: CLIENT_KEY, 'x-request-id': id, ...headers },
    body: JSON.stringify({ model: 'auto', messages: [{ role: 'system', content: 'be brief' }, { role: 'user', content: text }] }),
  });
  assert.equal(res.status, 200, await res.clone().text());
  await res.arrayBuffer();
  return h.logs.requestLine(id);
}

function counter(scrape: string, outcome: string): number {
  return Number(new RegExp(`^signalbox_classifier_requests_total\\{method="llm",outcome="${outcome}"\\} (\\S+)$`, 'm').exec(scrape)?.[1] ?? 0);
}

test('parseLlmAnswer: known labels and a confidence in [0, 1], bare or fenced; anything else is unparseable', () => {
  assert.deepEqual(parseLlmAnswer(FRONTIER), { complexity: 'frontier', task: 'math', confidence: 0.9 });
  assert.deepEqual(parseLlmAnswer('```json\n' + FRONTIER + '\n```'), { complexity: 'frontier', task: 'math', confidence: 0.9 });
  assert.deepEqual(parseLlmAnswer('```' + FRONTIER + '```'), { complexity: 'frontier', task: 'math', confidence: 0.9 });
  // Hostile answers: too long to be a verdict; a fence around spaces is no catastrophic backtracking.
  assert.equal(parseLlmAnswer(`${FRONTIER}${' '.repeat(5000)}`), undefined);
  assert.equal(parseLlmAnswer(`\`\`\`${' '.repeat(4000)}x`), undefined);
  for (const bad of ['hard', '{"complexity":"huge","task":"math","confidence":0.5}', '{"complexity":"simple","task":"poetry","confidence":0.5}',
    '{"complexity":"simple","task":"chat","confidence":2}', '{"complexity":"simple","task":"chat"}', '[1]', 'null', 'Sure! ' + FRONTIER]) {
    assert.equal(parseLlmAnswer(bad), undefined, bad);
  }
});

test('method llm: the verdict of the model through the same upstream (window only, temperature 0), cached; timeout, error and unparseable answers fall back to the local verdict; all counted and priced', { timeout: 60_000 }, async (t) => {
  const h = await startHarness({ rules: rules('llm'), env: { METRICS_ENABLED: 'true' } });
  t.after(() => h.close());
  h.fake.cannedContent.set('openai/gpt-4o-mini', FRONTIER);

  // ok: the LLM's verdict decides, and its cost is the caller's.
  const ok = await chat(h, 'ok', 'What is 2 + 2?');
  assert.deepEqual(ok.classify, { complexity: 'frontier', task: 'math', confidence: 0.9, method: 'llm' });
  assert.equal(ok.rule, 'hard');
  assert.equal(typeof ok.classifier_cost_usd, 'number');
  assert.ok((ok.classifier_cost_usd as number) > 0);
  const [call] = classifierCalls(h);
  const sent = call!.json as { temperature: number; max_tokens: number; messages: { role: string; content: string }[]; stream: boolean };
  assert.equal(sent.temperature, 0);
  assert.equal(sent.max_tokens, 60);
  assert.equal(sent.stream, false);
  assert.equal(sent.messages.length, 2, 'the prompt and the window: not the conversation');
  assert.equal(sent.messages[0]!.role, 'system');
  assert.match(sent.messages[0]!.content, /frontier/);
  assert.deepEqual(sent.messages[1], { role: 'user', content: 'What is 2 + 2?' });
  assert.equal(call!.headers.authorization, CLIENT_KEY, 'pass-through: the caller\'s own key pays');
  assert.ok(!JSON.stringify(ok).includes('sk-or-client'), 'the key is never logged');

  // cached: explain and a second request with the same window ask nothing more.
  const explain = await (await fetch(`${h.url}/v1/routing/explain`, {
    method: 'POST', headers: { 'content-type': 'application/json', authorization: CLIENT_KEY },
    body: JSON.stringify({ model: 'auto', messages: [{ role: 'user', content: 'What is 2 + 2?' }] }),
  })).json() as { rule: string; classification: { method: string } };
  assert.equal(explain.classification.method, 'llm', 'explain shows what a request would get');
  assert.equal(explain.rule, 'hard');
  const cached = await chat(h, 'cached', 'What is 2 + 2?');
  assert.equal((cached.classify as { method: string }).method, 'llm');
  assert.equal(cached.classifier_cost_usd, undefined, 'a cache hit costs nothing');
  assert.equal(classifierCalls(h).length, 1);

  // A fenced answer is an answer.
  h.fake.cannedContent.set('openai/gpt-4o-mini', '```json\n{"complexity":"complex","task":"analysis","confidence":0.8}\n```');
  assert.deepEqual((await chat(h, 'fenced', 'Compare two databases')).classify, { complexity: 'complex', task: 'analysis', confidence: 0.8, method: 'llm' });

  // unparseable, error, timeout: the local verdict, each counted.
  h.fake.cannedContent.set('openai/gpt-4o-mini', 'This looks hard to me.');
  assert.equal(((await chat(h, 'unparseable', 'hello there')).classify as { method: string }).method, 'local');
  h.fake.enqueue({ type: 'status', status: 500 });
  assert.equal(((await chat(h, 'error', 'good morning')).classify as { method: string }).method, 'local');
  h.fake.enqueue({ type: 'hang' });
  const timedOut = await chat(h, 'timeout', 'good evening');
  assert.equal((timedOut.classify as { method: string }).method, 'local');
  const hung = classifierCalls(h).at(-1)!;
  assert.equal(await hung.outcome, 'aborted', 'the timeout aborts the upstream call');

  // A request decided before any rule reads classify.* asks nothing.
  const before = classifierCalls(h).length;
  assert.equal((await chat(h, 'fixed', 'a new text', { 'x-fixed': 'yes' })).classify, undefined);
  assert.equal(classifierCalls(h).length, before);

  const scrape = await (await fetch(`${h.url}/metrics`)).text();
  assert.equal(counter(scrape, 'ok'), 2);
  assert.equal(counter(scrape, 'cached'), 2);
  assert.equal(counter(scrape, 'unparseable'), 1);
  assert.equal(counter(scrape, 'error'), 1);
  assert.equal(counter(scrape, 'timeout'), 1);
  assert.ok(Number(/^signalbox_classifier_cost_usd_total\{method="llm"\} (\S+)$/m.exec(scrape)?.[1]) > 0);
  assert.equal(Number(/^signalbox_classifier_duration_seconds_count\{method="llm"\} (\S+)$/m.exec(scrape)?.[1]), 7);
});

test('method llm: concurrent requests with the same window share one call', { timeout: 30_000 }, async (t) => {
  const h = await startHarness({ rules: rules('llm') });
  t.after(() => h.close());
  h.fake.cannedContent.set('openai/gpt-4o-mini', FRONTIER);
  const lines = await Promise.all([1, 2, 3].map((i) => chat(h, `same-${i}`, 'the same question')));
  for (const line of lines) assert.equal((line.classify as { method: string }).method, 'llm');
  assert.equal(classifierCalls(h).length, 1);
});

test('method hybrid: the LLM is asked only when the local verdict is less sure than min_confidence', { timeout: 30_000 }, async (t) => {
  // min_confidence 1: the local classifier is never that sure, every classification asks the LLM.
  const always = await startHarness({ rules: rules('hybrid', '\n  hybrid: { min_confidence: 1 }') });
  t.after(() => always.close());
  always.fake.cannedContent.set('openai/gpt-4o-mini', FRONTIER);
  assert.equal(((await chat(always, 'unsure', 'Prove it')).classify as { method: string }).method, 'llm');
  assert.equal(classifierCalls(always).length, 1);
  // min_confidence 0: the local verdict always decides, the LLM is never asked.
  const never = await startHarness({ rules: rules('hybrid', '\n  hybrid: { min_confidence: 0 }') });
  t.after(() => never.close());
  assert.equal(((await chat(never, 'sure', 'Prove it')).classify as { method: string }).method, 'local');
  assert.equal(classifierCalls(never).length, 0);
});

test('a caller refused by client authentication triggers no classifier call; the server key pays for an accepted one', { timeout: 30_000 }, async (t) => {
  const h = await startHarness({ rules: rules('llm'), env: { OPENROUTER_API_KEY: 'sk-or-server', SIGNALBOX_API_KEYS: 'sy-key-1' } });
  t.after(() => h.close());
  h.fake.cannedContent.set('openai/gpt-4o-mini', FRONTIER);
  const refused = await fetch(`${h.url}/v1/chat/completions`, {
    method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer wrong' },
    body: JSON.stringify({ model: 'auto', messages: [{ role: 'user', content: 'hi' }] }),
  });
  assert.equal(refused.status, 401);
  await refused.arrayBuffer();
  assert.equal(h.fake.received.length, 0);
  await chat(h, 'accepted', 'hi', { authorization: 'Bearer sy-key-1' });
  assert.equal(classifierCalls(h)[0]!.headers.authorization, 'Bearer sk-or-server');
});

test('rules that read no classify field, or method local, trigger no classifier call', { timeout: 30_000 }, async (t) => {
  const h = await startHarness({ rules: 'version: 1\nclassifier: { method: llm }\nrules:\n  - name: all\n    route: { model: openai/gpt-4o }\n' });
  t.after(() => h.close());
  await chat(h, 'plain', 'hi');
  assert.equal(classifierCalls(h).length, 0);
  assert.equal(h.fake.received.length, 1);
  const local = await startHarness({ rules: rules('local') });
  t.after(() => local.close());
  assert.equal(((await chat(local, 'local', 'hi')).classify as { method: string }).method, 'local');
  assert.equal(classifierCalls(local).length, 0);
});

test('a client that leaves while its request waits for the classifier: nothing more goes upstream, 499 on the log line', { timeout: 30_000 }, async (t) => {
  const h = await startHarness({ rules: rules('llm') });
  t.after(() => h.close());
  h.fake.enqueue({ type: 'hang' });
  const asked = h.fake.nextRequest();
  const controller = new AbortController();
  const sent = fetch(`${h.url}/v1/chat/completions`, {
    method: 'POST', signal: controller.signal,
    headers: { 'content-type': 'application/json', authorization: CLIENT_KEY, 'x-request-id': 'left' },
    body: JSON.stringify({ model: 'auto', messages: [{ role: 'user', content: 'prove the four colour theorem' }] }),
  }).catch(() => undefined);
  const call = await asked;
  assert.equal((call.json as { model: string }).model, 'openai/gpt-4o-mini', 'the classifier was asked');
  controller.abort();
  await sent;
  const line = await h.logs.requestLine('left');
  assert.equal(line.status, 499);
  // The classifier call ends (its timeout aborts it); the routed request is never sent.
  assert.equal(await call.outcome, 'aborted');
  await h.logs.waitFor((r) => r.reqId === 'left' && r.msg === 'client left while the classifier was asked: nothing sent upstream');
  assert.deepEqual(h.fake.received.map((r) => (r.json as { model: string }).model), ['openai/gpt-4o-mini']);
});
