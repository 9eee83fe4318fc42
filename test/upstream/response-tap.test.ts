import assert from 'node:assert/strict';
import { test } from 'node:test';
import { JSON_SCAN_WINDOW_BYTES, MAX_SSE_EVENT_CHARS, ResponseTap, type ResponseFacts, type TokenUsage } from '../../src/upstream/response-tap.js';

const MODEL = 'openai/gpt-4o-mini-2024-07-18';
const PROVIDER = 'Azure';

/** A usage object as OpenRouter reports it, with every detail the tap reads. */
const USAGE = {
  prompt_tokens: 12,
  completion_tokens: 34,
  total_tokens: 46,
  cost: 0.000123,
  is_byok: true,
  cost_details: { upstream_inference_cost: 0.00041 },
  prompt_tokens_details: { cached_tokens: 5, cache_write_tokens: 3 },
  completion_tokens_details: { reasoning_tokens: 9 },
};
const EXPECTED_USAGE: TokenUsage = { prompt: 12, completion: 34, reasoning: 9, cached: 5, cacheWrite: 3, cost: 0.000123, upstreamInferenceCost: 0.00041, byok: true };

const DONE = 'data: [DONE]\n\n';
const PROCESSING = ': OPENROUTER PROCESSING\n\n';

/** One SSE event of a chat completion chunk, in OpenRouter's shape. */
function chunk(delta: Record<string, unknown>, finish: string | null, extra: Record<string, unknown> = {}, model = MODEL): string {
  return `data: ${JSON.stringify({
    id: 'gen-1', provider: PROVIDER, model, object: 'chat.completion.chunk', created: 1_700_000_000,
    choices: [{ index: 0, delta, finish_reason: finish, native_finish_reason: finish, logprobs: null }],
    ...extra,
  })}\n\n`;
}

const ROLE = chunk({ role: 'assistant', content: '' }, null);
const CONTENT = 'héllo 🌍';

/** OpenRouter's stream: usage on a last chunk whose `choices` is NOT empty. */
const OPENROUTER_EVENTS = [
  ROLE,
  chunk({ role: 'assistant', content: CONTENT }, null),
  chunk({ role: 'assistant', content: ' again' }, null),
  chunk({ role: 'assistant', content: '' }, 'stop'),
  chunk({ role: 'assistant', content: '' }, null, { usage: USAGE }),
  DONE,
];
const OPENROUTER_STREAM = OPENROUTER_EVENTS.join('');

/** The facts of OPENROUTER_STREAM, `firstTokenAt` aside. */
const OPENROUTER_FACTS = {
  id: 'gen-1', model: MODEL, provider: PROVIDER, usage: EXPECTED_USAGE, finishReason: 'stop', inbandError: undefined, done: true, oversizeEvent: false, answerText: undefined,
};

const NO_FACTS: ResponseFacts = {
  id: undefined, model: undefined, provider: undefined, usage: undefined, finishReason: undefined, inbandError: undefined,
  firstTokenAt: undefined, done: false, oversizeEvent: false, answerText: undefined,
};

/** Feeds every chunk to a new tap, ends it, and returns its facts. */
function tapOf(chunks: readonly Buffer[], sse = true): ResponseFacts {
  const tap = new ResponseTap(sse);
  for (const c of chunks) tap.push(c);
  return tap.end();
}

/** The facts without `firstTokenAt` (a clock reading), which must be a number when `tokens`. */
function comparable(facts: ResponseFacts, tokens = true): Omit<ResponseFacts, 'firstTokenAt'> {
  const { firstTokenAt, ...rest } = facts;
  assert.equal(typeof firstTokenAt, tokens ? 'number' : 'undefined');
  return rest;
}

function bytesOf(text: string): Buffer {
  return Buffer.from(text, 'utf8');
}

function byteByByte(buf: Buffer): Buffer[] {
  return [...buf].map((b) => Buffer.from([b]));
}

