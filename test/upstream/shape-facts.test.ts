import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createParser } from 'eventsource-parser';
import type { InbandError, TokenUsage } from '../../src/upstream/response-tap.js';
import {
  MessagesUsageAccumulator, messagesBodyFacts, messagesErrorEvent, messagesEventFacts, responsesBodyFacts, responsesErrorEvent,
  responsesEventFacts, shapeEventFacts, type ShapeApi,
} from '../../src/upstream/shape-facts.js';

const MODEL = 'anthropic/claude-sonnet-4';

/** SSE text as the upstream writes it: `event:` and `data:` lines. */
function sse(events: readonly Record<string, unknown>[]): string {
  return events.map((e) => `event: ${e.type as string}\ndata: ${JSON.stringify(e)}\n\n`).join('');
}

interface Folded {
  id: string | undefined;
  model: string | undefined;
  usage: TokenUsage | undefined;
  finishReason: string | undefined;
  contentEvents: number;
  terminal: boolean;
  inbandError: InbandError | undefined;
}

/** Parses SSE text and folds its events' facts as a tap would (Messages usage through the accumulator). */
function foldStream(api: ShapeApi, text: string): Folded {
  const out: Folded = { id: undefined, model: undefined, usage: undefined, finishReason: undefined, contentEvents: 0, terminal: false, inbandError: undefined };
  const acc = new MessagesUsageAccumulator();
  const parser = createParser({
    onEvent: (event) => {
      let data: unknown;
      try {
        data = JSON.parse(event.data);
      } catch {
        return;
      }
      const f = shapeEventFacts(api, event.event, data);
      out.id ??= f.id;
      out.model ??= f.model;
      if (api === 'messages') {
        acc.add(data);
        out.usage = acc.usage;
      } else if (f.usage !== undefined) {
        out.usage = f.usage;
      }
      out.finishReason = f.finishReason ?? out.finishReason;
      if (f.content) out.contentEvents++;
      out.terminal ||= f.terminal;
      out.inbandError = f.inbandError ?? out.inbandError;
    },
  });
  parser.feed(text);
  return out;
}

// ------------------------------------------------------------------ Responses

const RESPONSE_BASE = { id: 'gen-resp-1', object: 'response', created_at: 1_760_000_000, model: 'openai/gpt-4o-mini', output: [], error: null, incomplete_details: null };
const RESPONSES_USAGE = {
  input_tokens: 120, input_tokens_details: { cached_tokens: 100 }, output_tokens: 40, output_tokens_details: { reasoning_tokens: 16 }, total_tokens: 160,
  cost: 0.00021, is_byok: false,
};
const RESPONSES_EXPECTED: TokenUsage = { prompt: 120, completion: 40, reasoning: 16, cached: 100, cacheWrite: 0, cost: 0.00021, upstreamInferenceCost: undefined, byok: false };

function responsesStream(terminal: Record<string, unknown> | undefined): string {
  const events: Record<string, unknown>[] = [
    { type: 'response.created', sequence_number: 0, response: { ...RESPONSE_BASE, status: 'in_progress', usage: null } },
    { type: 'response.in_progress', sequence_number: 1, response: { ...RESPONSE_BASE, status: 'in_progress', usage: null } },
    { type: 'response.output_item.added', sequence_number: 2, output_index: 0, item: { id: 'msg_1', type: 'message', status: 'in_progress', role: 'assistant', content: [] } },
    { type: 'response.content_part.added', sequence_number: 3, item_id: 'msg_1', output_index: 0, content_index: 0, part: { type: 'output_text', text: '', annotations: [] } },
    { type: 'response.output_text.delta', sequence_number: 4, item_id: 'msg_1', output_index: 0, content_index: 0, delta: 'Hel' },
    { type: 'response.output_text.delta', sequence_number: 5, item_id: 'msg_1', output_index: 0, content_index: 0, delta: 'lo' },
    { type: 'response.output_text.done', sequence_number: 6, item_id: 'msg_1', output_index: 0, content_index: 0, text: 'Hello' },
  ];
  if (terminal !== undefined) events.push(terminal);
  return sse(events);
}

