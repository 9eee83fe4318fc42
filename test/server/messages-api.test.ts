import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import Anthropic, { APIError } from '@anthropic-ai/sdk';
import type { ReceivedRequest } from '../../src/dev/fake-openrouter.js';
import type { Harness } from '../support/harness.js';
import { CLIENT_KEY, SERVER_KEY, onlyUpstream, requestsCounted, routedHarness } from '../support/routed-shapes.js';

/**
 * Issue 18, item 7: the official `@anthropic-ai/sdk`, the client coding agents use with
 * ANTHROPIC_BASE_URL, pointed at Signalbox. Its requests are routed by the same rules as chat: the
 * model rewritten, `max_tokens` capped, `system` prepended; metered (the request line and
 * `signalbox_requests_total{endpoint="messages"}`); and the proxy's own refusals reach it in
 * Anthropic's envelope with the status that picks the SDK's error class.
 */

const RULES = `  - name: agent-background
    when: { request.api: messages }
    route: { model: anthropic/claude-3-haiku, max_tokens: 50, system_prompt: { prepend: "Be brief." } }
`;

/** Signalbox (routedHarness: client and server keys, refusals first), and the SDK as a coding agent configures it: the proxy's origin, no /v1. */
async function anthropicClient(t: TestContext): Promise<{ h: Harness; client: Anthropic }> {
  const h = await routedHarness(t, RULES);
  // No retries: one call is one request (the SDK retries 429 by default).
  const client = new Anthropic({ baseURL: h.url, apiKey: CLIENT_KEY, maxRetries: 0 });
  return { h, client };
}

const ASK = { model: 'anthropic/claude-3.5-sonnet', max_tokens: 4096, system: 'You are a coding agent.', messages: [{ role: 'user' as const, content: 'Summarise this diff' }] };

/** What upstream got: OpenRouter's Messages path, the rule's model and cap, the prompt prepended, the server key. */
function assertRoutedUpstream(sent: ReceivedRequest): void {
  assert.equal(new URL(sent.url, 'http://x').pathname, '/api/v1/messages');
  const body = sent.json as Record<string, unknown>;
  assert.equal(body.model, 'anthropic/claude-3-haiku');
  assert.equal(body.max_tokens, 50);
  assert.equal(body.system, 'Be brief.\n\nYou are a coding agent.');
  assert.equal(sent.headers.authorization, `Bearer ${SERVER_KEY}`);
  assert.equal(sent.headers['x-api-key'], undefined, 'the client key never travels upstream');
  // Claude Code's gateway requirements: anthropic-version and anthropic-beta are forwarded (https://code.claude.com/docs/en/llm-gateway).
  assert.match(String(sent.headers['anthropic-version']), /^\d{4}-\d{2}-\d{2}$/, 'the SDK\'s API version reached upstream');
}

/** The request line and the counters say this was a routed, metered Messages request. */
async function assertMetered(h: Harness, reqId: string, usage: { input_tokens: number; output_tokens: number }): Promise<void> {
  const line = await h.logs.requestLine(reqId);
  assert.equal(line.rule, 'agent-background');
  assert.equal(line.completion_tokens, usage.output_tokens);
  assert.ok(typeof line.prompt_tokens === 'number' && line.prompt_tokens >= usage.input_tokens, 'cached and written input counted in the prompt');
  assert.equal(line.cost_usd, onlyUpstream(h).usage?.cost);
  assert.equal(await requestsCounted(h, ['endpoint="messages"', 'rule="agent-background"', 'status="200"']), 1);
}

