import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test, type TestContext } from 'node:test';
import { compileKeys } from '../../src/accounts/keys-file.js';
import { parseCatalog } from '../../src/catalog/catalog.js';
import { LiveCatalog } from '../../src/catalog/refresher.js';
import type { ReceivedRequest } from '../../src/dev/fake-openrouter.js';
import { parseVerdict } from '../../src/experiments/shadow.js';
import { CHAT_BODY, startHarness, testConfig, type Harness, type HarnessOptions, type LogRecord } from '../support/harness.js';
import { jsonOf, rawRequest, type RawResponse } from '../support/http.js';
import { withTimeout } from '../support/timeout.js';

const SERVER_KEY = 'sk-or-server-0123456789abcdef';
const ADMIN_KEY = 'sk-sb-admin-0123456789abcdef';
const ALICE = 'sk-sb-alice-0123456789';
const hex = (key: string): string => createHash('sha256').update(key).digest('hex');

/** The real route (its own system prompt and data policy) and a shadow to a tier with a provider preference of its own. */
function rules(shadow: string): string {
  return `version: 1
tiers:
  cand: { model: b/second, provider: { data_collection: allow, order: [OpenAI] } }
rules:
  - name: shadowed
    route:
      model: a/primary
      system_prompt: { prepend: "Routed." }
      shadow: ${shadow}
`;
}

const SHADOW = '{ tier: cand, sample: 0.5, max_concurrency: 1 }';
const JUDGED = '{ tier: cand, sample: 0.5, max_concurrency: 1, judge: { model: c/third } }';

/** Draws 0 (sampled under any sample > 0) unless a test queues others. */
function draws(...values: number[]): () => number {
  return () => values.shift() ?? 0;
}

async function harness(t: TestContext, options: HarnessOptions & { withServerKey?: boolean } = {}): Promise<Harness> {
  const h = await startHarness({
    rules: rules(SHADOW), ...options,
    env: { ...(options.withServerKey !== false && { OPENROUTER_API_KEY: SERVER_KEY }), ...options.env },
    app: { shadowRandom: draws(), ...options.app },
  });
  t.after(() => h.close());
  return h;
}

