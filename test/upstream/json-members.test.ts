import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { membersFromEnd, membersFromStart, topLevelMembers } from '../../src/upstream/json-members.js';

const WANTED = new Set(['usage', 'model', 'id']);

function fromStart(text: string, limit = Infinity): Record<string, unknown> {
  const found = new Map<string, unknown>();
  membersFromStart(Buffer.from(text), limit, WANTED, found);
  return Object.fromEntries(found);
}

function fromEnd(text: string, windowBytes = Infinity): Record<string, unknown> {
  const buf = Buffer.from(text);
  const found = new Map<string, unknown>();
  membersFromEnd(buf, buf.length - windowBytes, WANTED, found);
  return Object.fromEntries(found);
}

/** Tricky but valid JSON: each walk must find exactly what JSON.parse finds at the top level. */
const TRICKY: readonly string[] = [
  '{"model":"m","usage":{"prompt_tokens":1}}',
  ' \r\n\t{ "model" : "m" ,\n "usage" : { "prompt_tokens" : 1 } } \n',
  // strings that contain member names, quotes, brackets and escaped backslashes before quotes
  '{"text":"\\"usage\\":{\\"prompt_tokens\\":9}","model":"m","note":"ends in a backslash \\\\","usage":{"prompt_tokens":2}}',
  '{"a":"\\\\\\"","id":"gen-\\"1\\"","b":"}]{[","usage":{"usage":{"prompt_tokens":7},"prompt_tokens":3}}',
  // nested objects and arrays with the same names are not top-level members
  '{"choices":[{"model":"nested","usage":{"prompt_tokens":8}}],"data":{"id":"inner"},"model":"outer"}',
  // escapes in names and values, non-ASCII text, numbers, literals
  '{"mod\\u0065l":"m\\u00e9 🌍","id":"é","n":-1.5e+3,"t":true,"f":false,"z":null,"usage":{"prompt_tokens":4}}',
  '{"usage":null,"model":12,"id":[1,2,{"x":"]"}]}',
  '{}',
  '{"model":"first","model":"last"}',
];

for (const text of TRICKY) {
  test(`top-level members of ${text.slice(0, 60)}`, () => {
    const parsed = JSON.parse(text) as Record<string, unknown>;
    const expected = Object.fromEntries([...WANTED].filter((k) => k in parsed).map((k) => [k, parsed[k]]));
    assert.deepEqual(fromEnd(text), expected, 'walking backwards');
    assert.deepEqual(Object.fromEntries(topLevelMembers(Buffer.from(text), WANTED, 1 << 20)), expected, 'both walks');
    if (!text.includes('"first"')) assert.deepEqual(fromStart(text), expected, 'walking forwards');
  });
}

test('members beyond a window are not read, and a cut member is not misread', () => {
  const big = `{"model":"m","data":"${'x'.repeat(10_000)}","usage":{"prompt_tokens":5}}`;
  assert.deepEqual(fromStart(big, 1000), { model: 'm' });
  assert.deepEqual(fromEnd(big, 1000), { usage: { prompt_tokens: 5 } });
  // The window ends inside the usage value, or just after a quote whose escaping cannot be known.
  assert.deepEqual(fromEnd(big, 10), {});
  assert.deepEqual(fromEnd('{"model":"\\\\"}', 3), {});
  assert.deepEqual(fromStart('{"model":"m","usage":{"prompt_tokens":5}}', 30), { model: 'm' });
  // A model behind a huge member from both ends is not found.
  const middle = `{"a":"${'x'.repeat(5000)}","model":"m","b":"${'y'.repeat(5000)}"}`;
  assert.deepEqual(Object.fromEntries(topLevelMembers(Buffer.from(middle), WANTED, 1000)), {});
});

test('malformed and hostile text gives no members, never a throw, in bounded time', () => {
  const hostile = [
    '', '   ', '[1,2]', 'null', '"usage"', '{', '}', '{"usage"', '{"usage":}', '{"usage":{"a":1}', '"usage":{"a":1}}',
    '{"usage":{"a":1}}}', '{{"usage":1}}', '{"a" "b"}', '{,"usage":1}', '{"usage":1,}', '\\"usage\\":1}',
    `{"x":${'['.repeat(100_000)}`, `${']'.repeat(100_000)}}`, `{"x":"${'\\'.repeat(100_001)}`, '{"usage":1 2}',
  ];
  for (const text of hostile) {
    assert.doesNotThrow(() => {
      fromStart(text);
      fromEnd(text);
    }, text.slice(0, 40));
  }
  assert.deepEqual(fromStart('{"a":1,"usage":{"prompt_tokens":1},'), { usage: { prompt_tokens: 1 } }, 'members before the fault are read');
});

test('any string value or member name reads as JSON.parse reads it (the plain-ASCII shortcut included)', () => {
  fc.assert(fc.property(fc.string({ unit: 'binary' }), fc.string({ unit: 'grapheme-ascii' }), fc.string({ unit: 'binary', maxLength: 8 }), (model, id, name) => {
    const text = JSON.stringify({ [name]: 1, model, id, usage: { prompt_tokens: 1 } });
    const parsed = JSON.parse(text) as Record<string, unknown>;
    const expected = Object.fromEntries([...WANTED].map((k) => [k, parsed[k]]));
    assert.deepEqual(fromEnd(text), expected);
    assert.deepEqual(fromStart(text), expected);
  }), { numRuns: 500, seed: 13 });
});