/** `buf` cut at these byte offsets. */
function splitAt(buf: Buffer, offsets: readonly number[]): Buffer[] {
  const out: Buffer[] = [];
  let start = 0;
  for (const at of [...offsets].sort((a, b) => a - b)) {
    out.push(buf.subarray(start, at));
    start = at;
  }
  out.push(buf.subarray(start));
  return out;
}

function inSizedReads(buf: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < buf.length; i += size) out.push(buf.subarray(i, i + size));
  return out;
}

/** Byte offsets that cut inside `data:` prefixes, inside JSON, and inside the 2-byte é and the 4-byte 🌍. */
function awkwardOffsets(buf: Buffer): number[] {
  const eAcute = buf.indexOf(bytesOf('é'));
  const globe = buf.indexOf(bytesOf('🌍'));
  assert.ok(eAcute > 0 && globe > 0);
  const offsets = [eAcute + 1, globe + 1, globe + 2, globe + 3];
  for (let at = buf.indexOf('data:'); at !== -1; at = buf.indexOf('data:', at + 1)) offsets.push(at + 3, at + 20);
  return [...new Set(offsets)].filter((o) => o > 0 && o < buf.length);
}

test('usage on OpenRouter\'s last chunk with a non-empty choices is read, with model, provider, finish reason and [DONE]', () => {
  // The usage event really has a choice in it: gateways that wait for `choices: []` lose it.
  const usageEvent = JSON.parse(OPENROUTER_EVENTS[4]!.slice('data: '.length)) as { choices: unknown[] };
  assert.equal(usageEvent.choices.length, 1);
  const facts = tapOf([bytesOf(OPENROUTER_STREAM)]);
  assert.deepEqual(comparable(facts), OPENROUTER_FACTS);
});

test('usage on a chunk with empty choices (OpenAI\'s shape, usage null before) is read', () => {
  const stream = [
    chunk({ role: 'assistant', content: '' }, null, { usage: null }),
    chunk({ content: 'Hi' }, null, { usage: null }),
    chunk({}, 'length', { usage: null }),
    `data: ${JSON.stringify({ id: 'chatcmpl-1', object: 'chat.completion.chunk', model: MODEL, choices: [], usage: { prompt_tokens: 3, completion_tokens: 1, total_tokens: 4 } })}\n\n`,
    DONE,
  ].join('');
  const facts = tapOf([bytesOf(stream)]);
  assert.deepEqual(comparable(facts), {
    id: 'gen-1', model: MODEL, provider: PROVIDER, finishReason: 'length', inbandError: undefined, done: true, oversizeEvent: false, answerText: undefined,
    usage: { prompt: 3, completion: 1, reasoning: 0, cached: 0, cacheWrite: 0, cost: undefined, upstreamInferenceCost: undefined, byok: false },
  });
});

test('served model and provider are those of the first chunk', () => {
  const stream = [
    ROLE,
    chunk({ content: 'Hi' }, null, { provider: 'Other' }, 'openai/other-model'),
    DONE,
  ].join('');
  const facts = tapOf([bytesOf(stream)]);
  assert.equal(facts.model, MODEL);
  assert.equal(facts.provider, PROVIDER);
});

test('the same stream gives the same facts however it is cut into reads and whatever its line ends', async (t) => {
  const lf = bytesOf(OPENROUTER_STREAM);
  const crlf = bytesOf(OPENROUTER_STREAM.replaceAll('\n', '\r\n'));
  const cr = bytesOf(OPENROUTER_STREAM.replaceAll('\n', '\r'));
  const withComments = bytesOf(PROCESSING + OPENROUTER_EVENTS.join(PROCESSING));
  const cases: { name: string; chunks: Buffer[] }[] = [
    { name: 'one read', chunks: [lf] },
    { name: 'byte by byte', chunks: byteByByte(lf) },
    { name: 'split inside data: lines and UTF-8 characters', chunks: splitAt(lf, awkwardOffsets(lf)) },
    { name: 'CRLF line ends', chunks: [crlf] },
    { name: 'CRLF line ends, byte by byte', chunks: byteByByte(crlf) },
    { name: 'CR line ends', chunks: [cr] },
    { name: 'CR line ends, byte by byte', chunks: byteByByte(cr) },
    { name: 'processing comments between events', chunks: [withComments] },
    { name: 'processing comments, split awkwardly', chunks: splitAt(withComments, awkwardOffsets(withComments)) },
  ];
  for (const c of cases) {
    await t.test(c.name, () => {
      assert.deepEqual(comparable(tapOf(c.chunks)), OPENROUTER_FACTS);
    });
  }
});