function chat(h: Harness, body: unknown = CHAT_BODY, headers: Record<string, string> = {}): Promise<RawResponse> {
  return rawRequest(h.url, { method: 'POST', path: '/v1/chat/completions', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
}

/** The upstream request with this sequence number, once it has arrived. */
async function received(h: Harness, seq: number): Promise<ReceivedRequest> {
  const wait = async (): Promise<ReceivedRequest> => {
    while (h.fake.received[seq] === undefined) await h.fake.nextRequest();
    return h.fake.received[seq]!;
  };
  return withTimeout(wait(), `upstream request ${seq}`);
}

function shadowLine(h: Harness, predicate: (r: LogRecord) => boolean = () => true): Promise<LogRecord> {
  return h.logs.waitFor((r) => r.msg === 'shadow' && predicate(r));
}

async function metricsText(h: Harness): Promise<string> {
  return (await rawRequest(h.url, { path: '/metrics' })).body.toString('utf8');
}

function metricValue(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

test('a sampled request gets a non-streaming copy of the client\'s body on the shadow\'s route after its response, inheriting its data policy', async (t) => {
  const h = await harness(t, { app: { shadowRandom: draws(0.9, 0.1) } });
  const body = { ...CHAT_BODY, stream: true, stream_options: { include_usage: true }, provider: { data_collection: 'deny', zdr: false } };
  // Not sampled (0.9 >= 0.5): no copy.
  const first = await chat(h, body, { 'x-request-id': 'not-sampled' });
  assert.equal(first.status, 200);
  await h.logs.requestLine('not-sampled');
  // Sampled (0.1 < 0.5).
  const res = await chat(h, body, { 'x-request-id': 'sampled' });
  assert.equal(res.status, 200);
  const real = await received(h, 1);
  // The real response is the upstream's bytes, untouched.
  assert.deepEqual(res.body, Buffer.concat(real.sent));
  const copy = (await received(h, 2)).json as Record<string, unknown>;
  assert.equal(copy.model, 'b/second');
  assert.equal(copy.stream, false);
  assert.equal('stream_options' in copy, false);
  // The client's messages, not the routed ones (the real route prepends its system prompt).
  assert.deepEqual(copy.messages, CHAT_BODY.messages);
  assert.match(JSON.stringify((real.json as { messages: unknown }).messages), /Routed\./);
  // The request's data policy over the shadow tier's own preference.
  assert.deepEqual(copy.provider, { data_collection: 'deny', zdr: false, order: ['OpenAI'] });
  assert.equal(h.fake.received[2]!.headers.authorization, `Bearer ${SERVER_KEY}`);
  const line = await shadowLine(h);
  assert.equal(line.reqId, 'sampled');
  assert.equal(line.rule, 'shadowed');
  assert.equal(line.shadow_model, 'b/second');
  assert.equal(line.status, '200');
  assert.equal(typeof line.duration_ms, 'number');
  assert.equal(line.prompt_tokens, h.fake.received[2]!.usage!.prompt_tokens);
  assert.equal(line.completion_tokens, h.fake.received[2]!.usage!.completion_tokens);
  assert.equal(line.cost_usd, h.fake.received[2]!.usage!.cost);
  assert.equal(h.fake.received.length, 3, 'one copy, for the sampled request only');
  const text = await metricsText(h);
  assert.equal(metricValue(text, 'signalbox_shadow_requests_total{rule="shadowed",model="b/second",status="200"}'), 1);
  assert.equal(metricValue(text, 'signalbox_shadow_duration_seconds_count{rule="shadowed",model="b/second"}'), 1);
  assert.equal(metricValue(text, 'signalbox_shadow_tokens_total{rule="shadowed",model="b/second",type="completion"}'), h.fake.received[2]!.usage!.completion_tokens);
  assert.equal(metricValue(text, 'signalbox_shadow_cost_usd_total{rule="shadowed",model="b/second"}'), h.fake.received[2]!.usage!.cost);
});

test('the real response is neither delayed nor changed while its shadow is held, and a copy over max_concurrency is dropped and counted', async (t) => {
  const h = await harness(t);
  h.fake.enqueue({ type: 'latency', ms: 0 }, { type: 'manual' });
  const res = await chat(h, CHAT_BODY, { 'x-request-id': 'held' });
  assert.equal(res.status, 200);
  assert.deepEqual(res.body, Buffer.concat(h.fake.received[0]!.sent));
  // The copy is held upstream; another request completes meanwhile, and its copy finds no free slot.
  const held = await withTimeout(h.fake.nextManual(), 'the held shadow');
  const second = await chat(h, CHAT_BODY, { 'x-request-id': 'meanwhile' });
  assert.equal(second.status, 200);
  await h.logs.requestLine('meanwhile');
  assert.equal(metricValue(await metricsText(h), 'signalbox_shadow_dropped_total{rule="shadowed",reason="concurrency"}'), 1);
  assert.equal(h.fake.received.length, 3, 'the second request made no copy');
  // The held copy ends; its slot is free again: the next sampled request is copied.
  held.writeHead(500, { 'content-type': 'application/json' });
  await held.end('{"error":{"code":500,"message":"boom"}}');
  assert.equal((await shadowLine(h, (r) => r.reqId === 'held')).status, '500');
  await chat(h, CHAT_BODY, { 'x-request-id': 'after' });
  assert.equal((await shadowLine(h, (r) => r.reqId === 'after')).status, '200');
  const text = await metricsText(h);
  assert.equal(metricValue(text, 'signalbox_shadow_requests_total{rule="shadowed",model="b/second",status="500"}'), 1);
  assert.equal(metricValue(text, 'signalbox_shadow_dropped_total{rule="shadowed",reason="error"}'), 1);
});

test('without a server key no copy is made: the client\'s own key never pays for a shadow', async (t) => {
  const h = await harness(t, { withServerKey: false });
  const res = await chat(h, CHAT_BODY, { authorization: 'Bearer sk-or-client-own-key', 'x-request-id': 'own-key' });
  assert.equal(res.status, 200);
  await h.logs.requestLine('own-key');
  assert.equal(metricValue(await metricsText(h), 'signalbox_shadow_dropped_total{rule="shadowed",reason="no_server_key"}'), 1);
  await chat(h, CHAT_BODY, { authorization: 'Bearer sk-or-client-own-key', 'x-request-id': 'own-key-2' });
  await h.logs.requestLine('own-key-2');
  assert.equal(h.fake.received.length, 2, 'only the real requests went upstream');
});

test('a shadow model with no endpoint for the request\'s data policy (OpenRouter\'s 404) is counted as skipped for data_policy', async (t) => {
  const h = await harness(t);
  h.fake.enqueue({ type: 'latency', ms: 0 }, { type: 'status', status: 404, body: { error: { code: 404, message: 'No endpoints found matching your data policy' } } });
  await chat(h, { ...CHAT_BODY, provider: { data_collection: 'deny' } }, { 'x-request-id': 'policy' });
  const line = await shadowLine(h);
  assert.equal(line.status, '404');
  assert.deepEqual((h.fake.received[1]!.json as { provider: unknown }).provider, { data_collection: 'deny', order: ['OpenAI'] });
  assert.equal(metricValue(await metricsText(h), 'signalbox_shadow_dropped_total{rule="shadowed",reason="data_policy"}'), 1);
});

test('under zdr: true, a shadow model the catalog does not list is skipped up front; one it lists is sent', async (t) => {
  const catalog = new LiveCatalog();
  // The fake serves invented/* without listing it in its catalog.
  const h = await harness(t, { catalog, rules: `version: 1
rules:
  - name: unlisted
    when: { header.x-case: unlisted }
    route: { model: a/primary, shadow: { model: invented/shadow, sample: 1 } }
  - name: listed
    route: { model: a/primary, shadow: { model: b/second, sample: 1 } }
` });
  catalog.replace(parseCatalog(await (await fetch(`${h.fake.baseUrl}/models`)).json()), Date.now());
  const zdr = { ...CHAT_BODY, provider: { zdr: true } };
  const before = h.fake.received.length;
  await chat(h, zdr, { 'x-case': 'unlisted', 'x-request-id': 'unlisted' });
  await h.logs.requestLine('unlisted');
  assert.equal(metricValue(await metricsText(h), 'signalbox_shadow_dropped_total{rule="unlisted",reason="data_policy"}'), 1);
  await chat(h, zdr, { 'x-request-id': 'listed' });
  assert.equal((await shadowLine(h, (r) => r.reqId === 'listed')).status, '200');
  assert.deepEqual((h.fake.received[before + 2]!.json as { model: string; provider: unknown }).provider, { zdr: true });
  assert.equal(h.fake.received.length, before + 3, 'no copy of the unlisted model was sent');
});

test('a judge compares the real answer (streamed or not) with the shadow\'s: agree, disagree and unparseable verdicts, their score and cost', async (t) => {
  const h = await harness(t, { rules: rules(JUDGED), fake: { content: 'The real answer.' } });
  h.fake.cannedContent.set('b/second', 'The shadow answer.');
  const cases = [
    { id: 'agree', verdict: '{"agree": true, "score": 0.9}', stream: false },
    { id: 'disagree', verdict: '{"agree": false, "score": 0.2}', stream: true },
    { id: 'unparseable', verdict: 'They agree.', stream: false },
  ];
  for (const c of cases) {
    h.fake.cannedContent.set('c/third', c.verdict);
    const seq = h.fake.received.length;
    const res = await chat(h, { ...CHAT_BODY, stream: c.stream }, { 'x-request-id': c.id });
    assert.equal(res.status, 200);
    const line = await shadowLine(h, (r) => r.reqId === c.id);
    const judgeCall = (await received(h, seq + 2)).json as { model: string; temperature: number; stream: boolean; messages: { content: string }[] };
    assert.equal(judgeCall.model, 'c/third');
    assert.equal(judgeCall.temperature, 0);
    assert.equal(judgeCall.stream, false);
    // Both answers, the real one as the client got it (streamed word by word, or whole).
    assert.deepEqual(JSON.parse(judgeCall.messages[1]!.content), { answer_a: 'The real answer.', answer_b: 'The shadow answer.' });
    const judgeCost = h.fake.received[seq + 2]!.usage!.cost;
    assert.equal(line.judge_cost_usd, judgeCost);
    if (c.id === 'unparseable') {
      assert.equal(line.judge_agreement, undefined);
      assert.equal(line.judge_error, 'unparseable');
    } else {
      assert.equal(line.judge_agreement, c.id === 'agree');
      assert.equal(line.judge_score, c.id === 'agree' ? 0.9 : 0.2);
    }
  }
  const text = await metricsText(h);
  for (const agreement of ['agree', 'disagree', 'unparseable']) {
    assert.equal(metricValue(text, `signalbox_shadow_judgements_total{rule="shadowed",model="c/third",agreement="${agreement}"}`), 1, agreement);
  }
  assert.equal(metricValue(text, 'signalbox_shadow_judge_score_count{rule="shadowed"}'), 2);
  assert.ok(metricValue(text, 'signalbox_shadow_judge_cost_usd_total{rule="shadowed"}')! > 0);
});

test('a verdict is exactly {"agree": boolean, "score": 0..1}', () => {
  assert.deepEqual(parseVerdict('{"agree": true, "score": 1}'), { agree: true, score: 1 });
  for (const bad of ['', 'yes', '```json\n{"agree": true, "score": 1}\n```', '{"agree": "true", "score": 1}', '{"agree": true, "score": 1.5}',
    '{"agree": true, "score": -0.1}', '{"agree": true}', '{"agree": true, "score": 0.5, "why": "x"}', '[true, 0.5]', 'null']) {
    assert.equal(parseVerdict(bad), undefined, bad);
  }
});

test('a shadow\'s and its judge\'s spend go to SHADOW_ACCOUNT, never to the caller\'s budget', async (t) => {
  const keys = `version: 1\nkeys:\n  - name: alice\n    sha256: ${hex(ALICE)}\n    daily_usd: 5\n`;
  const h = await harness(t, {
    rules: rules(JUDGED), keys: { current: compileKeys(keys, 'keys.yaml', {}) },
    env: { ADMIN_KEY, SHADOW_ACCOUNT: 'experiments' },
  });
  h.fake.cannedContent.set('c/third', '{"agree": true, "score": 1}');
  const res = await chat(h, CHAT_BODY, { authorization: `Bearer ${ALICE}`, 'x-request-id': 'paid' });
  assert.equal(res.status, 200);
  await shadowLine(h, (r) => r.reqId === 'paid');
  const [realCost, shadowCost, judgeCost] = [0, 1, 2].map((i) => h.fake.received[i]!.usage!.cost!) as [number, number, number];
  const spend = jsonOf<{ rows: { key: string; spent_usd: number }[] }>(await rawRequest(h.url, { path: '/admin/spend?by=key', headers: { authorization: `Bearer ${ADMIN_KEY}` } }));
  const spent = Object.fromEntries(spend.rows.map((row) => [row.key, row.spent_usd]));
  assert.equal(spent.alice, realCost);
  assert.ok(Math.abs(spent.experiments! - (shadowCost + judgeCost)) < 1e-9, `experiments spent ${spent.experiments}`);
  const text = await metricsText(h);
  assert.equal(metricValue(text, 'signalbox_spend_usd_total{key="alice"}'), realCost);
});

test('a shadow past SHADOW_TIMEOUT_MS is aborted and counted as a timeout', async (t) => {
  const h = await harness(t, { env: { SHADOW_TIMEOUT_MS: '50' } });
  h.fake.enqueue({ type: 'latency', ms: 0 }, { type: 'hang' });
  await chat(h, CHAT_BODY, { 'x-request-id': 'slow' });
  assert.equal((await shadowLine(h, (r) => r.reqId === 'slow')).status, 'timeout');
  assert.equal(await withTimeout(h.fake.received[1]!.outcome, 'the shadow\'s abort'), 'aborted');
  const text = await metricsText(h);
  assert.equal(metricValue(text, 'signalbox_shadow_requests_total{rule="shadowed",model="b/second",status="timeout"}'), 1);
  assert.equal(metricValue(text, 'signalbox_shadow_dropped_total{rule="shadowed",reason="timeout"}'), 1);
});

test('closing the app aborts a shadow in flight without waiting for it', async (t) => {
  const h = await harness(t);
  h.fake.enqueue({ type: 'latency', ms: 0 }, { type: 'manual' });
  await chat(h, CHAT_BODY, { 'x-request-id': 'closing' });
  const held = await withTimeout(h.fake.nextManual(), 'the held shadow');
  await withTimeout(h.app.close(), 'the app\'s close');
  assert.equal(await withTimeout(held.request.outcome, 'the shadow\'s abort'), 'aborted');
  assert.equal((await shadowLine(h, (r) => r.reqId === 'closing')).status, 'shutdown');
});

test('SHADOW_ACCOUNT must be a spend account name: it becomes a counter key and a metric label', () => {
  assert.equal(testConfig({ SHADOW_ACCOUNT: 'experiments.v2' }).shadow.account, 'experiments.v2');
  for (const bad of ['a:b', 'x'.repeat(65), 'sp key']) assert.throws(() => testConfig({ SHADOW_ACCOUNT: bad }), /must be 1 to 64/, bad);
});