test('Responses stream: id and model from response.created, usage (cached and reasoning) and status from response.completed, content from the text deltas', () => {
  const folded = foldStream('responses', responsesStream({ type: 'response.completed', sequence_number: 7, response: { ...RESPONSE_BASE, status: 'completed', usage: RESPONSES_USAGE } }));
  assert.deepEqual(folded, {
    id: 'gen-resp-1', model: 'openai/gpt-4o-mini', usage: RESPONSES_EXPECTED, finishReason: 'completed', contentEvents: 2, terminal: true, inbandError: undefined,
  });
});

test('Responses stream cut before its terminal event: no usage, not terminal', () => {
  const folded = foldStream('responses', responsesStream(undefined));
  assert.equal(folded.terminal, false);
  assert.equal(folded.usage, undefined);
  assert.equal(folded.finishReason, undefined);
  assert.equal(folded.contentEvents, 2);
});

test('Responses stream: response.incomplete gives incomplete_details.reason; response.failed its error; an error event its code', () => {
  const incomplete = foldStream('responses', responsesStream({
    type: 'response.incomplete', sequence_number: 7, response: { ...RESPONSE_BASE, status: 'incomplete', incomplete_details: { reason: 'max_output_tokens' }, usage: RESPONSES_USAGE },
  }));
  assert.equal(incomplete.finishReason, 'max_output_tokens');
  assert.equal(incomplete.terminal, true);
  assert.deepEqual(incomplete.usage, RESPONSES_EXPECTED);

  const failed = foldStream('responses', responsesStream({
    type: 'response.failed', sequence_number: 7, response: { ...RESPONSE_BASE, status: 'failed', error: { code: 'server_error', message: 'The model failed' }, usage: null },
  }));
  assert.deepEqual(failed.inbandError, { code: 'server_error', message: 'The model failed' });
  assert.equal(failed.finishReason, 'failed');
  assert.equal(failed.terminal, true);

  const errorEvent = responsesEventFacts('error', { type: 'error', code: null, message: 'Rate limited', param: null, sequence_number: 3 });
  assert.deepEqual(errorEvent.inbandError, { code: 'error', message: 'Rate limited' });
  assert.equal(errorEvent.terminal, false);
});

test('Responses: reasoning and tool-call argument deltas are content; empty deltas and other events are not', () => {
  assert.equal(responsesEventFacts(undefined, { type: 'response.function_call_arguments.delta', delta: '{"city"' }).content, true);
  assert.equal(responsesEventFacts(undefined, { type: 'response.reasoning_summary_text.delta', delta: 'Thinking' }).content, true);
  assert.equal(responsesEventFacts(undefined, { type: 'response.output_text.delta', delta: '' }).content, false);
  assert.equal(responsesEventFacts(undefined, { type: 'response.output_text.delta', delta: { toString: 1 } }).content, false);
  assert.equal(responsesEventFacts(undefined, { type: 'response.output_item.added', item: {} }).content, false);
  // The SSE event name is used when the data has no type.
  assert.equal(responsesEventFacts('response.output_text.delta', { delta: 'x' }).content, true);
});

test('Responses non-streaming body: id, model, usage, status', () => {
  const facts = responsesBodyFacts({ ...RESPONSE_BASE, status: 'completed', usage: { ...RESPONSES_USAGE, is_byok: true, cost_details: { upstream_inference_cost: 0.002 } } });
  assert.deepEqual(facts, {
    id: 'gen-resp-1', model: 'openai/gpt-4o-mini', usage: { ...RESPONSES_EXPECTED, byok: true, upstreamInferenceCost: 0.002 },
    finishReason: 'completed', content: false, terminal: false, inbandError: undefined,
  });
  assert.deepEqual(responsesBodyFacts({ ...RESPONSE_BASE, status: 'failed', error: { code: 502, message: 'Provider down' } }).inbandError, { code: '502', message: 'Provider down' });
});

