import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import OpenAI from 'openai';
import type { ReceivedRequest } from '../../src/dev/fake-openrouter.js';
import { startHarness, type Harness } from '../support/harness.js';

/**
 * Issue 18, item 7: the official `openai` SDK's Responses API (`responses.create`, streaming and
 * not, and `responses.stream`) pointed at Signalbox. Its requests are routed by the same rules as
 * chat: the model rewritten, the cap written as `max_output_tokens`, the system prompt as
 * `instructions`; metered; and the proxy's own refusals reach it in OpenAI's envelope.
 */

const CLIENT_KEY = 'sk-sb-responses-client';
const SERVER_KEY = 'sk-or-v1-responses-server';

const RULES = `version: 1
rules:
  - name: refused
    when: { request.text: { contains: "refuse me" } }
    route: { reject: { status: 400, message: "refused by policy" } }
  - name: responses-cheap
    when: { request.api: responses }
    route: { model: openai/gpt-4o-mini, max_tokens: 40, system_prompt: { prepend: "Be brief." } }
`;

async function openaiClient(t: TestContext): Promise<{ h: Harness; client: OpenAI }> {
  const h = await startHarness({ rules: RULES, env: { SIGNALBOX_API_KEYS: CLIENT_KEY, OPENROUTER_API_KEY: SERVER_KEY } });
  t.after(() => h.close());
  // No retries: one call is one upstream request.
  const client = new OpenAI({ baseURL: `${h.url}/v1`, apiKey: CLIENT_KEY, maxRetries: 0 });
  return { h, client };
}

const ASK = { model: 'openai/gpt-4o', input: 'Summarise this diff', instructions: 'You review code.', max_output_tokens: 2000 };

function only(h: Harness): ReceivedRequest {
  assert.equal(h.fake.received.length, 1, 'exactly one upstream request');
  return h.fake.received[0]!;
}

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

async function requestsCounted(h: Harness, labels: string[]): Promise<number> {
  const text = await (await fetch(`${h.url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith('signalbox_requests_total{') && labels.every((label) => l.includes(label)));
  return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(' ') + 1));
}

/** The usage the client saw matches upstream's, and the request line and counters carry it. */
async function assertMetered(h: Harness, reqId: string | null, usage: OpenAI.Responses.ResponseUsage | undefined): Promise<void> {
  const upstream = only(h).usage;
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
  assertRoutedUpstream(only(h), false);
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
  assertRoutedUpstream(only(h), true);
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
  assertRoutedUpstream(only(h), true);
  // responses.stream exposes no response headers: the request id comes from the only request line.
  const line = await h.logs.waitFor((r) => r.msg === 'request');
  await assertMetered(h, String(line.reqId), final.usage);
});

test('the proxy\'s own refusals on /v1/responses come in OpenAI\'s envelope: AuthenticationError, BadRequestError with the code', async (t) => {
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
  assert.equal(h.fake.received.length, 0, 'nothing sent upstream');
});
