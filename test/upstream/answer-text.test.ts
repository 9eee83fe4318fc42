import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createParser } from 'eventsource-parser';
import type { FakeUsage } from '../../src/dev/fake-openrouter.js';
import { messagesBody, messagesErrorEvent, messagesEvents, responsesBody, responsesErrorEvents, responsesEvents, type ShapeReply } from '../../src/dev/fake-shapes.js';
import { APIS, type Api } from '../../src/rules/shapes.js';
import { answerOfBody, answerOfEvent, type AnswerOfEvent } from '../../src/upstream/answer-text.js';

const USAGE: FakeUsage = {
  prompt_tokens: 10, completion_tokens: 3, total_tokens: 13, cost: 0.001, is_byok: false,
  prompt_tokens_details: { cached_tokens: 0, cache_write_tokens: 0 }, completion_tokens_details: { reasoning_tokens: 0 },
};

function reply(words: readonly string[]): ShapeReply {
  return { seq: 1, model: 'openai/gpt-4o-mini', words, truncated: false, usage: USAGE };
}

/** Every event of an SSE text through answerOfEvent, folded: the text, and whether any event was reasoning / a tool call / an error. */
function fold(api: Api, sseText: string): AnswerOfEvent {
  let text: string | undefined;
  let reasoning = false;
  let toolCall = false;
  let error = false;
  const parser = createParser({
    onEvent: (event) => {
      const a = answerOfEvent(api, event.event, JSON.parse(event.data));
      if (a.text !== undefined) text = (text ?? '') + a.text;
      reasoning ||= a.reasoning;
      toolCall ||= a.toolCall;
      error ||= a.error;
    },
  });
  parser.feed(sseText);
  return { text, reasoning, toolCall, error };
}

function sse(events: readonly Record<string, unknown>[]): string {
  return events.map((e) => `event: ${String(e.type)}\ndata: ${JSON.stringify(e)}\n\n`).join('');
}

test('chat: a whole answer is choices[0].message.content; tool_calls make a tool call', () => {
  assert.deepEqual(answerOfBody('chat', { choices: [{ message: { role: 'assistant', content: 'Hi there' } }] }), { text: 'Hi there', toolCall: false });
  assert.deepEqual(
    answerOfBody('chat', { choices: [{ message: { content: null, tool_calls: [{ id: 'c', type: 'function', function: { name: 'f', arguments: '{}' } }] } }] }),
    { text: undefined, toolCall: true },
  );
  assert.deepEqual(answerOfBody('chat', { choices: [{ message: { content: [{ type: 'text', text: 'x' }] } }] }), { text: undefined, toolCall: false });
});

test('chat: stream deltas give content, reasoning, tool calls and in-band errors', () => {
  assert.deepEqual(answerOfEvent('chat', undefined, { choices: [{ delta: { content: 'Hel' } }] }), { text: 'Hel', reasoning: false, toolCall: false, error: false });
  assert.equal(answerOfEvent('chat', undefined, { choices: [{ delta: { reasoning: 'hmm' } }] }).reasoning, true);
  assert.equal(answerOfEvent('chat', undefined, { choices: [{ delta: { tool_calls: [{ index: 0 }] } }] }).toolCall, true);
  assert.equal(answerOfEvent('chat', undefined, { error: { code: 502, message: 'x' }, choices: [] }).error, true);
  assert.equal(answerOfEvent('chat', undefined, { choices: [{ delta: { content: '' } }] }).text, undefined);
});

test('responses: the fake\'s whole answer and its stream give the same text', () => {
  const r = reply(['Paris ', 'is ', 'the ', 'capital.']);
  assert.deepEqual(answerOfBody('responses', responsesBody(r, {})), { text: 'Paris is the capital.', toolCall: false });
  assert.deepEqual(fold('responses', responsesEvents(r, {}).join('')), { text: 'Paris is the capital.', reasoning: false, toolCall: false, error: false });
});

test('responses: output_text parts of every message item are joined; a function_call item is a tool call; reasoning items are not text', () => {
  const body = {
    output: [
      { type: 'reasoning', summary: [{ type: 'summary_text', text: 'thinking' }] },
      { type: 'message', content: [{ type: 'output_text', text: 'a' }, { type: 'output_text', text: 'b' }] },
      { type: 'function_call', name: 'f', arguments: '{}' },
    ],
  };
  assert.deepEqual(answerOfBody('responses', body), { text: 'ab', toolCall: true });
  assert.deepEqual(answerOfBody('responses', { output: [{ type: 'function_call' }] }), { text: undefined, toolCall: true });
  assert.deepEqual(answerOfBody('responses', { output: [{ type: 'message', content: [{ type: 'refusal', refusal: 'I cannot help.' }] }] }).text, 'I cannot help.');
});

