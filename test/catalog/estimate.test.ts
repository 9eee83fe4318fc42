import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  completionAllowance, conservativeJsonTokens, conservativePromptTokens, conservativeTextTokens, contextNeeded,
  DEFAULT_COMPLETION_TOKENS, IMAGE_PART_TOKENS, MESSAGE_OVERHEAD_TOKENS, PROMPT_MARGIN, REPLY_PRIMING_TOKENS,
} from '../../src/catalog/estimate.js';
import type { JsonObject } from '../../src/rules/decision.js';
import { estimatePromptTokens } from '../../src/rules/fields.js';
import { TOKEN_SAMPLE } from './token-sample.js';

/** The most the estimate may be over the true count on the sample and still be useful. */
const MAX_RATIO = 2.5;

test('the estimate is at least the true count on every sample body, and at most 2.5 times it (docs/token-estimate.md)', () => {
  assert.ok(TOKEN_SAMPLE.length >= 15);
  for (const sample of TOKEN_SAMPLE) {
    const truth = Math.max(sample.o200k, sample.cl100k);
    const estimate = conservativePromptTokens(sample.body);
    assert.ok(estimate >= truth, `${sample.name}: estimate ${estimate} < true ${truth}`);
    assert.ok(estimate <= MAX_RATIO * truth, `${sample.name}: estimate ${estimate} > ${MAX_RATIO} x true ${truth}`);
  }
});

test('the sample covers English, code, Chinese, Japanese, mixed text and tools', () => {
  const names = TOKEN_SAMPLE.map((s) => s.name).join('\n');
  for (const kind of [/english/, /code/, /Chinese/, /Japanese/, /mixed/, /tools/]) assert.match(names, kind);
});

test('the cheap routing estimate request.tokens stays distinct: it under-counts CJK, the conservative one does not', () => {
  const chinese = TOKEN_SAMPLE.find((s) => s.name === 'Chinese')!;
  assert.ok(estimatePromptTokens(chinese.body) < chinese.o200k);
  assert.ok(conservativePromptTokens(chinese.body) >= chinese.cl100k);
});

test('text: letters by pieces of 4 split at case changes, digits by 3, punctuation and line breaks 1, a single space free', () => {
  assert.equal(conservativeTextTokens(''), 0);
  assert.equal(conservativeTextTokens('the'), 1);
  assert.equal(conservativeTextTokens('hello'), 2);
  assert.equal(conservativeTextTokens('Hello world'), 4);
  assert.equal(conservativeTextTokens('camelCase'), 3); // camel + Case
  assert.equal(conservativeTextTokens('HTTPServer'), 5); // all-capital pieces by 2: HTTPS (3) + erver (2)
  assert.equal(conservativeTextTokens('URGENT'), 3);
  assert.equal(conservativeTextTokens('A'), 1);
  assert.equal(conservativeTextTokens('1234567'), 3);
  assert.equal(conservativeTextTokens('a.b'), 3);
  assert.equal(conservativeTextTokens('a\nb'), 3);
  assert.equal(conservativeTextTokens('a    b'), 3); // a run of spaces costs 1
});

test('text: wide scripts 1.5 tokens a code unit (emoji 3), other non-ASCII 1 a character', () => {
  assert.equal(conservativeTextTokens('中'), 2);
  assert.equal(conservativeTextTokens('中文'), 3);
  assert.equal(conservativeTextTokens('ひらがな'), 6);
  assert.equal(conservativeTextTokens('한국어'), 5);
  assert.equal(conservativeTextTokens('ภาษาไทย'), Math.ceil(7 * 1.5));
  assert.equal(conservativeTextTokens('😀'), 3);
  assert.equal(conservativeTextTokens('Привет'), 6);
  assert.equal(conservativeTextTokens('é'), 1);
  assert.equal(conservativeTextTokens('Ωמ'), 3); // Greek, Hebrew: 1.5
  assert.equal(conservativeTextTokens('∑'), 3); // other three-byte characters: one token a byte
  assert.equal(conservativeTextTokens('────'), 3 + 1 + 1 + 1); // a repeat merges
});

test('a message costs its framing, role, name and content; the reply priming once; then the margin', () => {
  const raw = MESSAGE_OVERHEAD_TOKENS + conservativeTextTokens('user') + 1 + conservativeTextTokens('ana')
    + conservativeTextTokens('hi there') + REPLY_PRIMING_TOKENS;
  assert.equal(conservativePromptTokens({ messages: [{ role: 'user', name: 'ana', content: 'hi there' }] }), Math.ceil(raw * PROMPT_MARGIN));
  assert.equal(conservativePromptTokens({ messages: [] }), 0);
  assert.equal(conservativePromptTokens({}), 0);
});