test('facts are read from chunks written with spaces after colons (Python json.dumps style)', () => {
  const spaced = (s: string): string => s.replace(/data: (\{.*\})/g, (_m, json: string) => `data: ${JSON.stringify(JSON.parse(json), null, 1).replace(/\n\s*/g, ' ')}`);
  const stream = spaced(OPENROUTER_STREAM);
  assert.ok(stream.includes('"finish_reason": "stop"'));
  assert.deepEqual(comparable(tapOf([bytesOf(stream)])), OPENROUTER_FACTS);
});

/** Feeds `before`, then `event` between two clock readings; firstTokenAt must fall in between. */
function assertFirstTokenAt(before: readonly string[], event: string): void {
  const tap = new ResponseTap(true);
  for (const e of before) tap.push(bytesOf(e));
  assert.equal(tap.facts.firstTokenAt, undefined, 'no token before the event');
  const t0 = performance.now();
  tap.push(bytesOf(event));
  const t1 = performance.now();
  const at = tap.facts.firstTokenAt;
  assert.equal(typeof at, 'number');
  assert.ok(at! >= t0 && at! <= t1, `firstTokenAt ${at} not within [${t0}, ${t1}]`);
  // Later tokens do not move it.
  tap.push(bytesOf(chunk({ content: 'more' }, null)));
  assert.equal(tap.end().firstTokenAt, at);
}

test('firstTokenAt is set at the first event with content, not at the role chunk with empty content', () => {
  assertFirstTokenAt([PROCESSING, ROLE, chunk({ content: '' }, null)], chunk({ content: 'H' }, null));
});

test('firstTokenAt is set at the first tool_calls delta', () => {
  const toolCall = chunk({ tool_calls: [{ index: 0, id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '' } }] }, null);
  assertFirstTokenAt([ROLE, chunk({ tool_calls: [] }, null)], toolCall);
});

test('firstTokenAt is set at the first reasoning delta', () => {
  assertFirstTokenAt([ROLE, chunk({ content: '', reasoning: '' }, null)], chunk({ content: '', reasoning: 'Thinking' }, null));
});

test('firstTokenAt stays undefined for a stream without content', () => {
  const stream = [PROCESSING, ROLE, chunk({ content: '' }, 'stop'), chunk({ content: '' }, null, { usage: USAGE }), DONE].join('');
  const facts = tapOf(byteByByte(bytesOf(stream)));
  assert.deepEqual(comparable(facts, false), OPENROUTER_FACTS);
});

test('an in-band error chunk gives inbandError and finish reason error', () => {
  const error = `data: ${JSON.stringify({
    id: 'gen-1', object: 'chat.completion.chunk', created: 1_700_000_000, model: MODEL, provider: PROVIDER,
    error: { code: 502, message: 'Provider disconnected unexpectedly' },
    choices: [{ index: 0, delta: { content: '' }, finish_reason: 'error' }],
  })}\n\n`;
  const facts = tapOf([bytesOf(ROLE + chunk({ content: 'Hi' }, null) + error)]);
  assert.deepEqual(comparable(facts), {
    id: 'gen-1', model: MODEL, provider: PROVIDER, usage: undefined, finishReason: 'error', done: false, oversizeEvent: false, answerText: undefined,
    inbandError: { code: '502', message: 'Provider disconnected unexpectedly' },
  });
});

