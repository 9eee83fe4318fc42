import assert from 'node:assert/strict';
import type { OutgoingHttpHeaders } from 'node:http';
import { test, type TestContext } from 'node:test';
import type { ReceivedRequest } from '../../src/dev/fake-openrouter.js';
import { compileRules } from '../../src/rules/compile.js';
import { startHarness, type Harness } from '../support/harness.js';
import { jsonOf, rawRequest, type RawResponse } from '../support/http.js';

const SERVER_KEY = 'sk-or-v1-routing-test-server-key';
const CHAT = '/v1/chat/completions';
const EXPLAIN = '/v1/routing/explain';

const RULES = `version: 1
tiers:
  smart:
    model: anthropic/claude-3.5-sonnet
    fallbacks: [openai/gpt-4o]
    provider: { sort: throughput, order: [anthropic] }
    max_tokens: 1000
rules:
  - name: blocked
    when: { header.x-block: "yes" }
    route: { reject: { status: 403, message: "blocked by policy" } }
  - name: passthrough
    when: { model: { starts_with: "raw/" } }
    route: { pass: true }
  - name: smart-route
    when: { model: smart }
    route:
      tier: smart
      provider: { allow_fallbacks: false }
      params: { temperature: 0.1 }
      system_prompt: { prepend: "Be brief." }
      headers: { X-Route-Tag: smart-route }
`;

/** What the client sends to be routed by `smart-route`. */
const SMART_BODY = {
  model: 'smart',
  messages: [{ role: 'user', content: 'hi' }],
  provider: { order: ['openai'], data_collection: 'deny' },
  max_tokens: 5000,
  temperature: 0.9,
  user: 'u-42',
};

/** Exactly what upstream must receive for SMART_BODY (stream flag aside). */
const SMART_UPSTREAM = {
  model: 'anthropic/claude-3.5-sonnet',
  models: ['anthropic/claude-3.5-sonnet', 'openai/gpt-4o'],
  messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'hi' }],
  // The client's provider preferences, the tier's merged over them, the route's over both.
  provider: { order: ['anthropic'], data_collection: 'deny', sort: 'throughput', allow_fallbacks: false },
  max_tokens: 1000,
  temperature: 0.1,
  user: 'u-42',
};

async function harness(t: TestContext, env: Record<string, string> = {}): Promise<Harness> {
  const h = await startHarness({ rules: RULES, env: { OPENROUTER_API_KEY: SERVER_KEY, ...env } });
  t.after(() => h.close());
  return h;
}

/** A POST with node:http, the body sent as these exact bytes. */
function post(h: Harness, path: string, body: string | Buffer, headers: OutgoingHttpHeaders = {}): Promise<RawResponse> {
  return rawRequest(h.url, { method: 'POST', path, body, headers: { 'content-type': 'application/json', ...headers } });
}

function only(h: Harness): ReceivedRequest {
  assert.equal(h.fake.received.length, 1, 'exactly one upstream request');
  return h.fake.received[0]!;
}

function assertRoutingHeaders(res: RawResponse, rule: string, model: string | undefined): void {
  assert.equal(res.headers['x-signalbox-rule'], rule);
  assert.equal(res.headers['x-signalbox-model'], model);
}

function assertOpenAIError(res: RawResponse, status: number, code: string, message?: string): void {
  assert.equal(res.status, status);
  const body = jsonOf<{ error: { message: string; type: string; code: string } }>(res);
  assert.equal(body.error.code, code);
  if (message !== undefined) assert.equal(body.error.message, message);
}

for (const stream of [false, true]) {
  test(`a routed ${stream ? 'streaming' : 'non-streaming'} request: upstream gets the rewritten body, the client the routing headers`, async (t) => {
    const h = await harness(t);
    const res = await post(h, CHAT, JSON.stringify({ ...SMART_BODY, stream }));

    assert.equal(res.status, 200);
    assertRoutingHeaders(res, 'smart-route', 'anthropic/claude-3.5-sonnet');
    const rec = only(h);
    assert.deepEqual(rec.json, { ...SMART_UPSTREAM, stream });
    assert.equal(rec.headers['content-type'], 'application/json');
    assert.equal(rec.headers['content-length'], String(rec.body.length));
    assert.equal(rec.headers['x-route-tag'], 'smart-route');
    if (stream) {
      assert.equal(res.headers['content-type'], 'text/event-stream');
      assert.deepEqual(res.body, Buffer.concat(rec.sent), 'the stream is relayed as it is');
    } else {
      assert.equal(jsonOf<{ model: string }>(res).model, 'anthropic/claude-3.5-sonnet');
    }
  });
}