test('messages.create through Signalbox: routed by the rule (model, cap, system) upstream, usage on the message, metered', async (t) => {
  const { h, client } = await anthropicClient(t);
  const { data: message, response } = await client.messages.create(ASK).withResponse();

  assert.equal(message.type, 'message');
  assert.equal(message.content[0]?.type === 'text' ? message.content[0].text : undefined, h.fake.options.content);
  assert.equal(message.model, 'anthropic/claude-3-haiku');
  assert.equal(response.headers.get('x-signalbox-rule'), 'agent-background');
  assert.equal(response.headers.get('x-signalbox-model'), 'anthropic/claude-3-haiku');
  const sent = onlyUpstream(h);
  assertRoutedUpstream(sent);
  assert.equal(message.usage.output_tokens, sent.usage?.completion_tokens);
  assert.ok(message.usage.input_tokens > 0);
  await assertMetered(h, String(response.headers.get('x-request-id')), message.usage);
});

test('messages.stream through Signalbox: text events add up to the reply, finalMessage carries the usage, routed and metered', async (t) => {
  const { h, client } = await anthropicClient(t);
  const stream = client.messages.stream(ASK);
  const texts: string[] = [];
  stream.on('text', (delta) => texts.push(delta));
  const message = await stream.finalMessage();
  const response = (await stream.withResponse()).response;

  assert.equal(texts.join(''), h.fake.options.content);
  assert.ok(texts.length > 1, 'streamed in pieces, not one block');
  assert.equal(message.stop_reason, 'end_turn');
  assert.equal(response.headers.get('x-signalbox-rule'), 'agent-background');
  const sent = onlyUpstream(h);
  assertRoutedUpstream(sent);
  assert.equal((sent.json as { stream?: unknown }).stream, true);
  assert.equal(message.usage.output_tokens, sent.usage?.completion_tokens);
  await assertMetered(h, String(response.headers.get('x-request-id')), message.usage);
});

/** A call the proxy refuses itself: nothing goes upstream, and the SDK raises `errorClass` from Anthropic's envelope. */
async function assertRefused(h: Harness, call: Promise<unknown>, errorClass: new (...args: never[]) => APIError, status: number, type: string): Promise<void> {
  await assert.rejects(call, (err: unknown) => {
    assert.ok(err instanceof errorClass, `${String(err)} is a ${errorClass.name}`);
    assert.equal(err.status, status);
    const body = err.error as { type?: string; error?: { type?: string; message?: string } };
    assert.equal(body.type, 'error', 'Anthropic\'s envelope');
    assert.equal(body.error?.type, type);
    assert.equal(typeof body.error?.message, 'string');
    return true;
  });
  assert.equal(h.fake.received.length, 0, 'nothing sent upstream');
}

test('the proxy\'s own refusals raise the Anthropic SDK\'s own classes: AuthenticationError, BadRequestError, RateLimitError', async (t) => {
  const { h, client } = await anthropicClient(t);
  const stranger = new Anthropic({ baseURL: h.url, apiKey: 'sk-sb-not-a-key', maxRetries: 0 });
  await assertRefused(h, stranger.messages.create(ASK), Anthropic.AuthenticationError, 401, 'authentication_error');
  const refuse = { ...ASK, messages: [{ role: 'user' as const, content: 'please refuse me' }] };
  await assertRefused(h, client.messages.create(refuse), Anthropic.BadRequestError, 400, 'invalid_request_error');
  const throttle = { ...ASK, messages: [{ role: 'user' as const, content: 'please throttle me' }] };
  await assertRefused(h, client.messages.create(throttle), Anthropic.RateLimitError, 429, 'rate_limit_error');
  // A stream refused before it began raises the same class from finalMessage().
  await assertRefused(h, client.messages.stream(throttle).finalMessage(), Anthropic.RateLimitError, 429, 'rate_limit_error');
});

test('a stream the upstream cuts reaches the SDK as an error event it raises, not as a short answer', async (t) => {
  const { client } = await anthropicClient(t);
  const stream = client.messages.stream(ASK, { headers: { 'x-fake-fault': JSON.stringify({ type: 'reset-mid-stream', afterEvents: 3 }) } });
  await assert.rejects(stream.finalMessage(), (err: unknown) => {
    assert.ok(err instanceof APIError, String(err));
    assert.match(String((err as Error).message), /upstream_/);
    return true;
  });
});