test('an image part costs IMAGE_PART_TOKENS whatever its URL, which is never read', () => {
  const withImage = (url: string): JsonObject => ({ messages: [{ role: 'user', content: [{ type: 'text', text: 'what is this?' }, { type: 'image_url', image_url: { url } }] }] });
  const small = conservativePromptTokens(withImage('https://example.com/a.png'));
  const huge = conservativePromptTokens(withImage(`data:image/png;base64,${'A'.repeat(1_000_000)}`));
  assert.equal(small, huge);
  const textOnly = conservativePromptTokens({ messages: [{ role: 'user', content: [{ type: 'text', text: 'what is this?' }] }] });
  assert.ok(small - textOnly >= IMAGE_PART_TOKENS);
  assert.ok(small - textOnly <= Math.ceil(IMAGE_PART_TOKENS * PROMPT_MARGIN) + 1);
  const inputImage = conservativePromptTokens({ messages: [{ role: 'user', content: [{ type: 'input_image', image_url: 'https://x/y.png' }] }] });
  assert.ok(inputImage >= IMAGE_PART_TOKENS);
});

test('tools, legacy functions, tool calls, tool results and a JSON schema response_format are counted', () => {
  const base: JsonObject = { messages: [{ role: 'user', content: 'weather?' }] };
  const tools = [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } }];
  const plain = conservativePromptTokens(base);
  assert.ok(conservativePromptTokens({ ...base, tools }) - plain >= conservativeJsonTokens(tools));
  assert.ok(conservativePromptTokens({ ...base, functions: tools }) > plain);
  const schema = { type: 'json_schema', json_schema: { name: 'answer', schema: { type: 'object', properties: { city: { type: 'string' } } } } };
  assert.ok(conservativePromptTokens({ ...base, response_format: schema }) > plain);
  assert.equal(conservativePromptTokens({ ...base, response_format: { type: 'json_object' } }), plain);
  const call = { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }] };
  const withCall = conservativePromptTokens({ messages: [...(base.messages as JsonObject[]), call] });
  const emptyAssistant = conservativePromptTokens({ messages: [...(base.messages as JsonObject[]), { role: 'assistant', content: null }] });
  assert.ok(withCall - emptyAssistant >= conservativeJsonTokens(call.tool_calls));
});

test('JSON: strings with their quotes, members, brackets, numbers by digits', () => {
  assert.equal(conservativeJsonTokens('ab'), 2); // quotes + "ab"
  assert.equal(conservativeJsonTokens(7), 1);
  assert.equal(conservativeJsonTokens(1234567.5), conservativeTextTokens('1234567.5'));
  assert.equal(conservativeJsonTokens([true, null]), 1 + 2 + 2);
  assert.equal(conservativeJsonTokens({ a: 1 }), 1 + 2 + 1 + 1);
  assert.equal(conservativeJsonTokens(undefined), 0);
});

test('the walk is total: any JSON value as a body, a message, a part or a tool never throws and gives a non-negative integer', () => {
  fc.assert(fc.property(fc.jsonValue(), fc.jsonValue(), (a, b) => {
    for (const body of [a, { messages: a }, { messages: [a, { role: 'user', content: a }] }, { messages: [{ role: a, content: [a, b], tool_calls: b, name: a }], tools: a, functions: b, response_format: { type: 'json_schema', x: a } }]) {
      const n = conservativePromptTokens(body);
      assert.ok(Number.isSafeInteger(n) && n >= 0, String(n));
      const c = contextNeeded(body);
      assert.ok(Number.isFinite(c) && c >= n);
    }
  }), { numRuns: 300 });
});

test('a body nested far deeper than any stack is walked without recursion', () => {
  let deep: unknown = 'leaf';
  for (let i = 0; i < 200_000; i++) deep = i % 2 ? [deep] : { k: deep };
  const tokens = conservativePromptTokens({ messages: [{ role: 'user', content: 'x' }], tools: deep });
  assert.ok(tokens > 200_000);
});

test('completion allowance: max_tokens, else max_completion_tokens, else the default; a value that is no cap gets the default', () => {
  assert.equal(completionAllowance({ max_tokens: 100 }), 100);
  assert.equal(completionAllowance({ max_completion_tokens: 200 }), 200);
  assert.equal(completionAllowance({ max_tokens: 100, max_completion_tokens: 200 }), 100);
  assert.equal(completionAllowance({ max_tokens: 0 }), 0);
  assert.equal(completionAllowance({ max_tokens: 10.2 }), 11);
  assert.equal(completionAllowance({}), DEFAULT_COMPLETION_TOKENS);
  for (const bad of ['100', -1, Infinity, null, true, [5], { n: 5 }]) {
    assert.equal(completionAllowance({ max_tokens: bad } as unknown as JsonObject), DEFAULT_COMPLETION_TOKENS, String(bad));
  }
  assert.equal(completionAllowance(null), DEFAULT_COMPLETION_TOKENS);
  assert.equal(contextNeeded({ messages: [{ role: 'user', content: 'hi' }], max_tokens: 50 }),
    conservativePromptTokens({ messages: [{ role: 'user', content: 'hi' }] }) + 50);
});