test('a data line with invalid JSON is skipped and later events still count', () => {
  const stream = [ROLE, 'data: {"choices":[{"delta":{"content":"x"}}\n\n', 'data: not json at all\n\n', ...OPENROUTER_EVENTS.slice(1)].join('');
  const tap = new ResponseTap(true);
  assert.doesNotThrow(() => {
    for (const c of splitAt(bytesOf(stream), [10, 100, 200])) tap.push(c);
  });
  assert.deepEqual(comparable(tap.end()), OPENROUTER_FACTS);
});

test('a stream without [DONE] leaves done false but keeps its usage', () => {
  const facts = tapOf([bytesOf(OPENROUTER_EVENTS.slice(0, -1).join(''))]);
  assert.deepEqual(comparable(facts), { ...OPENROUTER_FACTS, done: false });
});

test('an event larger than MAX_SSE_EVENT_CHARS, read in socket-sized reads, sets oversizeEvent and later usage is still read', () => {
  const huge = chunk({ content: 'A'.repeat(MAX_SSE_EVENT_CHARS + 256 * 1024) }, null);
  const stream = bytesOf(ROLE + chunk({ content: 'Hi' }, null) + huge + OPENROUTER_EVENTS.slice(3).join(''));
  const tap = new ResponseTap(true);
  assert.doesNotThrow(() => {
    for (const c of inSizedReads(stream, 64 * 1024)) tap.push(c);
  });
  assert.deepEqual(comparable(tap.end()), { ...OPENROUTER_FACTS, oversizeEvent: true });
});

const JSON_COMPLETION = {
  id: 'gen-2', provider: PROVIDER, model: MODEL, object: 'chat.completion', created: 1_700_000_000,
  choices: [{ index: 0, finish_reason: 'tool_calls', native_finish_reason: 'tool_calls', message: { role: 'assistant', content: CONTENT } }],
  usage: USAGE,
};

test('a non-streaming JSON body pushed in three pieces gives model, provider, usage and finish reason at end()', () => {
  const body = bytesOf(JSON.stringify(JSON_COMPLETION));
  const globe = body.indexOf(bytesOf('🌍'));
  const tap = new ResponseTap(false);
  for (const c of splitAt(body, [40, globe + 2])) tap.push(c);
  assert.equal(tap.facts.model, undefined, 'a JSON body is read at end()');
  assert.deepEqual(tap.end(), {
    ...NO_FACTS, id: 'gen-2', model: MODEL, provider: PROVIDER, usage: EXPECTED_USAGE, finishReason: 'tool_calls',
  });
});

test('a non-JSON body (an HTML error page) gives no facts and does not throw', () => {
  const tap = new ResponseTap(false);
  tap.push(bytesOf('<html><body>502 Bad Gateway</body></html>'));
  assert.deepEqual(tap.end(), NO_FACTS);
  assert.deepEqual(new ResponseTap(false).end(), NO_FACTS, 'an empty body');
  const nullBody = new ResponseTap(false);
  nullBody.push(bytesOf('null'));
  assert.deepEqual(nullBody.end(), NO_FACTS, 'a JSON null');
});

test('an OpenRouter error body gives inbandError', () => {
  const tap = new ResponseTap(false);
  tap.push(bytesOf(JSON.stringify({ error: { code: 429, message: 'Rate limit exceeded: free-models-per-min', metadata: { x: 1 } } })));
  assert.deepEqual(tap.end(), { ...NO_FACTS, inbandError: { code: '429', message: 'Rate limit exceeded: free-models-per-min' } });
});

