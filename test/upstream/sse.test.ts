import assert from 'node:assert/strict';
import { test } from 'node:test';
import { endsAtEventBoundary, sseErrorEvent } from '../../src/upstream/sse.js';

/**
 * A minimal SSE parser after the WHATWG event-stream interpretation: returns the data of every
 * dispatched event and whatever is still pending (an event with no blank line after it yet).
 */
function parseSse(text: string): { events: string[]; pending: string[] } {
  const events: string[] = [];
  let data: string[] = [];
  const lines = text.split(/\r\n|\r|\n/);
  // The piece after the last line end is an unterminated line, not a line.
  const unterminated = lines.pop() ?? '';
  for (const line of lines) {
    if (line === '') {
      if (data.length > 0) events.push(data.join('\n'));
      data = [];
    } else if (line.startsWith('data:')) {
      data.push(line.slice(5).replace(/^ /, ''));
    }
  }
  return { events, pending: unterminated === '' ? data : [...data, unterminated] };
}

const FIELDS = { id: 'gen-signalbox-req-1', model: 'openai/gpt-4o-mini', code: 'upstream_timeout', message: 'Upstream timeout: 150 ms elapsed' };

interface ErrorChunk {
  id: string;
  object: string;
  model: string;
  error: { code: string; message: string };
  choices: { index: number; finish_reason: string }[];
}

/** The client's view of `tail` followed by the error event: the last event must be ours, nothing pending. */
function errorEventAfter(tail: string | undefined): ErrorChunk {
  const out = sseErrorEvent(FIELDS, tail === undefined ? undefined : Buffer.from(tail, 'latin1'));
  const { events, pending } = parseSse((tail ?? '') + out.toString('utf8'));
  assert.deepEqual(pending, [], 'the error event must be complete');
  return JSON.parse(events[events.length - 1]!) as ErrorChunk;
}

function boundary(s: string | undefined): boolean {
  return endsAtEventBoundary(s === undefined ? undefined : Buffer.from(s, 'latin1'));
}

test('endsAtEventBoundary: true after a blank line in each line-end style', () => {
  assert.equal(boundary('data: {"a":1}\n\n'), true);
  assert.equal(boundary('data: {"a":1}\r\n\r\n'), true);
  assert.equal(boundary('data: {"a":1}\r\r'), true);
  assert.equal(boundary(': OPENROUTER PROCESSING\n\n'), true);
  assert.equal(boundary('\n\n'), true);
});

test('endsAtEventBoundary: false inside a line', () => {
  assert.equal(boundary('data: {"choices":[{"del'), false);
});

test('endsAtEventBoundary: false after a line end without a blank line', () => {
  assert.equal(boundary('data: {"a":1}\n'), false);
  assert.equal(boundary('data: {"a":1}\r\n'), false);
  assert.equal(boundary('data: {"a":1}\r'), false);
});

test('endsAtEventBoundary: true for an empty or missing tail (nothing written yet)', () => {
  assert.equal(boundary(''), true);
  assert.equal(boundary(undefined), true);
});

test('sseErrorEvent: is exactly one data event carrying the error and finish_reason error', () => {
  const text = sseErrorEvent(FIELDS, undefined).toString('utf8');
  assert.match(text, /^data: [^\r\n]+\n\n$/);
  const { events, pending } = parseSse(text);
  assert.equal(events.length, 1);
  assert.deepEqual(pending, []);
  const chunk = JSON.parse(events[0]!) as ErrorChunk;
  assert.equal(chunk.id, FIELDS.id);
  assert.equal(chunk.object, 'chat.completion.chunk');
  assert.equal(chunk.model, FIELDS.model);
  assert.deepEqual(chunk.error, { code: FIELDS.code, message: FIELDS.message });
  assert.equal(chunk.choices.length, 1);
  assert.equal(chunk.choices[0]!.finish_reason, 'error');
});

test('sseErrorEvent: model defaults to "unknown" when not known', () => {
  const chunk = JSON.parse(parseSse(sseErrorEvent({ ...FIELDS, model: undefined }, undefined).toString('utf8')).events[0]!) as ErrorChunk;
  assert.equal(chunk.model, 'unknown');
});

test('sseErrorEvent: no prefix when the tail ends an event', () => {
  for (const tail of ['data: {"a":1}\n\n', 'data: {"a":1}\r\n\r\n', 'data: {"a":1}\r\r', '']) {
    assert.ok(sseErrorEvent(FIELDS, Buffer.from(tail)).toString('utf8').startsWith('data: '), JSON.stringify(tail));
    assert.equal(errorEventAfter(tail).error.code, FIELDS.code);
  }
  assert.ok(sseErrorEvent(FIELDS, undefined).toString('utf8').startsWith('data: '));
});

test('sseErrorEvent: a \\n\\n prefix closes an event the tail left half-written', () => {
  for (const tail of ['data: {"choices":[{"del', 'data: {"a":1}\n', 'data: {"a":1}\r\n']) {
    const text = sseErrorEvent(FIELDS, Buffer.from(tail)).toString('utf8');
    assert.ok(text.startsWith('\n\ndata: '), JSON.stringify(tail));
    const chunk = errorEventAfter(tail);
    assert.equal(chunk.error.code, FIELDS.code);
    assert.equal(chunk.choices[0]!.finish_reason, 'error');
  }
});
