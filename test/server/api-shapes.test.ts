import assert from 'node:assert/strict';
import type { OutgoingHttpHeaders } from 'node:http';
import { test, type TestContext } from 'node:test';
import type { Caller } from '../../src/accounts/caller.js';
import { KeyRing, sha256 } from '../../src/accounts/keys-file.js';
import { parseCatalog } from '../../src/catalog/catalog.js';
import { LiveCatalog } from '../../src/catalog/refresher.js';
import type { KeysSource } from '../../src/server/client-auth.js';
import { startHarness, type Harness, type HarnessOptions, type LogRecord } from '../support/harness.js';
import { jsonOf, rawRequest, type RawResponse } from '../support/http.js';

/**
 * Issue 18: POST /v1/responses and /v1/messages are routed like chat: the rules rewrite them in
 * their own fields, and the tap meters them in their own events (usage, cost, first token,
 * terminal events, cuts), with the proxy's own end-of-stream error in each shape's form.
 */

const RULES = `version: 1
rules:
  - name: agent-background
    when: { request.api: { in: [responses, messages] }, request.text: { contains: title } }
    route: { model: openai/gpt-4o-mini, max_tokens: 32 }
  - name: with-fallback
    when: { request.text: { contains: fallback } }
    route: { model: anthropic/claude-3.5-haiku, fallbacks: [openai/gpt-4o-mini] }
`;

const MESSAGES = { model: 'anthropic/claude-3.5-sonnet', max_tokens: 1000, messages: [{ role: 'user', content: [{ type: 'text', text: 'write a title for this chat' }] }] };
const RESPONSES = { model: 'anthropic/claude-3.5-sonnet', max_output_tokens: 1000, input: 'write a title for this chat' };

async function harness(t: TestContext, options: Pick<HarnessOptions, 'keys' | 'env' | 'rules' | 'app' | 'fake'> = {}): Promise<Harness> {
  const catalog = new LiveCatalog();
  const h = await startHarness({ rules: RULES, ...options, env: { OPENROUTER_API_KEY: 'sk-or-server-key', ...options.env }, catalog });
  t.after(() => h.close());
  catalog.replace(parseCatalog(await (await fetch(`${h.fake.baseUrl}/models`)).json()), Date.now());
  return h;
}

function post(h: Harness, path: string, body: object, headers: OutgoingHttpHeaders = {}): Promise<RawResponse> {
  return rawRequest(h.url, { method: 'POST', path, headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
}

function requestLine(h: Harness, res: RawResponse): Promise<LogRecord> {
  const id = res.headers['x-request-id'];
  return h.logs.waitFor((r) => r.msg === 'request' && r.reqId === id);
}

/** The SSE events of a body, as [event name, parsed data]. */
function events(body: Buffer): [string | undefined, Record<string, unknown>][] {
  return body.toString('utf8').split(/\n\n/).filter((block) => /^data: /m.test(block)).map((block) => {
    const name = /^event: (.*)$/m.exec(block)?.[1];
    return [name, JSON.parse(/^data: (.*)$/m.exec(block)![1]!) as Record<string, unknown>];
  });
}

test('a Responses request is routed: model and cap rewritten in its own fields, sent to /responses, metered', async (t) => {
  const h = await harness(t);
  const res = await post(h, '/v1/responses', RESPONSES);
  assert.equal(res.status, 200);
  assert.equal(res.headers['x-signalbox-rule'], 'agent-background');
  const sent = h.fake.received.at(-1)!;
  assert.equal(sent.url, '/api/v1/responses');
  const upstream = JSON.parse(sent.body.toString()) as Record<string, unknown>;
  assert.deepEqual([upstream.model, upstream.max_output_tokens, upstream.models, upstream.max_tokens], ['openai/gpt-4o-mini', 32, undefined, undefined]);
  const answer = jsonOf<{ usage: { input_tokens: number; output_tokens: number } }>(res);
  const line = await requestLine(h, res);
  assert.equal(line.endpoint, 'responses');
  assert.equal(line.routed_model, 'openai/gpt-4o-mini');
  assert.equal(line.served_model, 'openai/gpt-4o-mini');
  assert.deepEqual([line.prompt_tokens, line.completion_tokens], [answer.usage.input_tokens, answer.usage.output_tokens]);
  assert.equal(line.cost_source, 'upstream');
  assert.ok(typeof line.cost_usd === 'number' && line.cost_usd > 0);
  const metrics = await (await fetch(`${h.url}/metrics`)).text();
  assert.match(metrics, /signalbox_requests_total\{[^}]*endpoint="responses"[^}]*rule="agent-background"[^}]*\} 1/);
  assert.match(metrics, /signalbox_cost_usd_total\{[^}]*\} [0-9.e-]+/);
});