test('an upstream error carries the routing headers', async (t) => {
  const h = await harness(t);
  h.fake.enqueue({ type: 'status', status: 503 });
  const res = await post(h, CHAT, JSON.stringify(SMART_BODY));
  assert.equal(res.status, 503);
  assert.deepEqual(jsonOf(res), { error: { code: 503, message: 'No endpoints found that can handle the request' } });
  assertRoutingHeaders(res, 'smart-route', 'anthropic/claude-3.5-sonnet');
});

test("the proxy's own error (upstream headers timeout) carries the routing headers", async (t) => {
  const h = await harness(t, { UPSTREAM_HEADERS_TIMEOUT_MS: '150' });
  h.fake.enqueue({ type: 'hang' });
  const res = await post(h, CHAT, JSON.stringify(SMART_BODY));
  assertOpenAIError(res, 504, 'upstream_timeout');
  assertRoutingHeaders(res, 'smart-route', 'anthropic/claude-3.5-sonnet');
});

test('a pass rule forwards the client bytes exactly', async (t) => {
  const h = await harness(t);
  const raw = Buffer.from('{ "model" :  "raw/my-model",\n\t"messages":[ {"role":"user","content":"hi \\u00e9"} ] ,"x":1.50 }  \n');
  const res = await post(h, CHAT, raw);
  assert.equal(res.status, 200);
  assertRoutingHeaders(res, 'passthrough', 'raw/my-model');
  assert.deepEqual(only(h).body, raw);
});

test('no matching rule: rule `none` and the client bytes forwarded exactly', async (t) => {
  const h = await harness(t);
  const raw = Buffer.from('{"model":"openai/gpt-4o-mini" , "messages" : [{"role":"user","content":"hi"}],\r\n"temperature":1.0}');
  const res = await post(h, CHAT, raw);
  assert.equal(res.status, 200);
  assertRoutingHeaders(res, 'none', 'openai/gpt-4o-mini');
  assert.deepEqual(only(h).body, raw);
});

test('a reject rule answers with its status and message, and sends nothing upstream', async (t) => {
  const h = await harness(t);
  const res = await post(h, CHAT, JSON.stringify(SMART_BODY), { 'x-block': 'yes' });
  assert.deepEqual(jsonOf(res), { error: { message: 'blocked by policy', type: 'permission_error', code: 'rejected_by_rule' } });
  assert.equal(res.status, 403);
  assert.equal(res.headers['x-signalbox-rule'], 'blocked');
  assert.equal(h.fake.received.length, 0);
});

for (const [what, model, shown] of [
  ['non-ASCII', 'gpt\u00e9', 'gpt%C3%A9'],
  ['CR LF', 'evil\r\nx-injected: 1', 'evil%0D%0Ax-injected%3A%201'],
  ['a space', 'my model', 'my%20model'],
] as const) {
  test(`a client model name with ${what} is percent-encoded in x-signalbox-model`, async (t) => {
    const h = await harness(t);
    const res = await post(h, CHAT, JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }] }));
    assert.equal(res.status, 200);
    assertRoutingHeaders(res, 'none', shown);
    assert.equal(res.headers['x-injected'], undefined);
    assert.equal((only(h).json as { model: string }).model, model, 'upstream gets the name unchanged');
  });
}

test('the request log line names the rule, the requested model and the routed model', async (t) => {
  const h = await harness(t);
  await post(h, CHAT, JSON.stringify(SMART_BODY), { 'x-request-id': 'routing-log-1' });
  const line = await h.logs.requestLine('routing-log-1');
  assert.equal(line.rule, 'smart-route');
  assert.equal(line.model, 'smart');
  assert.equal(line.routed_model, 'anthropic/claude-3.5-sonnet');
  assert.equal(line.status, 200);

  await post(h, CHAT, JSON.stringify({ model: 'raw/x', messages: [{ role: 'user', content: 'hi' }] }), { 'x-request-id': 'routing-log-2' });
  const passed = await h.logs.requestLine('routing-log-2');
  assert.equal(passed.rule, 'passthrough');
  assert.equal(passed.model, 'raw/x');
  assert.equal('routed_model' in passed, false, 'no routed_model when the model is unchanged');
});

test('a body whose messages is not a non-empty list of objects is a 400 invalid_messages before routing: nothing goes upstream, nothing is billed', async (t) => {
  const h = await harness(t);
  // smart-route prepends a system prompt: on these bodies it used to go upstream alone.
  const bodies = [
    { model: 'smart' },
    { model: 'smart', messages: 'write a parser' },
    { model: 'smart', messages: [] },
    { model: 'smart', messages: [null] },
    { model: 'smart', messages: [{ role: 'user', content: 'hi' }, [{ role: 'user', content: 'hi' }]] },
  ];
  for (const [i, body] of bodies.entries()) {
    const requestId = `invalid-messages-${i}`;
    const res = await post(h, CHAT, JSON.stringify(body), { 'x-request-id': requestId });
    assertOpenAIError(res, 400, 'invalid_messages');
    assert.equal(jsonOf<{ error: { type: string } }>(res).error.type, 'invalid_request_error');
    assertOpenAIError(await post(h, EXPLAIN, JSON.stringify(body)), 400, 'invalid_messages');
    // The log line is written once the response closed: the process is still up after it.
    assert.equal((await h.logs.requestLine(requestId)).status, 400);
  }
  assert.equal(h.fake.received.length, 0);
  const after = await post(h, CHAT, JSON.stringify(SMART_BODY));
  assert.equal(after.status, 200, 'the proxy still serves');
});

