import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FAKE_ANSWERS, type FakeUsage } from '../../src/dev/fake-openrouter.js';
import { messagesBody, messagesErrorEvent, messagesEvents, responsesBody, responsesErrorEvents, responsesEvents, type ShapeReply } from '../../src/dev/fake-shapes.js';
import { asksJson } from '../../src/experiments/cascade-checks.js';
import { CascadeGate, type GateVerdict } from '../../src/experiments/cascade-gate.js';
import type { CascadePlan } from '../../src/rules/cascade.js';
import { chatView, type Api } from '../../src/rules/shapes.js';

/**
 * The cascade gate on the Responses and Messages shapes (issue 18): the same checks as chat, on
 * the answer's text as each shape carries it, fed the event sequences and bodies the fake
 * OpenRouter itself produces (src/dev/fake-shapes.ts).
 */

const USAGE: FakeUsage = {
  prompt_tokens: 10, completion_tokens: 5, total_tokens: 15, cost: 0.001, is_byok: false,
  prompt_tokens_details: { cached_tokens: 0, cache_write_tokens: 0 }, completion_tokens_details: { reasoning_tokens: 0 },
};

const GOOD = 'Paris is the capital of France, on the Seine, with about two million inhabitants.';

function plan(chars = 200): CascadePlan {
  return {
    rule: 'cheap-first',
    steps: [],
    checks: { minLength: 20, refusalPhrases: ["I'm sorry", 'I cannot'], uncertaintyPhrases: ["I'm not sure"], json: 'auto' },
    maxEscalations: 1,
    streamHold: { chars, ms: 1500 },
    retry: undefined,
  };
}

function reply(text: string): ShapeReply {
  // As the fake splits an answer: word by word, each keeping its trailing space.
  return { seq: 7, model: 'openai/gpt-4o-mini', words: text.split(/(?<= )/), truncated: false, usage: USAGE };
}

type StreamApi = Exclude<Api, 'chat'>;

function events(api: StreamApi, text: string): string[] {
  return api === 'responses' ? responsesEvents(reply(text), {}) : messagesEvents(reply(text));
}

function wholeBody(api: StreamApi, text: string): Record<string, unknown> {
  return api === 'responses' ? responsesBody(reply(text), {}) : messagesBody(reply(text));
}

/** Feeds a stream event by event: the first verdict and how many events it took, or the end's verdict. */
function feedStream(gate: CascadeGate, sseEvents: readonly string[]): { verdict: GateVerdict; events: number } {
  assert.equal(gate.head(200, true), 'hold');
  for (const [i, event] of sseEvents.entries()) {
    const verdict = gate.push(Buffer.from(event, 'utf8'));
    if (verdict !== undefined) return { verdict, events: i + 1 };
  }
  return { verdict: gate.end(), events: sseEvents.length };
}

function feedBody(gate: CascadeGate, body: unknown): GateVerdict {
  assert.equal(gate.head(200, false), 'hold');
  assert.equal(gate.push(Buffer.from(JSON.stringify(body), 'utf8')), undefined);
  return gate.end();
}

const PASS = { pass: true };