test('a streamed Messages request: usage folded from message_start and message_delta, cache tokens, time to first token, finish reason', async (t) => {
  const h = await harness(t);
  const res = await post(h, '/v1/messages', { ...MESSAGES, stream: true }, { 'x-fake-usage': JSON.stringify({ cached_tokens: 3, cache_write_tokens: 2 }) });
  assert.equal(res.status, 200);
  const upstream = JSON.parse(h.fake.received.at(-1)!.body.toString()) as Record<string, unknown>;
  assert.equal(h.fake.received.at(-1)!.url, '/api/v1/messages');
  assert.deepEqual([upstream.model, upstream.max_tokens], ['openai/gpt-4o-mini', 32]);
  const seen = events(res.body);
  assert.equal(seen.at(-1)![0], 'message_stop');
  const start = seen.find(([name]) => name === 'message_start')![1] as { message: { usage: Record<string, number> } };
  const delta = seen.filter(([name]) => name === 'message_delta').at(-1)![1] as { usage: Record<string, number>; delta: { stop_reason: string } };
  const line = await requestLine(h, res);
  assert.equal(line.endpoint, 'messages');
  assert.equal(line.stream, true);
  // Anthropic's input_tokens leaves the cache out; the record's prompt count has it (as chat's does).
  const u = start.message.usage;
  assert.equal(line.prompt_tokens, u.input_tokens! + u.cache_read_input_tokens! + u.cache_creation_input_tokens!);
  assert.deepEqual([line.cached_tokens, line.cache_write_tokens], [3, 2]);
  assert.equal(line.completion_tokens, delta.usage.output_tokens);
  assert.equal(line.finish_reason, delta.delta.stop_reason);
  assert.ok(typeof line.ttft_ms === 'number', 'the first content_block_delta is the first token');
  assert.equal(line.stream_error, undefined);
  assert.ok(typeof line.cost_usd === 'number' && line.cost_usd > 0);
});

test('a stream the upstream cuts ends with the shape\'s own error event: Messages `error`, Responses `response.failed`', async (t) => {
  const h = await harness(t);
  const cut = { 'x-fake-fault': JSON.stringify({ type: 'reset-mid-stream', afterEvents: 3 }) };
  const messages = await post(h, '/v1/messages', { ...MESSAGES, stream: true }, cut);
  const lastMessagesEvent = events(messages.body).at(-1)!;
  assert.equal(lastMessagesEvent[0], 'error');
  const error = lastMessagesEvent[1] as { type: string; error: { type: string; message: string } };
  assert.equal(error.type, 'error');
  assert.equal(error.error.type, 'api_error');
  assert.match(error.error.message, /^upstream_/);
  assert.equal((await requestLine(h, messages)).stream_error, 'upstream_cut');

  const responses = await post(h, '/v1/responses', { ...RESPONSES, stream: true }, cut);
  const [name, failed] = events(responses.body).at(-1)! as [string, { response: { id: string; status: string; model: string; error: { code: string } } }];
  assert.equal(name, 'response.failed');
  assert.equal(failed.response.status, 'failed');
  assert.match(failed.response.error.code, /^upstream_/);
  // The id and model the stream had already given.
  const created = events(responses.body).find(([n]) => n === 'response.created')![1] as { response: { id: string } };
  assert.equal(failed.response.id, created.response.id);
  assert.equal(failed.response.model, 'openai/gpt-4o-mini');
  const line = await requestLine(h, responses);
  assert.equal(line.endpoint, 'responses');
  assert.equal(line.stream_error, 'upstream_cut');
});

test('a stream that ends cleanly without its terminal event is recorded as cut; an in-band error event as in-band', async (t) => {
  const h = await harness(t);
  const partial = 'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"openai/gpt-4o-mini","content":[],"usage":{"input_tokens":5,"output_tokens":1}}}\n\n'
    + 'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}\n\n';
  const res = await post(h, '/v1/messages', { ...MESSAGES, stream: true }, { 'x-fake-fault': JSON.stringify({ type: 'garbage', contentType: 'text/event-stream', body: partial }) });
  assert.equal(res.body.toString(), partial, 'relayed byte for byte');
  const line = await requestLine(h, res);
  assert.equal(line.stream_error, 'upstream_cut');
  assert.equal(line.prompt_tokens, 5);

  const inband = await post(h, '/v1/messages', { ...MESSAGES, stream: true }, { 'x-fake-fault': JSON.stringify({ type: 'error-mid-stream', afterEvents: 2, code: 'overloaded_error' }) });
  const inbandLine = await requestLine(h, inband);
  assert.equal(inbandLine.stream_error, 'upstream_inband');
  assert.equal(inbandLine.upstream_error, 'overloaded_error');
});

