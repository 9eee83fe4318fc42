import assert from 'node:assert/strict';
import { test } from 'node:test';
import { InvalidMessagesError } from '../../src/errors.js';
import { invalidMessages, type JsonObject } from '../../src/rules/decision.js';

test('invalidMessages: a non-empty list of message objects is routable', () => {
  assert.equal(invalidMessages({ messages: [{ role: 'user', content: 'hi' }] }), undefined);
  assert.equal(invalidMessages({ messages: [{}, { role: 'user', content: [{ type: 'text', text: 'hi' }] }] }), undefined);
});

test('invalidMessages: anything else is a 400 invalid_messages naming the position and kind, not the content', () => {
  const cases: [JsonObject, string][] = [
    [{}, 'Invalid messages: `messages` is required: a non-empty array of message objects'],
    [{ messages: 'secret prompt' }, 'Invalid messages: `messages` must be a non-empty array of message objects, not a string'],
    [{ messages: null }, 'Invalid messages: `messages` must be a non-empty array of message objects, not null'],
    [{ messages: { role: 'user' } }, 'Invalid messages: `messages` must be a non-empty array of message objects, not an object'],
    [{ messages: [] }, 'Invalid messages: `messages` must not be empty'],
    [{ messages: [null] }, 'Invalid messages: `messages[0]` must be a message object, not null'],
    [{ messages: [{ role: 'user' }, 'secret prompt'] }, 'Invalid messages: `messages[1]` must be a message object, not a string'],
    [{ messages: [{ role: 'user' }, [{ role: 'user' }]] }, 'Invalid messages: `messages[1]` must be a message object, not an array'],
    [{ messages: [7] }, 'Invalid messages: `messages[0]` must be a message object, not a number'],
  ];
  for (const [body, message] of cases) {
    const error = invalidMessages(body);
    assert.ok(error instanceof InvalidMessagesError, JSON.stringify(body));
    assert.equal(error.message, message);
    assert.equal(error.code, 'invalid_messages');
    assert.equal(error.status, 400);
    assert.equal(error.type, 'invalid_request_error');
  }
});