test('hostile JSON in events and bodies never throws: objects where strings belong, toString keys, huge numbers (issue 12, defect 2)', () => {
  const hostile: unknown[] = [
    { error: { code: { toString: 1 }, message: { valueOf: 1 } }, choices: [{ finish_reason: 'error', delta: { content: '' } }] },
    { error: { code: { toString: 1 } } },
    { error: { code: 1e400, message: 'x'.repeat(100_000) } },
    { error: { code: [1, 2] } },
    { error: 'flat' },
    { choices: [null], model: { toString: 1 }, provider: ['x'] },
    { choices: [{ delta: 5, finish_reason: { toString: 1 } }] },
    { choices: [{ delta: null }], usage: { prompt_tokens: -5, completion_tokens: 1e308, cost: -1, prompt_tokens_details: 7, completion_tokens_details: null } },
    { usage: { prompt_tokens: { valueOf: 1 }, cost: { toString: 1 } } },
  ];
  for (const obj of hostile) {
    const json = JSON.stringify(obj);
    const sse = new ResponseTap(true);
    assert.doesNotThrow(() => sse.push(Buffer.from(`data: ${json}\n\n`)), json.slice(0, 80));
    const facts = sse.end();
    const whole = new ResponseTap(false);
    whole.push(Buffer.from(json));
    assert.doesNotThrow(() => whole.end(), json.slice(0, 80));
    // What reaches labels and log lines is a bounded string, a number of tokens that can be counted, or nothing.
    if (facts.inbandError) {
      assert.equal(typeof facts.inbandError.code, 'string');
      assert.ok(facts.inbandError.message.length < 2000);
    }
    if (facts.usage) {
      for (const n of [facts.usage.prompt, facts.usage.completion, facts.usage.reasoning, facts.usage.cached]) assert.ok(Number.isFinite(n) && n >= 0);
      assert.equal(facts.usage.cost, undefined);
    }
    assert.ok(facts.model === undefined && facts.provider === undefined);
  }
  const sse = new ResponseTap(true);
  sse.push(Buffer.from(`data: ${JSON.stringify(hostile[0])}\n\n`));
  assert.deepEqual(sse.end().inbandError, { code: 'error', message: 'upstream error' });
});

/** Runs `fn`, reporting the length of the longest text given to JSON.parse meanwhile. */
function longestParse(fn: () => void): number {
  const parse = JSON.parse;
  let longest = 0;
  JSON.parse = ((text: string, reviver?: (this: unknown, key: string, value: unknown) => unknown) => {
    longest = Math.max(longest, text.length);
    return parse(text, reviver);
  }) as typeof JSON.parse;
  try {
    fn();
  } finally {
    JSON.parse = parse;
  }
  return longest;
}

/** An embeddings answer shaped like OpenRouter's: id, model and provider first, the vectors, usage last. */
function embeddingsAnswer(bytes: number): Buffer {
  const vector = JSON.stringify({ object: 'embedding', index: 0, embedding: Array.from({ length: 256 }, (_, i) => i / 7 - 0.123456789) });
  const count = Math.ceil(bytes / (vector.length + 1));
  const head = `{"id":"gen-emb-1","object":"list","provider":${JSON.stringify(PROVIDER)},"model":${JSON.stringify(MODEL)},"data":[`;
  const tail = `],"usage":${JSON.stringify(USAGE)}}`;
  return Buffer.from(head + Array.from({ length: count }, () => vector).join(',') + tail);
}

for (const mib of [14, 20]) {
  test(`a ${mib} MiB embeddings answer gives model, provider and usage without being parsed whole`, () => {
    const body = embeddingsAnswer(mib * 1024 * 1024);
    const tap = new ResponseTap(false);
    let facts: ResponseFacts | undefined;
    const longest = longestParse(() => {
      for (let i = 0; i < body.length; i += 64 * 1024) tap.push(body.subarray(i, i + 64 * 1024));
      facts = tap.end();
    });
    assert.deepEqual(facts, { ...NO_FACTS, id: 'gen-emb-1', model: MODEL, provider: PROVIDER, usage: EXPECTED_USAGE });
    assert.ok(longest <= JSON_SCAN_WINDOW_BYTES, `JSON.parse was given ${longest} characters`);
  });
}

test('a body larger than the windows: finish reason from the choices within the head window', () => {
  const filler = 'x'.repeat(4 * JSON_SCAN_WINDOW_BYTES);
  const body = Buffer.from(JSON.stringify({ ...JSON_COMPLETION, choices: [{ index: 0, finish_reason: 'stop', message: { content: 'short' } }], padding: filler, usage: USAGE }));
  const tap = new ResponseTap(false);
  tap.push(body);
  assert.deepEqual(tap.end(), { ...NO_FACTS, id: 'gen-2', model: MODEL, provider: PROVIDER, usage: EXPECTED_USAGE, finishReason: 'stop' });
});

