import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startHarness } from '../support/harness.js';

/**
 * Issue 18, item 4 (first part): Anthropic clients in their own terms. A client of the Messages
 * API gets Anthropic's error envelope for the proxy's own errors; its `x-api-key` is accepted
 * wherever `Authorization: Bearer` is, and in pass-through mode goes upstream as the Bearer
 * OpenRouter reads, never as `x-api-key`.
 */

const MESSAGES_BODY = JSON.stringify({ model: 'anthropic/claude-3.5-haiku', max_tokens: 64, messages: [{ role: 'user', content: 'hi' }] });

test('the proxy\'s own errors on /v1/messages come in Anthropic\'s envelope; other paths keep OpenAI\'s', async (t) => {
  const h = await startHarness({ env: { SIGNALBOX_API_KEYS: 'sk-sb-client-key', OPENROUTER_API_KEY: 'sk-or-server-key' } });
  t.after(() => h.close());
  const unauthenticated = await fetch(`${h.url}/v1/messages`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': 'wrong' }, body: MESSAGES_BODY });
  assert.equal(unauthenticated.status, 401);
  const body = (await unauthenticated.json()) as { type: string; error: { type: string; message: string } };
  assert.equal(body.type, 'error');
  assert.equal(body.error.type, 'authentication_error');
  assert.match(body.error.message, /^invalid_api_key: /, 'the stable code leads the message');
  const chat = await fetch(`${h.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
  assert.equal(chat.status, 401);
  assert.equal(((await chat.json()) as { error: { code: string } }).error.code, 'invalid_api_key');
  // The client key as x-api-key is accepted (and never sent upstream; the server key is).
  const ok = await fetch(`${h.url}/v1/messages`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': 'sk-sb-client-key' }, body: MESSAGES_BODY });
  await ok.arrayBuffer();
  const sent = h.fake.received.at(-1)!;
  assert.equal(sent.headers.authorization, 'Bearer sk-or-server-key');
  assert.equal(sent.headers['x-api-key'], undefined);
});

test('pass-through mode: an Anthropic client\'s x-api-key is its OpenRouter key, sent upstream as Authorization: Bearer', async (t) => {
  const h = await startHarness();
  t.after(() => h.close());
  const res = await fetch(`${h.url}/v1/messages`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': 'sk-or-client-own-key' }, body: MESSAGES_BODY });
  await res.arrayBuffer();
  const sent = h.fake.received.at(-1)!;
  assert.equal(sent.headers.authorization, 'Bearer sk-or-client-own-key');
  assert.equal(sent.headers['x-api-key'], undefined, 'never forwarded as itself');
  // Authorization, when both are sent, is the one read.
  const both = await fetch(`${h.url}/v1/messages`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer sk-or-a', 'x-api-key': 'sk-or-b' }, body: MESSAGES_BODY });
  await both.arrayBuffer();
  assert.equal(h.fake.received.at(-1)!.headers.authorization, 'Bearer sk-or-a');
});

test('explain takes any of the three shapes: ?api=messages reads a Messages body as a request of that shape', async (t) => {
  const h = await startHarness({ rules: 'version: 1\nrules:\n  - name: cheap\n    when: { request.text: { contains: spam } }\n    route: { model: openai/gpt-4o-mini, max_tokens: 64, system_prompt: { prepend: "Answer yes or no." } }\n' });
  t.after(() => h.close());
  const explain = (query: string, body: object) => fetch(`${h.url}/v1/routing/explain${query}`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer sk-or-x' }, body: JSON.stringify(body) });
  const res = await explain('?api=messages', { model: 'anthropic/claude-3.5-sonnet', max_tokens: 1000, system: 'Be kind.', messages: [{ role: 'user', content: [{ type: 'text', text: 'is this spam?' }] }] });
  assert.equal(res.status, 200);
  const explained = (await res.json()) as { rule: string; fields: Record<string, unknown>; body: Record<string, unknown> };
  assert.equal(explained.rule, 'cheap');
  assert.equal(explained.fields['request.text'], 'is this spam?');
  assert.deepEqual([explained.body.max_tokens, explained.body.system, explained.body.models], [64, 'Answer yes or no.\n\nBe kind.', undefined]);
  const responses = (await (await explain('?api=responses', { model: 'x/y', input: 'spam?' })).json()) as { rule: string; body: Record<string, unknown> };
  assert.deepEqual([responses.rule, responses.body.max_output_tokens, responses.body.instructions], ['cheap', 64, 'Answer yes or no.']);
  assert.equal((await explain('?api=grpc', { model: 'x/y' })).status, 400);
  assert.equal((await explain('', { model: 'x/y', input: 'spam?' })).status, 400, 'chat by default: a body without messages is refused');
});