test('responses: stream events for reasoning, tool calls and failures', () => {
  const stream = sse([
    { type: 'response.reasoning_summary_text.delta', delta: 'let me think' },
    { type: 'response.output_item.added', item: { type: 'function_call', name: 'f' } },
    { type: 'response.function_call_arguments.delta', delta: '{"a":' },
  ]);
  assert.deepEqual(fold('responses', stream), { text: undefined, reasoning: true, toolCall: true, error: false });
  assert.equal(fold('responses', responsesErrorEvents(reply([]), {}, 3, 'server_error', 'boom')).error, true);
  assert.equal(answerOfEvent('responses', 'response.failed', { response: {} }).error, true, 'the event name when data has no type');
  assert.equal(answerOfEvent('responses', undefined, { type: 'response.refusal.delta', delta: 'I cannot' }).text, 'I cannot');
  assert.equal(answerOfEvent('responses', undefined, { type: 'response.output_item.added', item: { type: 'message' } }).toolCall, false);
});

test('messages: the fake\'s whole answer and its stream give the same text', () => {
  const r = reply(['Bonjour ', 'le ', 'monde']);
  assert.deepEqual(answerOfBody('messages', messagesBody(r)), { text: 'Bonjour le monde', toolCall: false });
  assert.deepEqual(fold('messages', messagesEvents(r).join('')), { text: 'Bonjour le monde', reasoning: false, toolCall: false, error: false });
});

test('messages: text blocks are joined; tool_use is a tool call; thinking is reasoning; error events fail', () => {
  assert.deepEqual(
    answerOfBody('messages', { content: [{ type: 'thinking', thinking: 'x' }, { type: 'text', text: 'a' }, { type: 'tool_use', id: 't', name: 'f', input: {} }, { type: 'text', text: 'b' }] }),
    { text: 'ab', toolCall: true },
  );
  assert.deepEqual(answerOfBody('messages', { type: 'error', error: { type: 'overloaded_error', message: 'x' } }), { text: undefined, toolCall: false });
  const stream = sse([
    { type: 'content_block_start', index: 0, content_block: { type: 'thinking', thinking: '' } },
    { type: 'content_block_delta', index: 0, delta: { type: 'thinking_delta', thinking: 'hmm' } },
    { type: 'content_block_start', index: 1, content_block: { type: 'tool_use', id: 't', name: 'f', input: {} } },
    { type: 'content_block_delta', index: 1, delta: { type: 'input_json_delta', partial_json: '{"a"' } },
  ]);
  assert.deepEqual(fold('messages', stream), { text: undefined, reasoning: true, toolCall: true, error: false });
  assert.equal(fold('messages', messagesErrorEvent(undefined, undefined)).error, true);
});

test('every shape is total over hostile JSON: wrong types are skipped, nothing throws', () => {
  const hostile: unknown[] = [
    null, 0, 'x', true, [], [1], {}, { choices: 'x' }, { choices: [null] }, { choices: [{ message: 7, delta: [] }] },
    { choices: [{ message: { content: 5, tool_calls: 'x' }, delta: { content: 5, reasoning: {}, tool_calls: {} } }] },
    { output: 'x' }, { output: [null, 5, { type: 'message', content: 'x' }, { type: 'message', content: [null, { type: 'output_text', text: 7 }] }] },
    { content: 'x' }, { content: [null, { type: 'text', text: {} }, { type: 'tool_use' }] },
    { type: 5 }, { type: 'content_block_delta', delta: 'x' }, { type: 'content_block_delta', delta: { type: 'text_delta', text: 9 } },
    { type: 'content_block_start', content_block: null }, { type: 'response.output_text.delta', delta: { a: 1 } },
    { type: 'response.output_item.added', item: 'function_call' }, { type: '__proto__' }, { type: 'constructor' },
  ];
  for (const api of APIS) {
    for (const value of hostile) {
      const body = answerOfBody(api, value);
      assert.ok(body.text === undefined || typeof body.text === 'string', `${api} ${JSON.stringify(value)}`);
      for (const name of [undefined, 'error', 'message_stop', 'toString']) {
        const event = answerOfEvent(api, name, value);
        assert.ok(event.text === undefined || (typeof event.text === 'string' && event.text.length > 0), `${api} ${JSON.stringify(value)}`);
      }
    }
  }
  assert.equal(answerOfBody('responses', { output: [{ type: 'message', content: [{ type: 'output_text', text: 7 }] }] }).text, undefined);
  assert.equal(answerOfBody('messages', { content: [{ type: 'tool_use' }] }).toolCall, true);
  assert.equal(answerOfEvent('messages', undefined, { type: 'content_block_delta', delta: { type: 'text_delta', text: 9 } }).text, undefined);
});