test('a small chat answer is not parsed whole either: only its id, model, provider and usage are decoded (issue 13)', () => {
  const body = Buffer.from(JSON.stringify({ ...JSON_COMPLETION, choices: [{ index: 0, finish_reason: 'stop', message: { role: 'assistant', content: 'y'.repeat(4000) } }], usage: USAGE }));
  const tap = new ResponseTap(false);
  let facts: ResponseFacts | undefined;
  const longest = longestParse(() => {
    tap.push(body);
    facts = tap.end();
  });
  assert.deepEqual(facts, { ...NO_FACTS, id: 'gen-2', model: MODEL, provider: PROVIDER, usage: EXPECTED_USAGE, finishReason: 'stop' });
  assert.ok(longest <= JSON.stringify(USAGE).length, `JSON.parse was given ${longest} characters of a ${body.length}-byte body`);
});

test('a finish reason inside a message is content, not a key: never taken for the answer\'s', () => {
  const content = 'say "finish_reason": "hacked" twice, "finish_reason":"hacked"';
  const body = Buffer.from(JSON.stringify({ ...JSON_COMPLETION, choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: 'length' }], usage: USAGE }));
  assert.equal(tapOf([body], false).finishReason, 'length');
});

test('a large body that is not JSON gives no facts and does not throw', () => {
  const tap = new ResponseTap(false);
  tap.push(Buffer.from(`<html>${'"usage":{"prompt_tokens":1}} '.repeat(40_000)}</html>`));
  assert.deepEqual(tap.end(), NO_FACTS);
});

test('the answer\'s text is captured only when asked, up to its bound, from a stream or a JSON body within one window', () => {
  const stream = new ResponseTap(true, 8);
  for (const event of OPENROUTER_EVENTS) stream.push(Buffer.from(event));
  // 'héllo 🌍' is 8 UTF-16 units; ' again' is past the bound.
  assert.equal(stream.end().answerText, CONTENT);
  const whole = new ResponseTap(true, 1000);
  for (const event of OPENROUTER_EVENTS) whole.push(Buffer.from(event));
  assert.equal(whole.end().answerText, `${CONTENT} again`);
  const off = new ResponseTap(true);
  for (const event of OPENROUTER_EVENTS) off.push(Buffer.from(event));
  assert.equal(off.end().answerText, undefined);

  const body = JSON.stringify({ id: 'gen-1', model: MODEL, choices: [{ index: 0, message: { role: 'assistant', content: 'the answer' }, finish_reason: 'stop' }], usage: USAGE });
  const json = new ResponseTap(false, 3);
  json.push(Buffer.from(body));
  assert.equal(json.end().answerText, 'the');
  // A body past one window is never parsed for it.
  const big = new ResponseTap(false, 100);
  big.push(Buffer.from(JSON.stringify({ id: 'gen-1', choices: [{ message: { content: 'x'.repeat(JSON_SCAN_WINDOW_BYTES) } }], usage: USAGE })));
  const facts = big.end();
  assert.equal(facts.answerText, undefined);
  assert.deepEqual(facts.usage, EXPECTED_USAGE);
});

// ---------------------------------------------------------------- the other shapes (issue 18)

function shapeEvent(name: string, data: Record<string, unknown>): string {
  return `event: ${name}\ndata: ${JSON.stringify({ type: name, ...data })}\n\n`;
}

