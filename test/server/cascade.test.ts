import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { test, type TestContext } from 'node:test';
import OpenAI from 'openai';
import type { Caller } from '../../src/accounts/caller.js';
import { KeyRing, sha256 } from '../../src/accounts/keys-file.js';
import { parseCatalog } from '../../src/catalog/catalog.js';
import { LiveCatalog } from '../../src/catalog/refresher.js';
import { FAKE_ANSWERS, type ReceivedRequest } from '../../src/dev/fake-openrouter.js';
import { startHarness, type Harness } from '../support/harness.js';
import { withTimeout } from '../support/timeout.js';

/**
 * Cascades end to end (issue 17, item 3), against the fake told what each tier's model answers
 * (`x-fake-answer`): escalation on each check, its bound, the streaming window (held, checked,
 * released byte for byte, or abandoned before the client saw a byte), the header, the metric,
 * the log line and the caller's spend of every attempt.
 */

const BUDGET = 'openai/gpt-4o-mini';
const STANDARD = 'openai/gpt-4o';
const PREMIUM = 'anthropic/claude-3.5-sonnet';

function rules(options: { maxEscalations?: number; chars?: number; ms?: number } = {}): string {
  return `
version: 1
tiers:
  budget: { model: ${BUDGET} }
  standard: { model: ${STANDARD} }
  premium: { model: ${PREMIUM} }
rules:
  - name: cheap-first
    when: { model: auto }
    route:
      cascade:
        tiers: [budget, standard, premium]
        checks: { min_length: 20, refusal_phrases: ["I'm sorry", "I can't"], uncertainty_phrases: ["I'm not sure"], json: auto }
        ${options.maxEscalations === undefined ? '' : `max_escalations: ${options.maxEscalations}`}
        stream_hold: { chars: ${options.chars ?? 20}, ms: ${options.ms ?? 1500} }
`;
}

function caller(name: string, over: Partial<Caller> = {}): Caller {
  return { name, tier: undefined, team: undefined, meta: {}, models: undefined, limits: {}, budgets: {}, users: undefined, ...over };
}

async function harness(t: TestContext, options: { rules?: string; keys?: boolean } = {}): Promise<Harness> {
  const catalog = new LiveCatalog();
  const callers = [caller('alice', { budgets: { dailyUsd: 10 } })];
  const h = await startHarness({
    env: { OPENROUTER_API_KEY: 'sk-or-server-key' }, rules: options.rules ?? rules(), catalog,
    ...(options.keys === true && { keys: { current: new KeyRing('test', callers.map((c) => ({ digest: sha256(c.name), caller: c }))) } }),
  });
  t.after(() => h.close());
  catalog.replace(parseCatalog(await (await fetch(`${h.fake.baseUrl}/models`)).json()), Date.now());
  return h;
}

const MESSAGES = [{ role: 'user', content: 'What is the capital of France?' }];

function chat(h: Harness, answers: Record<string, string>, body: Record<string, unknown> = {}, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${h.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: 'Bearer sk-or-test', 'x-fake-answer': JSON.stringify(answers), ...headers },
    body: JSON.stringify({ model: 'auto', messages: MESSAGES, ...body }),
  });
}

/** The chat completions the fake received (the harness's GET /models is not one). */
function chats(h: Harness): ReceivedRequest[] {
  return h.fake.received.filter((r) => r.url.endsWith('/chat/completions'));
}

function upstreamModels(h: Harness): string[] {
  return chats(h).map((r) => (r.json as { model: string }).model);
}

async function content(res: Response): Promise<string> {
  return ((await res.json()) as { choices: { message: { content: string } }[] }).choices[0]!.message.content;
}

/** The content of an SSE body's chunks, joined. */
function streamedContent(text: string): string {
  return text.split('\n').filter((l) => l.startsWith('data: {'))
    .map((l) => (JSON.parse(l.slice(6)) as { choices?: { delta?: { content?: string } }[] }).choices?.[0]?.delta?.content ?? '').join('');
}

async function scrape(h: Harness): Promise<string> {
  return (await fetch(`${h.url}/metrics`)).text();
}

function metric(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

const DEFAULT_ANSWER = 'Hello from the fake OpenRouter. Streams arrive word by word.';

for (const reason of ['short', 'refusal', 'uncertain', 'invalid_json'] as const) {
  test(`non-streaming: a first tier answering ${reason} escalates to the next tier, whose answer the client gets`, async (t) => {
    const h = await harness(t);
    const json = reason === 'invalid_json';
    const res = await chat(h, { [BUDGET]: reason, ...(json && { [STANDARD]: 'json' }) }, json ? { response_format: { type: 'json_object' } } : {});
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('x-signalbox-escalations'), '1');
    assert.equal(res.headers.get('x-signalbox-model'), STANDARD);
    assert.equal(await content(res), json ? FAKE_ANSWERS.json : DEFAULT_ANSWER);
    assert.deepEqual(upstreamModels(h), [BUDGET, STANDARD]);
    const line = await h.logs.waitFor((r) => r.msg === 'request' && r.rule === 'cheap-first');
    assert.deepEqual(line.escalations, [{ from: 'budget', to: 'standard', reason }]);
    const metrics = await scrape(h);
    assert.equal(metric(metrics, `signalbox_escalations_total{from="budget",to="standard",reason="${reason}"}`), 1);
    // Every tier's attempt is counted, the discarded one's too.
    assert.equal(metric(metrics, `signalbox_upstream_requests_total{model="${BUDGET}",status="200"}`), 1);
    assert.equal(metric(metrics, `signalbox_upstream_requests_total{model="${STANDARD}",status="200"}`), 1);
  });
}