for (const api of ['responses', 'messages'] as const) {
  test(`${api} stream: a refusal escalates as soon as its first words prove it, before the stream ends`, () => {
    const stream = events(api, FAKE_ANSWERS.refusal!);
    const { verdict, events: fed } = feedStream(new CascadeGate(plan(), false, api), stream);
    assert.deepEqual(verdict, { pass: false, reason: 'refusal' });
    assert.ok(fed < stream.length, `decided after ${fed} of ${stream.length} events`);
  });

  test(`${api} stream: a short answer escalates at its end`, () => {
    assert.deepEqual(feedStream(new CascadeGate(plan(), false, api), events(api, FAKE_ANSWERS.short!)).verdict, { pass: false, reason: 'short' });
  });

  test(`${api} stream: a good answer passes, at its window or at its end`, () => {
    assert.deepEqual(feedStream(new CascadeGate(plan(), false, api), events(api, GOOD)).verdict, PASS);
    // A window shorter than the answer: released once `chars` characters arrived, before the end.
    const stream = events(api, GOOD);
    const early = feedStream(new CascadeGate(plan(20), false, api), stream);
    assert.deepEqual(early.verdict, PASS);
    assert.ok(early.events < stream.length);
  });

  test(`${api} stream: JSON mode escalates an answer that is no JSON`, () => {
    assert.deepEqual(feedStream(new CascadeGate(plan(), true, api), events(api, FAKE_ANSWERS.invalid_json!)).verdict, { pass: false, reason: 'invalid_json' });
    assert.deepEqual(feedStream(new CascadeGate(plan(), true, api), events(api, FAKE_ANSWERS.json!)).verdict, PASS);
  });

  test(`${api} stream: an in-band error after some text is an error`, () => {
    const stream = events(api, GOOD);
    // The start of the answer, then the shape's own in-band failure, as the fake's `x-fake-fault` sends it.
    const cut = stream.slice(0, api === 'responses' ? 6 : 5);
    const failure = api === 'responses' ? responsesErrorEvents(reply(GOOD), {}, 6, 'server_error', 'boom') : messagesErrorEvent(undefined, undefined);
    assert.deepEqual(feedStream(new CascadeGate(plan(), false, api), [...cut, failure]).verdict, { pass: false, reason: 'error' });
  });

  test(`${api} whole answer: refusal and short escalate, a good answer passes, an error body is an error`, () => {
    assert.deepEqual(feedBody(new CascadeGate(plan(), false, api), wholeBody(api, FAKE_ANSWERS.refusal!)), { pass: false, reason: 'refusal' });
    assert.deepEqual(feedBody(new CascadeGate(plan(), false, api), wholeBody(api, FAKE_ANSWERS.short!)), { pass: false, reason: 'short' });
    assert.deepEqual(feedBody(new CascadeGate(plan(), false, api), wholeBody(api, GOOD)), PASS);
    const error = api === 'responses' ? { id: 'r', status: 'failed', output: [], error: { code: 'server_error', message: 'x' } } : { type: 'error', error: { type: 'api_error', message: 'x' } };
    assert.deepEqual(feedBody(new CascadeGate(plan(), false, api), error), { pass: false, reason: 'error' });
  });
}

test('responses: a tool call passes unchecked, streamed or whole', () => {
  const stream = [
    'event: response.created\ndata: {"type":"response.created","response":{"status":"in_progress"}}\n\n',
    'event: response.output_item.added\ndata: {"type":"response.output_item.added","output_index":0,"item":{"type":"function_call","name":"lookup","arguments":""}}\n\n',
  ];
  const { verdict, events: fed } = feedStream(new CascadeGate(plan(), false, 'responses'), stream);
  assert.deepEqual(verdict, PASS);
  assert.equal(fed, 2);
  assert.deepEqual(feedBody(new CascadeGate(plan(), false, 'responses'), { output: [{ type: 'function_call', name: 'lookup', arguments: '{}' }] }), PASS);
});

test('messages: a tool call passes unchecked, streamed or whole; thinking starts the hold timer', () => {
  const gate = new CascadeGate(plan(), false, 'messages');
  assert.equal(gate.head(200, true), 'hold');
  assert.equal(gate.holdMs, undefined);
  assert.equal(gate.push(Buffer.from('event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"Let me see"}}\n\n')), undefined);
  assert.equal(gate.holdMs, 1500, 'reasoning is the first token');
  assert.deepEqual(gate.push(Buffer.from('event: content_block_start\ndata: {"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"t","name":"f","input":{}}}\n\n')), PASS);
  assert.deepEqual(feedBody(new CascadeGate(plan(), false, 'messages'), { content: [{ type: 'tool_use', id: 't', name: 'f', input: {} }] }), PASS);
});

test('a shape read as chat finds no answer: the api decides where the text is', () => {
  // The gate without its api (chat) sees no choices in a Messages body: no answer, an error.
  assert.deepEqual(feedBody(new CascadeGate(plan(), false), wholeBody('messages', GOOD)), { pass: false, reason: 'error' });
});

test('JSON mode is read through the chat view: Responses text.format asks for JSON, Messages has none', () => {
  assert.equal(asksJson(chatView('responses', { input: 'x', text: { format: { type: 'json_object' } } })), true);
  assert.equal(asksJson(chatView('responses', { input: 'x', text: { format: { type: 'json_schema', name: 's', schema: {} } } })), true);
  assert.equal(asksJson(chatView('responses', { input: 'x', text: { format: { type: 'text' } } })), false);
  assert.equal(asksJson(chatView('messages', { messages: [], response_format: { type: 'json_object' } })), false);
});