test('fallbacks in a shape without `models` are the proxy\'s retries: one model per attempt', async (t) => {
  const h = await harness(t, { env: { RETRY_MAX_ATTEMPTS: '2' } });
  h.fake.enqueue({ type: 'status', status: 503 });
  const res = await post(h, '/v1/messages', { ...MESSAGES, messages: [{ role: 'user', content: 'fallback please' }] });
  assert.equal(res.status, 200);
  const [first, second] = h.fake.received.slice(-2).map((r) => JSON.parse(r.body.toString()) as Record<string, unknown>);
  assert.deepEqual([first!.model, first!.models], ['anthropic/claude-3.5-haiku', undefined]);
  assert.deepEqual([second!.model, second!.models], ['openai/gpt-4o-mini', undefined]);
  assert.equal(res.headers['x-signalbox-model'], 'openai/gpt-4o-mini');
});

function keysOf(callers: readonly Caller[]): KeysSource {
  return { current: new KeyRing('test', callers.map((caller) => ({ digest: sha256(caller.name), caller }))) };
}

function caller(name: string, over: Partial<Caller> = {}): Caller {
  return { name, tier: undefined, team: undefined, meta: {}, models: undefined, limits: {}, budgets: {}, users: undefined, ...over };
}

test('keys with limits and allow-lists: the other shapes are metered and checked, refused in their own envelope', async (t) => {
  const h = await harness(t, {
    keys: keysOf([caller('limited', { limits: { rpm: 1 } }), caller('listed', { models: ['openai/gpt-4o-mini', 'anthropic/claude-3.5-sonnet'] })]),
  });
  const first = await post(h, '/v1/messages', MESSAGES, { 'x-api-key': 'limited' });
  assert.equal(first.status, 200, 'no longer refused as unmetered pass-through');
  const second = await post(h, '/v1/messages', MESSAGES, { 'x-api-key': 'limited' });
  assert.equal(second.status, 429);
  assert.deepEqual(jsonOf<{ type: string; error: { type: string } }>(second).error.type, 'rate_limit_error');
  const third = await post(h, '/v1/responses', RESPONSES, { authorization: 'Bearer limited' });
  assert.equal(third.status, 429);
  assert.equal(jsonOf<{ error: { code: string } }>(third).error.code, 'rate_limit_exceeded');
  // The fallback the proxy would retry on is off the allow-list: refused before anything is sent.
  const sentBefore = h.fake.received.length;
  const refused = await post(h, '/v1/messages', { ...MESSAGES, messages: [{ role: 'user', content: 'fallback' }] }, { 'x-api-key': 'listed' });
  assert.equal(refused.status, 403);
  assert.equal(jsonOf<{ error: { type: string } }>(refused).error.type, 'permission_error');
  assert.equal(h.fake.received.length, sentBefore);
});

test('a body no rule changed goes upstream as the client\'s own bytes, in every shape', async (t) => {
  const h = await harness(t);
  // Spacing, key order and a number JSON.stringify would rewrite: kept because nothing is re-serialised.
  const messages = '{ "max_tokens": 50,\n  "model": "anthropic/claude-3.5-sonnet", "temperature": 1.0, "messages": [{"role":"user","content":"hello"}] }';
  const responses = '{"input" : "hello", "model":"anthropic/claude-3.5-sonnet", "top_p": 1.00}';
  for (const [path, body] of [['/v1/messages', messages], ['/v1/responses', responses]] as const) {
    const res = await rawRequest(h.url, { method: 'POST', path, headers: { 'content-type': 'application/json' }, body });
    assert.equal(res.status, 200, path);
    assert.equal(res.headers['x-signalbox-rule'], 'none');
    assert.equal(h.fake.received.at(-1)!.body.toString(), body, path);
  }
});