// --- POST /v1/routing/explain -------------------------------------------------------------------

interface ExplainBody {
  rules_file: string;
  rules_hash: string;
  rule: string;
  action: string;
  tier?: string;
  model?: string;
  reject?: { status: number; message: string };
  trace: unknown[];
  fields: Record<string, unknown>;
  body?: unknown;
  body_changed: boolean;
  upstream_headers: Record<string, string>;
}

test('explain shows the decision and its reasons, and calls nothing upstream', async (t) => {
  const h = await harness(t);
  const res = await post(h, EXPLAIN, JSON.stringify(SMART_BODY));
  assert.equal(res.status, 200);
  assert.equal(h.fake.received.length, 0);
  const e = jsonOf<ExplainBody>(res);
  assert.equal(e.rules_file, 'test-rules.yaml');
  assert.equal(e.rules_hash, compileRules(RULES, 'x.yaml').hash);
  assert.equal(e.rule, 'smart-route');
  assert.equal(e.action, 'route');
  assert.equal(e.tier, 'smart');
  assert.equal(e.model, 'anthropic/claude-3.5-sonnet');
  assert.deepEqual(e.trace, [
    { rule: 'blocked', matched: false, failed: { field: 'header.x-block', operator: 'eq', expected: 'yes', actual: null, missing: true } },
    { rule: 'passthrough', matched: false, failed: { field: 'model', operator: 'starts_with', expected: 'raw/', actual: 'smart' } },
    { rule: 'smart-route', matched: true },
  ]);
  assert.deepEqual(e.fields, { 'header.x-block': null, model: 'smart' });
  assert.deepEqual(e.body, SMART_UPSTREAM);
  assert.equal(e.body_changed, true);
  // Values redacted: a rule's header may carry a provider secret (issue 12, defect 16).
  assert.deepEqual(e.upstream_headers, { 'x-route-tag': '[redacted]' });
});

test("explain's body is exactly what the chat endpoint sends upstream", async (t) => {
  const h = await harness(t);
  const body = JSON.stringify({ ...SMART_BODY, messages: [{ role: 'system', content: 'You are terse.' }, { role: 'user', content: 'hi' }] });
  const explained = jsonOf<ExplainBody>(await post(h, EXPLAIN, body));
  assert.equal(h.fake.received.length, 0);
  const res = await post(h, CHAT, body);
  assert.equal(res.status, 200);
  assert.deepEqual(explained.body, JSON.parse(only(h).body.toString('utf8')));
});

test('explain of a reject shows the action and the status', async (t) => {
  const h = await harness(t);
  const res = await post(h, EXPLAIN, JSON.stringify(SMART_BODY), { 'x-block': 'yes' });
  assert.equal(res.status, 200);
  const e = jsonOf<ExplainBody>(res);
  assert.equal(e.rule, 'blocked');
  assert.equal(e.action, 'reject');
  assert.deepEqual(e.reject, { status: 403, message: 'blocked by policy' });
  assert.deepEqual(e.trace, [{ rule: 'blocked', matched: true }]);
  assert.equal(h.fake.received.length, 0);
});

test('explain with malformed JSON is a 400 invalid_json', async (t) => {
  const h = await harness(t);
  const res = await post(h, EXPLAIN, '{"model": "smart",');
  assertOpenAIError(res, 400, 'invalid_json');
  assert.equal(h.fake.received.length, 0);
});

test('explain needs a client key when SIGNALBOX_API_KEYS is set', async (t) => {
  const h = await harness(t, { SIGNALBOX_API_KEYS: 'sy-client-key' });
  assertOpenAIError(await post(h, EXPLAIN, JSON.stringify(SMART_BODY)), 401, 'invalid_api_key');
  assertOpenAIError(await post(h, EXPLAIN, JSON.stringify(SMART_BODY), { authorization: 'Bearer wrong-key' }), 401, 'invalid_api_key');
  const res = await post(h, EXPLAIN, JSON.stringify(SMART_BODY), { authorization: 'Bearer sy-client-key' });
  assert.equal(res.status, 200);
  assert.equal(jsonOf<ExplainBody>(res).rule, 'smart-route');
  assert.equal(h.fake.received.length, 0);
});