const RESPONSES_USAGE = {
  input_tokens: 20, input_tokens_details: { cached_tokens: 4 }, output_tokens: 7, output_tokens_details: { reasoning_tokens: 2 }, total_tokens: 27, cost: 0.0002, is_byok: false,
};
const RESPONSE = { id: 'resp_1', object: 'response', model: MODEL, status: 'in_progress', output: [] };
const RESPONSES_STREAM = [
  shapeEvent('response.created', { sequence_number: 0, response: RESPONSE }),
  shapeEvent('response.output_text.delta', { sequence_number: 1, item_id: 'msg_1', output_index: 0, content_index: 0, delta: 'Hi' }),
  shapeEvent('response.output_text.delta', { sequence_number: 2, item_id: 'msg_1', output_index: 0, content_index: 0, delta: ' there' }),
  shapeEvent('response.completed', { sequence_number: 3, response: { ...RESPONSE, status: 'completed', usage: RESPONSES_USAGE } }),
];

const MESSAGES_STREAM = [
  shapeEvent('message_start', { message: { id: 'msg_1', type: 'message', role: 'assistant', model: MODEL, content: [], usage: { input_tokens: 10, cache_read_input_tokens: 6, cache_creation_input_tokens: 2, output_tokens: 1 } } }),
  shapeEvent('content_block_start', { index: 0, content_block: { type: 'text', text: '' } }),
  shapeEvent('ping', {}),
  shapeEvent('content_block_delta', { index: 0, delta: { type: 'text_delta', text: 'Hello' } }),
  shapeEvent('content_block_stop', { index: 0 }),
  shapeEvent('message_delta', { delta: { stop_reason: 'end_turn' }, usage: { output_tokens: 15, cost: 0.0003 } }),
  shapeEvent('message_stop', {}),
];

/** Feeds `text` in pieces of `size` bytes (events split across reads, UTF-8 split too). */
function shapeTap(api: 'responses' | 'messages', sse: boolean, text: string, size = 7): ResponseFacts {
  const tap = new ResponseTap(sse, 0, api);
  const bytes = Buffer.from(text);
  for (let i = 0; i < bytes.length; i += size) tap.push(bytes.subarray(i, i + size));
  return tap.end();
}

test('Responses stream: usage from response.completed with cached and reasoning tokens, first content event, terminal event', () => {
  const f = shapeTap('responses', true, RESPONSES_STREAM.join(''));
  assert.deepEqual(f.usage, { prompt: 20, completion: 7, reasoning: 2, cached: 4, cacheWrite: 0, cost: 0.0002, upstreamInferenceCost: undefined, byok: false });
  assert.deepEqual([f.id, f.model, f.finishReason, f.done], ['resp_1', MODEL, 'completed', true]);
  assert.ok(f.firstTokenAt !== undefined);
  const cut = shapeTap('responses', true, RESPONSES_STREAM.slice(0, 3).join(''));
  assert.deepEqual([cut.done, cut.usage, cut.finishReason], [false, undefined, undefined], 'no terminal event: not done, no usage');
});

test('Messages stream: usage folded from message_start and message_delta, stop reason, message_stop ends it', () => {
  const f = shapeTap('messages', true, MESSAGES_STREAM.join(''), 5);
  assert.deepEqual(f.usage, { prompt: 18, completion: 15, reasoning: 0, cached: 6, cacheWrite: 2, cost: 0.0003, upstreamInferenceCost: undefined, byok: false });
  assert.deepEqual([f.id, f.model, f.finishReason, f.done], ['msg_1', MODEL, 'end_turn', true]);
  assert.ok(f.firstTokenAt !== undefined);
  // Cut after message_start: the input counts are known, the stream is not done.
  const cut = shapeTap('messages', true, MESSAGES_STREAM.slice(0, 4).join(''));
  assert.deepEqual([cut.usage?.prompt, cut.usage?.completion, cut.done], [18, 1, false]);
  const errored = shapeTap('messages', true, MESSAGES_STREAM.slice(0, 4).join('') + shapeEvent('error', { error: { type: 'overloaded_error', message: 'Overloaded' } }));
  assert.deepEqual(errored.inbandError, { code: 'overloaded_error', message: 'Overloaded' });
});