test('explain shows the proxy-side fallbacks of a shape without `models`', async (t) => {
  const h = await harness(t);
  const res = await post(h, '/v1/routing/explain?api=messages', { ...MESSAGES, messages: [{ role: 'user', content: 'fallback' }] });
  const explained = jsonOf<{ rule: string; model: string; fallbacks: string[]; body: Record<string, unknown> }>(res);
  assert.deepEqual([explained.rule, explained.model, explained.fallbacks, explained.body.models], ['with-fallback', 'anthropic/claude-3.5-haiku', ['openai/gpt-4o-mini'], undefined]);
});

test('without an upstream cost, the catalog prices a shape\'s usage', async (t) => {
  const h = await harness(t);
  const res = await post(h, '/v1/messages', { ...MESSAGES, stream: true }, { 'x-fake-usage': JSON.stringify({ cost: false }) });
  assert.equal(res.status, 200);
  const line = await requestLine(h, res);
  assert.equal(line.cost_source, 'catalog');
  // gpt-4o-mini in the fake's catalog: $0.15 and $0.60 per million prompt and completion tokens.
  const expected = ((line.prompt_tokens as number) * 0.15 + (line.completion_tokens as number) * 0.6) / 1e6;
  assert.ok(Math.abs((line.cost_usd as number) - expected) < 1e-12, `${String(line.cost_usd)} vs ${expected}`);
});

test('a cascade in the Messages shape: the cheap tier\'s streamed refusal is held and escalated, the client gets the next tier\'s answer', async (t) => {
  const h = await harness(t, {
    rules: `version: 1
tiers:
  budget: { model: openai/gpt-4o-mini }
  standard: { model: openai/gpt-4o }
rules:
  - name: agent-cascade
    when: { request.api: messages }
    route:
      cascade: { tiers: [budget, standard], checks: { min_length: 5, refusal_phrases: ["I'm sorry"] }, stream_hold: { chars: 40, ms: 5000 } }
`,
  });
  const res = await post(h, '/v1/messages', { ...MESSAGES, stream: true }, { 'x-fake-answer': JSON.stringify({ 'openai/gpt-4o-mini': 'refusal', 'openai/gpt-4o': 'Paris is the capital of France.' }) });
  assert.equal(res.status, 200);
  assert.equal(res.headers['x-signalbox-escalations'], '1');
  const sent = h.fake.received.slice(-2);
  assert.deepEqual(sent.map((r) => [r.url, (JSON.parse(r.body.toString()) as { model: string }).model]), [['/api/v1/messages', 'openai/gpt-4o-mini'], ['/api/v1/messages', 'openai/gpt-4o']]);
  const text = events(res.body).filter(([name]) => name === 'content_block_delta').map(([, d]) => (d as { delta: { text: string } }).delta.text).join('');
  assert.equal(text, 'Paris is the capital of France.');
  assert.ok(!res.body.toString().includes('sorry'), 'nothing of the refusal reached the client');
  const line = await requestLine(h, res);
  assert.deepEqual(line.escalations, [{ from: 'budget', to: 'standard', reason: 'refusal' }]);
});

test('a judged shadow of a Responses request: its copy goes to /responses, the judge compares the real streamed answer with the shadow\'s', async (t) => {
  const h = await harness(t, {
    rules: `version: 1
rules:
  - name: shadowed
    route: { model: a/primary, shadow: { model: b/second, sample: 1, judge: { model: c/third } } }
`,
    app: { shadowRandom: () => 0 },
    fake: { content: 'The real answer.' },
  });
  h.fake.cannedContent.set('b/second', 'The shadow answer.');
  h.fake.cannedContent.set('c/third', '{"agree": false, "score": 0.25}');
  const res = await post(h, '/v1/responses', { ...RESPONSES, stream: true }, { 'x-request-id': 'shadowed-1' });
  assert.equal(res.status, 200);
  const line = await h.logs.waitFor((r) => r.msg === 'shadow' && r.reqId === 'shadowed-1');
  assert.equal(line.judge_score, 0.25);
  const [real, shadow, judge] = h.fake.received.slice(-3);
  assert.equal(real!.url, '/api/v1/responses');
  const copy = JSON.parse(shadow!.body.toString()) as Record<string, unknown>;
  assert.deepEqual([shadow!.url, copy.model, copy.stream, copy.input], ['/api/v1/responses', 'b/second', false, RESPONSES.input]);
  const judged = JSON.parse(judge!.body.toString()) as { messages: { content: string }[] };
  assert.equal(judge!.url, '/api/v1/chat/completions');
  assert.deepEqual(JSON.parse(judged.messages[1]!.content), { answer_a: 'The real answer.', answer_b: 'The shadow answer.' });
});