test('non-streaming: an answer that passes is given at once, with x-signalbox-escalations: 0; other rules carry no header', async (t) => {
  const h = await harness(t);
  const res = await chat(h, {});
  assert.equal(res.headers.get('x-signalbox-escalations'), '0');
  assert.equal(await content(res), DEFAULT_ANSWER);
  assert.deepEqual(upstreamModels(h), [BUDGET]);
  const other = await chat(h, {}, { model: BUDGET });
  assert.equal(other.headers.get('x-signalbox-escalations'), null);
  await other.arrayBuffer();
});

test('non-streaming: a tier that fails outright (5xx after its retries) escalates with reason error', async (t) => {
  const h = await harness(t);
  h.fake.enqueue({ type: 'status', status: 500 });
  const res = await chat(h, {});
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('x-signalbox-escalations'), '1');
  assert.equal(await content(res), DEFAULT_ANSWER);
  assert.equal(metric(await scrape(h), 'signalbox_escalations_total{from="budget",to="standard",reason="error"}'), 1);
});

test('max_escalations bounds the tiers tried: the last one allowed answers, even failing', async (t) => {
  const h = await harness(t, { rules: rules({ maxEscalations: 1 }) });
  const res = await chat(h, { [BUDGET]: 'refusal', [STANDARD]: 'refusal' });
  assert.equal(res.headers.get('x-signalbox-escalations'), '1');
  assert.equal(await content(res), FAKE_ANSWERS.refusal);
  assert.deepEqual(upstreamModels(h), [BUDGET, STANDARD]);
});

test('all tiers failing: the client gets the last tier\'s answer', async (t) => {
  const h = await harness(t);
  const res = await chat(h, { [BUDGET]: 'refusal', [STANDARD]: 'short', [PREMIUM]: 'uncertain' });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('x-signalbox-escalations'), '2');
  assert.equal(await content(res), FAKE_ANSWERS.uncertain);
  assert.deepEqual(upstreamModels(h), [BUDGET, STANDARD, PREMIUM]);
});

test('streaming: a refusal in the window escalates before any byte of it reaches the client', async (t) => {
  const h = await harness(t);
  // Slow, so that the abort lands while the first tier still streams.
  h.fake.enqueue({ type: 'slow-stream', ms: 20 });
  const res = await chat(h, { [BUDGET]: 'refusal' }, { stream: true });
  assert.equal(res.headers.get('x-signalbox-escalations'), '1');
  assert.equal(res.headers.get('x-signalbox-model'), STANDARD);
  const text = await res.text();
  assert.equal(streamedContent(text), DEFAULT_ANSWER);
  assert.ok(!text.includes(BUDGET), 'nothing of the first tier\'s stream was written');
  // The abandoned stream was cut, not read to its end.
  assert.equal(await withTimeout(chats(h)[0]!.outcome, 'the first tier\'s call to end'), 'aborted');
});

test('streaming: a passing window is released and the rest streamed byte for byte', async (t) => {
  const h = await harness(t);
  const res = await chat(h, {}, { stream: true });
  assert.equal(res.headers.get('x-signalbox-escalations'), '0');
  const body = Buffer.from(await res.arrayBuffer());
  assert.deepEqual(body, Buffer.concat(chats(h)[0]!.sent));
  assert.deepEqual(upstreamModels(h), [BUDGET]);
});

test('streaming: a stream that ends inside the window is checked whole (short fails, a full answer passes)', async (t) => {
  const h = await harness(t, { rules: rules({ chars: 8000 }) });
  const short = await chat(h, { [BUDGET]: 'short' }, { stream: true });
  assert.equal(short.headers.get('x-signalbox-escalations'), '1');
  assert.equal(streamedContent(await short.text()), DEFAULT_ANSWER);
  const whole = await chat(h, {}, { stream: true });
  assert.equal(whole.headers.get('x-signalbox-escalations'), '0');
  assert.deepEqual(Buffer.from(await whole.arrayBuffer()), Buffer.concat(chats(h).at(-1)!.sent));
});

