import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import OpenAI from 'openai';
import type { ReceivedRequest } from '../../src/dev/fake-openrouter.js';
import type { Harness } from '../support/harness.js';
import { CLIENT_KEY, SERVER_KEY, onlyUpstream, requestsCounted, routedHarness } from '../support/routed-shapes.js';

/**
 * Issue 18, item 7: the official `openai` SDK's Responses API (`responses.create`, streaming and
 * not, and `responses.stream`) pointed at Signalbox. Its requests are routed by the same rules as
 * chat: the model rewritten, the cap written as `max_output_tokens`, the system prompt as
 * `instructions`; metered; and the proxy's own refusals reach it in OpenAI's envelope.
 */

const RULES = `  - name: responses-cheap
    when: { request.api: responses }
    route: { model: openai/gpt-4o-mini, max_tokens: 40, system_prompt: { prepend: "Be brief." } }
`;

async function openaiClient(t: TestContext): Promise<{ h: Harness; client: OpenAI }> {
  const h = await routedHarness(t, RULES);
  // No retries: one call is one upstream request.
  const client = new OpenAI({ baseURL: `${h.url}/v1`, apiKey: CLIENT_KEY, maxRetries: 0 });
  return { h, client };
}

const ASK = { model: 'openai/gpt-4o', input: 'Summarise this diff', instructions: 'You review code.', max_output_tokens: 2000 };

/** What upstream got: OpenRouter's Responses path, the rule's model, the cap as max_output_tokens, instructions prepended. */
function assertRoutedUpstream(sent: ReceivedRequest, stream: boolean): void {
  assert.equal(new URL(sent.url, 'http://x').pathname, '/api/v1/responses');
  const body = sent.json as Record<string, unknown>;
  assert.equal(body.model, 'openai/gpt-4o-mini');
  assert.equal(body.max_output_tokens, 40);
  assert.equal(body.max_tokens, undefined, 'the chat name of the cap is not the Responses one');
  assert.equal(body.instructions, 'Be brief.\n\nYou review code.');
  assert.equal(body.stream === true, stream);
  assert.equal(sent.headers.authorization, `Bearer ${SERVER_KEY}`);
}

/** The usage the client saw matches upstream's, and the request line and counters carry it. */
async function assertMetered(h: Harness, reqId: string | null, usage: OpenAI.Responses.ResponseUsage | undefined): Promise<void> {
  const upstream = onlyUpstream(h).usage;
  assert.ok(usage && upstream);
  assert.equal(usage.input_tokens, upstream.prompt_tokens);
  assert.equal(usage.output_tokens, upstream.completion_tokens);
  const line = await h.logs.requestLine(String(reqId));
  assert.equal(line.rule, 'responses-cheap');
  assert.deepEqual([line.prompt_tokens, line.completion_tokens, line.cost_usd], [upstream.prompt_tokens, upstream.completion_tokens, upstream.cost]);
  assert.equal(await requestsCounted(h, ['endpoint="responses"', 'rule="responses-cheap"', 'status="200"']), 1);
}

test('responses.create through Signalbox: routed (model, max_output_tokens, instructions) upstream, usage on the response, metered', async (t) => {
  const { h, client } = await openaiClient(t);
  const { data: response, response: raw } = await client.responses.create(ASK).withResponse();

  assert.equal(response.status, 'completed');
  assert.equal(response.output_text, h.fake.options.content);
  assert.equal(raw.headers.get('x-signalbox-rule'), 'responses-cheap');
  assert.equal(raw.headers.get('x-signalbox-model'), 'openai/gpt-4o-mini');
  assertRoutedUpstream(onlyUpstream(h), false);
  await assertMetered(h, raw.headers.get('x-request-id'), response.usage);
});

test('responses.create with stream: true: the deltas add up to the reply, response.completed carries the usage', async (t) => {
  const { h, client } = await openaiClient(t);
  const { data: stream, response: raw } = await client.responses.create({ ...ASK, stream: true }).withResponse();

  const deltas: string[] = [];
  let completed: OpenAI.Responses.Response | undefined;
  for await (const event of stream) {
    if (event.type === 'response.output_text.delta') deltas.push(event.delta);
    if (event.type === 'response.completed') completed = event.response;
  }
  assert.equal(deltas.join(''), h.fake.options.content);
  assert.ok(deltas.length > 1, 'streamed in pieces');
  assert.equal(raw.headers.get('x-signalbox-rule'), 'responses-cheap');
  assertRoutedUpstream(onlyUpstream(h), true);
  await assertMetered(h, raw.headers.get('x-request-id'), completed?.usage);
});

test('responses.stream through Signalbox: text events and finalResponse with its usage', async (t) => {
  const { h, client } = await openaiClient(t);
  const stream = client.responses.stream(ASK);
  const deltas: string[] = [];
  stream.on('response.output_text.delta', (event) => deltas.push(event.delta));
  const final = await stream.finalResponse();

  assert.equal(deltas.join(''), h.fake.options.content);
  assert.equal(final.output_text, h.fake.options.content);
  assertRoutedUpstream(onlyUpstream(h), true);
  // responses.stream exposes no response headers: the request id comes from the only request line.
  const line = await h.logs.waitFor((r) => r.msg === 'request');
  await assertMetered(h, String(line.reqId), final.usage);
});

test('the proxy\'s own refusals on /v1/responses come in OpenAI\'s envelope: AuthenticationError, BadRequestError, RateLimitError with the code', async (t) => {
  const { h, client } = await openaiClient(t);
  const stranger = new OpenAI({ baseURL: `${h.url}/v1`, apiKey: 'sk-sb-not-a-key', maxRetries: 0 });
  await assert.rejects(stranger.responses.create(ASK), (err: unknown) => {
    assert.ok(err instanceof OpenAI.AuthenticationError, String(err));
    assert.equal(err.code, 'invalid_api_key');
    return true;
  });
  await assert.rejects(client.responses.create({ ...ASK, input: 'please refuse me' }), (err: unknown) => {
    assert.ok(err instanceof OpenAI.BadRequestError, String(err));
    assert.equal(err.code, 'rejected_by_rule');
    assert.equal(err.type, 'invalid_request_error');
    assert.match(err.message, /refused by policy/);
    return true;
  });
  await assert.rejects(client.responses.create({ ...ASK, input: 'please throttle me' }), (err: unknown) => {
    assert.ok(err instanceof OpenAI.RateLimitError, String(err));
    assert.equal(err.code, 'rejected_by_rule');
    return true;
  });
  assert.equal(h.fake.received.length, 0, 'nothing sent upstream');
});

test('a stream the upstream cuts ends with response.failed, which the SDK surfaces as a failed response', async (t) => {
  const { client } = await openaiClient(t);
  const stream = await client.responses.create({ ...ASK, stream: true }, { headers: { 'x-fake-fault': JSON.stringify({ type: 'reset-mid-stream', afterEvents: 3 }) } });
  const types: string[] = [];
  let failed: { status?: string; error?: { code?: string } | null } | undefined;
  for await (const event of stream) {
    types.push(event.type);
    if (event.type === 'response.failed') failed = event.response as typeof failed;
  }
  assert.equal(types.at(-1), 'response.failed');
  assert.equal(failed?.status, 'failed');
  assert.match(failed?.error?.code ?? '', /^upstream_/);
});