// ------------------------------------------------------------------ Messages

function messagesStream(withStop: boolean): string {
  const events: Record<string, unknown>[] = [
    {
      type: 'message_start',
      message: {
        id: 'gen-msg-1', type: 'message', role: 'assistant', model: MODEL, content: [], stop_reason: null, stop_sequence: null,
        usage: { input_tokens: 25, cache_read_input_tokens: 1000, cache_creation_input_tokens: 200, output_tokens: 1 },
      },
    },
    { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } },
    { type: 'ping' },
    { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'Hello' } },
    { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: '!' } },
    { type: 'content_block_stop', index: 0 },
    { type: 'content_block_start', index: 1, content_block: { type: 'tool_use', id: 'toolu_1', name: 'get_weather', input: {} } },
    { type: 'content_block_delta', index: 1, delta: { type: 'input_json_delta', partial_json: '' } },
    { type: 'content_block_delta', index: 1, delta: { type: 'input_json_delta', partial_json: '{"city": "Paris"}' } },
    { type: 'content_block_stop', index: 1 },
    { type: 'message_delta', delta: { stop_reason: 'tool_use', stop_sequence: null }, usage: { output_tokens: 89, cost: 0.0042 } },
  ];
  if (withStop) events.push({ type: 'message_stop' });
  return sse(events);
}

const MESSAGES_EXPECTED: TokenUsage = { prompt: 1225, completion: 89, reasoning: 0, cached: 1000, cacheWrite: 200, cost: 0.0042, upstreamInferenceCost: undefined, byok: false };

test('Messages stream: input and cache counts from message_start and output from message_delta merge; prompt counts cached tokens', () => {
  assert.deepEqual(foldStream('messages', messagesStream(true)), {
    id: 'gen-msg-1', model: MODEL, usage: MESSAGES_EXPECTED, finishReason: 'tool_use', contentEvents: 3, terminal: true, inbandError: undefined,
  });
});

test('Messages stream cut before message_stop is not terminal, and keeps the usage it saw', () => {
  const folded = foldStream('messages', messagesStream(false));
  assert.equal(folded.terminal, false);
  assert.deepEqual(folded.usage, MESSAGES_EXPECTED);
  // Cut right after message_start: the input counts, the early output count.
  const early = foldStream('messages', messagesStream(false).split('\n\n')[0]! + '\n\n');
  assert.deepEqual(early.usage, { ...MESSAGES_EXPECTED, completion: 1, cost: undefined });
});

test('Messages accumulator: a later message_delta that repeats input counts replaces them; one without keeps them', () => {
  const acc = new MessagesUsageAccumulator();
  assert.equal(acc.usage, undefined);
  acc.add({ type: 'message_start', message: { usage: { input_tokens: 10, output_tokens: 1 } } });
  acc.add({ type: 'message_delta', usage: { output_tokens: 5 } });
  acc.add({ type: 'message_delta', usage: { input_tokens: 12, cache_read_input_tokens: 3, output_tokens: 7, is_byok: true } });
  acc.add({ type: 'content_block_delta', usage: { output_tokens: 999 } });
  acc.add(null);
  assert.deepEqual(acc.usage, { prompt: 15, completion: 7, reasoning: 0, cached: 3, cacheWrite: 0, cost: undefined, upstreamInferenceCost: undefined, byok: true });
});

test('Messages: an error event mid-stream is an in-band error with Anthropic\'s type as its code', () => {
  const text = messagesStream(false).split('\n\n').slice(0, 4).join('\n\n') + '\n\n'
    + sse([{ type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } }]);
  const folded = foldStream('messages', text);
  assert.deepEqual(folded.inbandError, { code: 'overloaded_error', message: 'Overloaded' });
  assert.equal(folded.terminal, false);
  assert.equal(folded.contentEvents, 1);
});