test('streaming, JSON auto: a first character that cannot start JSON escalates; JSON passes', async (t) => {
  const h = await harness(t, { rules: rules({ chars: 8000 }) });
  // The request asked for JSON: "Sure! ..." fails as soon as it arrives, long before the window is full.
  h.fake.enqueue({ type: 'slow-stream', ms: 20 });
  const res = await chat(h, { [BUDGET]: 'invalid_json', [STANDARD]: 'json' }, { stream: true, response_format: { type: 'json_object' } });
  assert.equal(res.headers.get('x-signalbox-escalations'), '1');
  assert.equal(streamedContent(await res.text()), FAKE_ANSWERS.json);
  assert.equal(await withTimeout(chats(h)[0]!.outcome, 'the first tier\'s call to end'), 'aborted');
  // Without response_format, the same text is no JSON failure.
  const plain = await chat(h, { [BUDGET]: 'invalid_json' }, { stream: true });
  assert.equal(plain.headers.get('x-signalbox-escalations'), '0');
  await plain.arrayBuffer();
});

test('streaming: stream_hold.ms releases a passing window before the stream ends (slow stream)', async (t) => {
  // 8000 characters never arrive: the 50 ms timer from the first token decides; the stream has 200 ms between events.
  const h = await harness(t, { rules: rules({ chars: 8000, ms: 50 }) });
  h.fake.enqueue({ type: 'slow-stream', ms: 200 });
  const res = await chat(h, {}, { stream: true });
  assert.equal(res.headers.get('x-signalbox-escalations'), '0');
  let upstreamEnded = false;
  void chats(h)[0]!.outcome.then(() => { upstreamEnded = true; });
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let seen = '';
  while (!seen.includes('"content":"Hello')) {
    const { value, done } = await withTimeout(reader.read(), 'the released window');
    assert.equal(done, false);
    seen += decoder.decode(value, { stream: true });
  }
  assert.equal(upstreamEnded, false, 'the window was released while the upstream still streamed');
  while (!(await withTimeout(reader.read(), 'the rest of the stream')).done);
});

test('every attempt counts toward the caller: the discarded answer\'s cost is in the key\'s spend and in the cost metric', async (t) => {
  const h = await harness(t, { keys: true });
  const res = await chat(h, { [BUDGET]: 'refusal' }, {}, { authorization: 'Bearer alice' });
  assert.equal(res.status, 200);
  await res.arrayBuffer();
  const costs = chats(h).map((r) => r.usage!.cost!);
  assert.equal(costs.length, 2);
  const metrics = await scrape(h);
  assert.ok(Math.abs(metric(metrics, 'signalbox_spend_usd_total{key="alice"}')! - (costs[0]! + costs[1]!)) < 1e-9);
  assert.ok(Math.abs(metric(metrics, `signalbox_cost_usd_total{rule="cheap-first",model="${BUDGET}",source="escalation",variant="none"}`)! - costs[0]!) < 1e-9);
  const line = await h.logs.waitFor((r) => r.msg === 'request' && r.rule === 'cheap-first');
  assert.ok(Math.abs((line.escalation_cost_usd as number) - costs[0]!) < 1e-12);
});

test('the client leaving mid-hold aborts the upstream call, and no next tier is asked', async (t) => {
  const h = await harness(t, { rules: rules({ chars: 8000, ms: 30_000 }) });
  h.fake.enqueue({ type: 'manual' });
  const req = httpRequest(`${h.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer sk-or-test' } });
  req.on('error', () => {});
  let answered = false;
  req.on('response', () => { answered = true; });
  req.end(JSON.stringify({ model: 'auto', messages: MESSAGES, stream: true }));
  const manual = await withTimeout(h.fake.nextManual(), 'the first tier upstream');
  manual.writeHead(200, { 'content-type': 'text/event-stream' });
  await manual.write(`data: ${JSON.stringify({ id: 'gen-1', model: BUDGET, choices: [{ index: 0, delta: { role: 'assistant', content: 'Paris ' } }] })}\n\n`);
  req.destroy();
  assert.equal(await withTimeout(manual.request.outcome, 'the held upstream call to be aborted'), 'aborted');
  const line = await h.logs.waitFor((r) => r.msg === 'request' && r.rule === 'cheap-first');
  assert.equal(line.status, 499);
  assert.equal(answered, false, 'nothing was written to the client while the window was held');
  assert.deepEqual(upstreamModels(h), [BUDGET]);
});

test('the official openai SDK streams through a cascade that escalated', async (t) => {
  const h = await harness(t);
  const client = new OpenAI({ apiKey: 'sk-or-test', baseURL: `${h.url}/v1`, defaultHeaders: { 'x-fake-answer': JSON.stringify({ [BUDGET]: 'refusal' }) } });
  const stream = await client.chat.completions.create({ model: 'auto', messages: [{ role: 'user', content: 'hi' }], stream: true });
  let text = '';
  for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
  assert.equal(text, DEFAULT_ANSWER);
  assert.deepEqual(upstreamModels(h), [BUDGET, STANDARD]);
});