test('the other shapes\' whole answers: usage and facts read from their JSON, also past one scan window', () => {
  const message = { id: 'msg_2', type: 'message', role: 'assistant', model: MODEL, content: [{ type: 'text', text: 'x'.repeat(3 * JSON_SCAN_WINDOW_BYTES) }], stop_reason: 'max_tokens', usage: { input_tokens: 3, output_tokens: 9 } };
  const f = shapeTap('messages', false, JSON.stringify(message), 4096);
  assert.deepEqual([f.id, f.model, f.finishReason, f.usage?.prompt, f.usage?.completion], ['msg_2', MODEL, 'max_tokens', 3, 9]);
  const response = { ...RESPONSE, status: 'incomplete', incomplete_details: { reason: 'max_output_tokens' }, output: [{ type: 'message', content: [{ type: 'output_text', text: 'y'.repeat(100) }] }], usage: RESPONSES_USAGE };
  const r = shapeTap('responses', false, JSON.stringify(response));
  assert.deepEqual([r.id, r.finishReason, r.usage?.prompt, r.usage?.reasoning], ['resp_1', 'max_output_tokens', 20, 2]);
  const error = shapeTap('messages', false, JSON.stringify({ type: 'error', error: { type: 'invalid_request_error', message: 'bad' } }));
  assert.deepEqual(error.inbandError, { code: 'invalid_request_error', message: 'bad' });
});

test('hostile events of the other shapes are skipped, never thrown on: wrong types, toString keys, huge numbers, no JSON', () => {
  const hostile = [
    'event: message_start\ndata: {"type":"message_start","message":{"toString":1,"usage":{"input_tokens":1e400,"output_tokens":-5,"valueOf":"x"}}}\n\n',
    'event: message_delta\ndata: {"type":"message_delta","usage":null,"delta":[]}\n\n',
    'event: content_block_delta\ndata: not json\n\n',
    'event: content_block_delta\ndata: {"type":"content_block_delta","delta":{"text":{"toString":"x"}}}\n\n',
    'event: response.completed\ndata: {"type":"response.completed","response":{"usage":{"input_tokens":"7"},"status":{"a":1}}}\n\n',
    'event: error\ndata: {"type":"error","error":"nope"}\n\n',
    'data: 12\n\n', 'data: null\n\n', 'data: []\n\n',
  ].join('');
  for (const api of ['responses', 'messages'] as const) {
    const f = shapeTap(api, true, hostile, 3);
    for (const n of [f.usage?.prompt ?? 0, f.usage?.completion ?? 0]) assert.ok(Number.isFinite(n) && n >= 0, `${api}: ${n}`);
    assert.equal(f.firstTokenAt, undefined, `${api}: no content was real`);
  }
});

test('a capturing tap keeps the answer\'s text in each shape, streamed or whole, up to its cap', () => {
  const capture = (api: 'responses' | 'messages', sse: boolean, text: string, chars: number): string | undefined => {
    const tap = new ResponseTap(sse, chars, api);
    tap.push(Buffer.from(text));
    return tap.end().answerText;
  };
  assert.equal(capture('responses', true, RESPONSES_STREAM.join(''), 100), 'Hi there');
  assert.equal(capture('responses', true, RESPONSES_STREAM.join(''), 4), 'Hi t');
  assert.equal(capture('messages', true, MESSAGES_STREAM.join(''), 100), 'Hello');
  const message = { id: 'm', type: 'message', model: MODEL, content: [{ type: 'text', text: 'Whole' }, { type: 'tool_use', id: 't', name: 'f', input: {} }], usage: { input_tokens: 1, output_tokens: 1 } };
  assert.equal(capture('messages', false, JSON.stringify(message), 100), 'Whole');
  const response = { ...RESPONSE, status: 'completed', output: [{ type: 'message', content: [{ type: 'output_text', text: 'Done.' }] }], usage: RESPONSES_USAGE };
  assert.equal(capture('responses', false, JSON.stringify(response), 100), 'Done.');
  assert.equal(capture('responses', false, JSON.stringify(response), 0), undefined, 'not asked: not kept');
});