test('Messages: thinking deltas are content; empty, signature and non-string deltas are not', () => {
  assert.equal(messagesEventFacts(undefined, { type: 'content_block_delta', delta: { type: 'thinking_delta', thinking: 'Hmm' } }).content, true);
  assert.equal(messagesEventFacts(undefined, { type: 'content_block_delta', delta: { type: 'signature_delta', signature: 'abc' } }).content, false);
  assert.equal(messagesEventFacts(undefined, { type: 'content_block_delta', delta: { type: 'text_delta', text: '' } }).content, false);
  assert.equal(messagesEventFacts(undefined, { type: 'content_block_delta', delta: { type: 'text_delta', text: ['x'] } }).content, false);
  assert.equal(messagesEventFacts(undefined, { type: 'content_block_delta', delta: 'x' }).content, false);
});

test('Messages non-streaming body: usage with cache counts, stop_reason; an error body', () => {
  const facts = messagesBodyFacts({
    id: 'gen-msg-2', type: 'message', role: 'assistant', model: MODEL, content: [{ type: 'text', text: 'Hi' }], stop_reason: 'end_turn', stop_sequence: null,
    usage: { input_tokens: 25, cache_read_input_tokens: 1000, cache_creation_input_tokens: 200, output_tokens: 89, cost: 0.0042 },
  });
  assert.deepEqual(facts, { id: 'gen-msg-2', model: MODEL, usage: MESSAGES_EXPECTED, finishReason: 'end_turn', content: false, terminal: false, inbandError: undefined });
  assert.deepEqual(messagesBodyFacts({ type: 'error', error: { type: 'invalid_request_error', message: 'bad' } }).inbandError, { code: 'invalid_request_error', message: 'bad' });
});

// ------------------------------------------------------------------ hostile input

const HOSTILE_VALUES: unknown[] = [
  null, undefined, 0, -1, 1e308, Number.NaN, 'x', true, [], [1, 2], { toString: 'x', valueOf: 1 }, Object.create(null),
  { type: { toString: 1 } }, { type: '__proto__' }, { type: 'constructor' },
];

test('every reader is total over hostile JSON: wrong types skipped, never thrown', () => {
  const types = ['response.created', 'response.completed', 'response.failed', 'response.incomplete', 'response.output_text.delta', 'error',
    'message_start', 'message_delta', 'message_stop', 'content_block_delta', 'toString', undefined];
  for (const v of HOSTILE_VALUES) {
    responsesBodyFacts(v);
    messagesBodyFacts(v);
    new MessagesUsageAccumulator().add(v);
    for (const type of types) {
      for (const data of [v, { type, response: v, message: v, usage: v, delta: v, error: v }, { type, response: { usage: v, error: v, status: v, incomplete_details: v, id: v, model: v } },
        { type, message: { usage: v, id: v, model: v, stop_reason: v } }, { type, delta: { stop_reason: v, text: v }, usage: { output_tokens: v, input_tokens: v, cost: v } }]) {
        responsesEventFacts(type, data);
        messagesEventFacts(type, data);
        const acc = new MessagesUsageAccumulator();
        acc.add(data);
        void acc.usage;
      }
    }
  }
});

test('counts as the chat tap treats them: negative, non-finite and wrong-typed counts are 0; costs undefined; huge sums stay finite', () => {
  const hostile = { input_tokens: -5, output_tokens: '7', input_tokens_details: { cached_tokens: Number.POSITIVE_INFINITY }, output_tokens_details: [], cost: -1, is_byok: 'yes' };
  assert.deepEqual(responsesBodyFacts({ usage: hostile }).usage, { prompt: 0, completion: 0, reasoning: 0, cached: 0, cacheWrite: 0, cost: undefined, upstreamInferenceCost: undefined, byok: false });
  const huge = messagesBodyFacts({ usage: { input_tokens: Number.MAX_VALUE, cache_read_input_tokens: Number.MAX_VALUE, output_tokens: { n: 1 } } }).usage!;
  assert.equal(huge.prompt, Number.MAX_VALUE);
  assert.equal(huge.completion, 0);
  // Overlong names and error messages are clipped.
  const long = 'm'.repeat(10_000);
  const facts = messagesEventFacts('message_start', { type: 'message_start', message: { id: long, model: long } });
  assert.ok(facts.model!.length < 300 && facts.id!.length < 300);
  const err = messagesEventFacts('error', { type: 'error', error: { type: long, message: long } }).inbandError!;
  assert.ok(err.code.length < 300 && err.message.length < 1100);
});

// ------------------------------------------------------------------ the proxy's own error events

/** The events in SSE bytes, as a client's parser sees them. */
function eventsIn(bytes: Buffer): { event: string | undefined; data: unknown }[] {
  const events: { event: string | undefined; data: unknown }[] = [];
  createParser({ onEvent: (e) => events.push({ event: e.event, data: JSON.parse(e.data) as unknown }) }).feed(bytes.toString('utf8'));
  return events;
}

test('messagesErrorEvent: Anthropic\'s error event, read back as an in-band error; message bounded', () => {
  const bytes = messagesErrorEvent('api_error', 'Upstream stalled');
  assert.equal(bytes.toString('utf8'), 'event: error\ndata: {"type":"error","error":{"type":"api_error","message":"Upstream stalled"}}\n\n');
  const [event] = eventsIn(bytes);
  assert.deepEqual(messagesEventFacts(event!.event, event!.data).inbandError, { code: 'api_error', message: 'Upstream stalled' });
  assert.ok(messagesErrorEvent('api_error', 'x'.repeat(100_000)).length < 2000);
});

test('responsesErrorEvent: a terminal response.failed carrying the error, read back by the tap', () => {
  const bytes = responsesErrorEvent('upstream_timeout', 'No bytes for 30 s', { id: 'gen-resp-1', model: 'openai/gpt-4o-mini' });
  const events = eventsIn(bytes);
  assert.equal(events.length, 1);
  assert.equal(events[0]!.event, 'response.failed');
  const facts = responsesEventFacts(events[0]!.event, events[0]!.data);
  assert.deepEqual(facts, {
    id: 'gen-resp-1', model: 'openai/gpt-4o-mini', usage: undefined, finishReason: 'failed', content: false, terminal: true,
    inbandError: { code: 'upstream_timeout', message: 'No bytes for 30 s' },
  });
  assert.ok(responsesErrorEvent('c', 'x'.repeat(100_000)).length < 2000);
  assert.equal((eventsIn(responsesErrorEvent('c', 'm', { sequenceNumber: 42 }))[0]!.data as { sequence_number: unknown }).sequence_number, 42);
});

test('the error events first end an event the stream left half-written', () => {
  const half = Buffer.from('event: content_block_delta\ndata: {"type":"content_block_delta","delta":{"type":"text_delta","text":"Hel');
  const bytes = messagesErrorEvent('api_error', 'cut', half);
  assert.ok(bytes.toString('utf8').startsWith('\n\nevent: error\n'));
  const afterWhole = responsesErrorEvent('c', 'm', {}, Buffer.from('data: {}\n\n'));
  assert.ok(afterWhole.toString('utf8').startsWith('event: response.failed\n'));
  // The half event is dropped by the client's parser (invalid JSON); the error event is read whole.
  const events: string[] = [];
  createParser({ onEvent: (e) => events.push(e.event ?? '') }).feed(Buffer.concat([half, bytes]).toString('utf8'));
  assert.deepEqual(events, ['content_block_delta', 'error']);
});

test('a Messages error body in OpenRouter\'s OpenAI-style envelope is an error too', () => {
  assert.deepEqual(messagesBodyFacts({ error: { code: 402, message: 'Insufficient credits' } }).inbandError, { code: '402', message: 'Insufficient credits' });
});
