import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test, type TestContext } from 'node:test';
import OpenAI from 'openai';
import { parse } from 'yaml';
import { FAKE_ANSWERS, FakeOpenRouter, type FakeOpenRouterOptions, type FakeUsage } from '../../src/dev/fake-openrouter.js';
import { startHarness } from '../support/harness.js';

const MESSAGES: OpenAI.ChatCompletionMessageParam[] = [{ role: 'user', content: 'Say hello' }];
const AUTH = { authorization: 'Bearer sk-or-test' };

async function startFake(t: TestContext, options: FakeOpenRouterOptions = {}): Promise<FakeOpenRouter> {
  const fake = new FakeOpenRouter(options);
  await fake.listen();
  t.after(() => fake.close());
  return fake;
}

function chat(fake: FakeOpenRouter, body: unknown, headers: Record<string, string> = AUTH): Promise<Response> {
  return fetch(`${fake.baseUrl}/chat/completions`, {
    method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body),
  });
}

interface Chunk {
  choices: { index: number; delta: { role?: string; content?: string }; finish_reason: string | null }[];
  usage?: unknown;
}

/** The usage the fake reports without `x-fake-usage`: characters of `messages` / 4, the given completion tokens, the model's prices. */
function plainUsage(promptChars: number, completion: number, promptPrice: string, completionPrice: string): FakeUsage {
  const prompt = Math.ceil(promptChars / 4);
  return {
    prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion,
    cost: prompt * Number(promptPrice) + completion * Number(completionPrice),
    is_byok: false, prompt_tokens_details: { cached_tokens: 0, cache_write_tokens: 0 }, completion_tokens_details: { reasoning_tokens: 0 },
  };
}

/** Usage equal to `expected`, its cost to within float rounding (the fake sums exactly, the test in doubles). */
function assertUsage(actual: unknown, expected: FakeUsage): void {
  const { cost, cost_details: details, ...rest } = actual as FakeUsage;
  const { cost: expectedCost, cost_details: _expectedDetails, ...expectedRest } = expected;
  assert.deepEqual(rest, expectedRest);
  assert.ok(cost !== undefined && expectedCost !== undefined && Math.abs(cost - expectedCost) < 1e-15, `cost ${cost}, expected ${expectedCost}`);
  // Without BYOK, as on OpenRouter, what the provider charged is the cost.
  assert.equal(details?.upstream_inference_cost, cost);
}

test('a stream sends processing comments, a role chunk, content chunks, a stop chunk, a usage chunk, then [DONE]', async (t) => {
  const content = 'One two three.';
  const fake = await startFake(t, { content, processingComments: 3 });
  const res = await chat(fake, { model: 'openai/gpt-4o-mini', messages: MESSAGES, stream: true });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), 'text/event-stream');
  const text = await res.text();

  const events = text.split('\n\n');
  assert.equal(events.pop(), '', 'the stream ends with a blank line');
  assert.deepEqual(events.slice(0, 3), Array(3).fill(': OPENROUTER PROCESSING'));
  assert.equal(events[events.length - 1], 'data: [DONE]');
  const chunks = events.slice(3, -1).map((event) => {
    assert.match(event, /^data: /);
    return JSON.parse(event.slice('data: '.length)) as Chunk;
  });
  const words = ['One ', 'two ', 'three.'];
  assert.equal(chunks.length, 1 + words.length + 2);

  const [role, ...rest] = chunks;
  assert.deepEqual(role?.choices[0]?.delta, { role: 'assistant', content: '' });
  assert.equal(role?.choices[0]?.finish_reason, null);
  const contentChunks = rest.slice(0, words.length);
  assert.deepEqual(contentChunks.map((c) => c.choices[0]?.delta.content), words);
  assert.ok(contentChunks.every((c) => c.choices[0]?.finish_reason === null && c.usage === undefined));
  const [stop, usage] = rest.slice(words.length);
  assert.equal(stop?.choices[0]?.finish_reason, 'stop');
  assert.equal(stop?.usage, undefined);
  assert.equal(usage?.choices.length, 1);
  assert.equal(usage?.choices[0]?.finish_reason, null);
  // openai/gpt-4o-mini: $0.15 and $0.60 per million prompt and completion tokens.
  assertUsage(usage?.usage, plainUsage(JSON.stringify(MESSAGES).length, words.length, '0.00000015', '0.0000006'));
  assert.equal(Buffer.concat(fake.received[0]!.sent).toString('utf8'), text);
});

test('a non-streaming completion carries the content and the usage with cost', async (t) => {
  const fake = await startFake(t);
  const res = await chat(fake, { model: 'openai/gpt-4o', messages: MESSAGES });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('x-generation-id'), 'gen-1700000000-fake0');
  const body = (await res.json()) as { model: string; choices: { message: { content: string } }[]; usage: unknown };
  assert.equal(body.model, 'openai/gpt-4o');
  assert.equal(body.choices[0]?.message.content, fake.options.content);
  const words = fake.options.content.split(/(?<= )/).length;
  assertUsage(body.usage, plainUsage(JSON.stringify(MESSAGES).length, words, '0.0000025', '0.00001'));
  assert.deepEqual(fake.received[0]?.usage, body.usage);
});

test('the x-fake-fault header injects a status with an OpenRouter error body', async (t) => {
  const fake = await startFake(t);
  const res = await chat(fake, { model: 'openai/gpt-4o-mini', messages: MESSAGES }, { ...AUTH, 'x-fake-fault': '{"type":"status","status":503}' });
  assert.equal(res.status, 503);
  assert.deepEqual(await res.json(), { error: { code: 503, message: 'No endpoints found that can handle the request' } });
  assert.deepEqual(fake.received[0]?.fault, { type: 'status', status: 503 });
});

test('enqueue() applies a fault to the next request only', async (t) => {
  const fake = await startFake(t);
  fake.enqueue({ type: 'status', status: 429 });
  const first = await chat(fake, { model: 'openai/gpt-4o-mini', messages: MESSAGES });
  assert.equal(first.status, 429);
  assert.deepEqual(await first.json(), { error: { code: 429, message: 'Rate limit exceeded: free-models-per-min' } });
  const second = await chat(fake, { model: 'openai/gpt-4o-mini', messages: MESSAGES });
  assert.equal(second.status, 200);
  assert.equal(fake.received[1]?.fault, undefined);
});

test('requireAuth answers 401 without a bearer token', async (t) => {
  const fake = await startFake(t, { requireAuth: true });
  const res = await chat(fake, { model: 'openai/gpt-4o-mini', messages: MESSAGES }, {});
  assert.equal(res.status, 401);
  assert.deepEqual(await res.json(), { error: { code: 401, message: 'No auth credentials found' } });
  const withKey = await chat(fake, { model: 'openai/gpt-4o-mini', messages: MESSAGES });
  assert.equal(withKey.status, 200);
});

test('received records the method, url, headers and body of each request', async (t) => {
  const fake = await startFake(t);
  const body = JSON.stringify({ model: 'openai/gpt-4o-mini', messages: MESSAGES });
  const res = await fetch(`${fake.baseUrl}/chat/completions?trace=1`, {
    method: 'POST', headers: { 'content-type': 'application/json', 'x-custom': 'yes', ...AUTH }, body,
  });
  await res.arrayBuffer();
  assert.equal(fake.received.length, 1);
  const rec = fake.received[0]!;
  assert.equal(rec.seq, 0);
  assert.equal(rec.method, 'POST');
  assert.equal(rec.url, '/api/v1/chat/completions?trace=1');
  assert.equal(rec.headers['x-custom'], 'yes');
  assert.equal(rec.headers.authorization, 'Bearer sk-or-test');
  assert.equal(rec.body.toString('utf8'), body);
  assert.deepEqual(rec.json, JSON.parse(body));
  assert.equal(await rec.outcome, 'complete');
});

test('close() resolves while a request hangs, and the hanging exchange is recorded as aborted', { timeout: 10_000 }, async () => {
  const fake = new FakeOpenRouter();
  await fake.listen();
  fake.enqueue({ type: 'hang' });
  const arrived = fake.nextRequest();
  const hanging = chat(fake, { model: 'openai/gpt-4o-mini', messages: MESSAGES });
  hanging.catch(() => {});
  const rec = await arrived;

  await fake.close();

  assert.equal(await rec.outcome, 'aborted');
  await assert.rejects(hanging);
});

test('a stamped slow stream carries an increasing x_sent_ns on every data event but [DONE]; an unstamped one carries none', async (t) => {
  const fake = await startFake(t, { content: 'One two three.' });
  const dataEvents = async (fault: unknown): Promise<string[]> => {
    const res = await chat(fake, { model: 'openai/gpt-4o-mini', messages: MESSAGES, stream: true }, { ...AUTH, 'x-fake-fault': JSON.stringify(fault) });
    assert.equal(res.status, 200);
    const events = (await res.text()).split('\n\n').filter((e) => e.startsWith('data: '));
    assert.equal(events.pop(), 'data: [DONE]');
    return events.map((e) => e.slice('data: '.length));
  };

  const before = process.hrtime.bigint();
  const stamped = (await dataEvents({ type: 'slow-stream', ms: 2, stamp: true })).map((d) => JSON.parse(d) as Chunk & { x_sent_ns?: unknown });
  const after = process.hrtime.bigint();
  assert.equal(stamped.length, 1 + 3 + 2, 'role, three words, stop, usage');
  let previous = before;
  for (const chunk of stamped) {
    assert.equal(typeof chunk.x_sent_ns, 'string');
    assert.match(chunk.x_sent_ns as string, /^\d+$/);
    const sent = BigInt(chunk.x_sent_ns as string);
    // The same clock in the same process here: each stamp is later than the one before, by at least the gap.
    assert.ok(sent > previous, `${sent} > ${previous}`);
    assert.ok(sent < after);
    previous = sent;
    assert.ok(Array.isArray(chunk.choices), 'the rest of the chunk is intact');
  }
  assert.deepEqual(stamped.slice(1, 4).map((c) => c.choices[0]?.delta.content), ['One ', 'two ', 'three.']);

  for (const fault of [{ type: 'slow-stream', ms: 1 }, { type: 'slow-stream', ms: 1, stamp: false }]) {
    const plain = await dataEvents(fault);
    assert.equal(plain.length, 6);
    assert.ok(plain.every((d) => !d.includes('x_sent_ns')));
  }
});

// --- the model catalog -------------------------------------------------------------------------

interface CatalogEntry {
  id: string;
  canonical_slug: string;
  name: string;
  created: number;
  context_length: number;
  architecture: { modality: string; input_modalities: string[]; output_modalities: string[]; tokenizer: string };
  /** Decimal strings, and `overrides`: read them with `price()` and `overrides()`. */
  pricing: Record<string, unknown>;
  top_provider: { context_length: number; max_completion_tokens: number | null; is_moderated: boolean };
  per_request_limits: { prompt_tokens: string; completion_tokens: string } | null;
  supported_parameters: string[];
}

/** A price of an entry: OpenRouter's decimal string, '' when the entry lists none. */
function price(m: CatalogEntry, key: string): string {
  const value = m.pricing[key];
  return typeof value === 'string' ? value : '';
}

function overrides(m: CatalogEntry): Record<string, unknown>[] {
  return (m.pricing.overrides as Record<string, unknown>[] | undefined) ?? [];
}

async function listModels(fake: FakeOpenRouter, query = ''): Promise<CatalogEntry[]> {
  // No key: OpenRouter's model list is public.
  const res = await fetch(`${fake.baseUrl}/models${query}`);
  assert.equal(res.status, 200);
  return ((await res.json()) as { data: CatalogEntry[] }).data;
}

/** Every model id the shipped rules.yaml names (tiers' and routes' `model` and `fallbacks`). */
function shippedRulesModels(): Set<string> {
  const ids = new Set<string>();
  const walk = (node: unknown): void => {
    if (Array.isArray(node)) node.forEach(walk);
    else if (node !== null && typeof node === 'object') {
      for (const [key, value] of Object.entries(node)) {
        if (key === 'model' && typeof value === 'string') ids.add(value);
        else if (key === 'fallbacks' && Array.isArray(value)) value.forEach((v) => typeof v === 'string' && ids.add(v));
        else walk(value);
      }
    }
  };
  const rules = parse(readFileSync(new URL('../../../rules.yaml', import.meta.url), 'utf8')) as { tiers: unknown; rules: { route?: unknown }[] };
  walk(rules.tiers);
  for (const rule of rules.rules) walk(rule.route);
  return ids;
}

test('GET /models serves real-shaped entries, every model of the shipped rules.yaml among them', async (t) => {
  const fake = await startFake(t);
  const models = await listModels(fake);
  assert.ok(models.length >= 12, `${models.length} models`);
  const ids = new Set(models.map((m) => m.id));
  const named = shippedRulesModels();
  assert.ok(named.size >= 8, 'the walk found the rules file\'s models');
  for (const id of named) assert.ok(ids.has(id), `${id} is in the catalog`);
  for (const m of models) {
    // The canonical slug names the same author, at times a dated version (deepseek/deepseek-chat-v3).
    assert.equal(m.canonical_slug.split('/')[0], m.id.split('/')[0]);
    assert.match(m.id, /^[a-z0-9-]+\/[a-z0-9.:-]+$/);
    assert.equal(typeof m.name, 'string');
    assert.ok(Number.isInteger(m.created) && m.created > 1_600_000_000);
    assert.ok(Number.isInteger(m.context_length) && m.context_length > 0);
    // OpenRouter writes prices as decimal strings, USD per token (-1: variable, the auto router).
    for (const key of ['prompt', 'completion', 'request', 'image']) assert.match(price(m, key), /^(-1|\d+(\.\d+)?)$/, `${m.id} pricing.${key}`);
    assert.equal(m.architecture.modality, `${m.architecture.input_modalities.join('+')}->${m.architecture.output_modalities.join('+')}`);
    assert.equal(typeof m.architecture.tokenizer, 'string');
    assert.equal(typeof m.top_provider.is_moderated, 'boolean');
    assert.ok(Array.isArray(m.supported_parameters));
    assert.ok(m.architecture.output_modalities.includes('text'), 'text models unless asked otherwise');
  }
  assert.ok(models.find((m) => m.id === 'openai/gpt-4o')?.supported_parameters.includes('tools'));
});

test('GET /models?output_modalities= filters by output like OpenRouter: embeddings, all', async (t) => {
  const fake = await startFake(t);
  const text = await listModels(fake);
  const embeddings = await listModels(fake, '?output_modalities=embeddings');
  assert.deepEqual(embeddings.map((m) => m.id), ['openai/text-embedding-3-small']);
  assert.equal((await listModels(fake, '?output_modalities=all')).length, text.length + embeddings.length);
});

test('an unknown model, in `model` or in `models`, is refused with OpenRouter\'s 400; extraModels are served', async (t) => {
  const fake = await startFake(t, { extraModels: ['my/model'] });
  const refused = async (body: Record<string, unknown>, id: string, path = 'chat/completions'): Promise<void> => {
    const res = await fetch(`${fake.baseUrl}/${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...AUTH }, body: JSON.stringify(body) });
    assert.equal(res.status, 400);
    assert.deepEqual(await res.json(), { error: { code: 400, message: `${id} is not a valid model ID` } });
  };
  await refused({ model: 'nobody/invented', messages: MESSAGES }, 'nobody/invented');
  await refused({ model: 'openai/gpt-4o', models: ['openai/gpt-4o', 'gpt-4o'], messages: MESSAGES }, 'gpt-4o');
  await refused({ model: 'nobody/embed', input: 'hi' }, 'nobody/embed', 'embeddings');

  const extra = await chat(fake, { model: 'my/model', messages: MESSAGES });
  assert.equal(extra.status, 200);
  assert.equal(((await extra.json()) as { model: string }).model, 'my/model');
  const entry = (await listModels(fake)).find((m) => m.id === 'my/model');
  assert.equal(entry?.canonical_slug, 'my/model');
  assert.deepEqual(entry?.pricing, { prompt: '0.000001', completion: '0.000002', request: '0', image: '0', web_search: '0', internal_reasoning: '0' });
});

test('a request without a model is answered by the default model, as OpenRouter uses the account\'s default', async (t) => {
  const fake = await startFake(t);
  const res = await chat(fake, { messages: MESSAGES });
  assert.equal(res.status, 200);
  assert.equal(((await res.json()) as { model: string }).model, 'openai/gpt-4o-mini');
});

// --- tool calls --------------------------------------------------------------------------------

const WEATHER_TOOL = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'The weather in a city',
    parameters: {
      type: 'object',
      properties: { city: { type: 'string' }, days: { type: 'integer', minimum: 1 }, unit: { enum: ['c', 'f'] }, hourly: { type: 'boolean' } },
      required: ['city', 'days', 'unit'],
    },
  },
} satisfies OpenAI.ChatCompletionTool;
const TIME_TOOL = { type: 'function', function: { name: 'get_time', parameters: { type: 'object', properties: {} } } } satisfies OpenAI.ChatCompletionTool;

function sdk(fake: FakeOpenRouter): OpenAI {
  return new OpenAI({ baseURL: fake.baseUrl, apiKey: 'sk-or-test', maxRetries: 0 });
}

test('with tools, the openai SDK gets a tool call to the first tool, arguments fitting its schema, finish_reason tool_calls', async (t) => {
  const fake = await startFake(t);
  const completion = await sdk(fake).chat.completions.create({ model: 'openai/gpt-4o', messages: MESSAGES, tools: [WEATHER_TOOL, TIME_TOOL] });
  const choice = completion.choices[0]!;
  assert.equal(choice.finish_reason, 'tool_calls');
  assert.equal(choice.message.content, null);
  const [call, ...others] = choice.message.tool_calls ?? [];
  assert.equal(others.length, 0);
  assert.equal(call?.type, 'function');
  assert.ok(call?.type === 'function');
  assert.equal(call.function.name, 'get_weather');
  assert.match(call.id, /^call_/);
  assert.deepEqual(JSON.parse(call.function.arguments), { city: '', days: 1, unit: 'c' });
});

test('with tools, the openai SDK\'s stream assembles the same tool call from index/id/name then argument deltas', async (t) => {
  const fake = await startFake(t);
  const client = sdk(fake);
  const stream = await client.chat.completions.create({ model: 'openai/gpt-4o', messages: MESSAGES, tools: [WEATHER_TOOL], stream: true });
  const chunks: OpenAI.ChatCompletionChunk[] = [];
  for await (const chunk of stream) chunks.push(chunk);
  const deltas = chunks.flatMap((c) => c.choices[0]?.delta.tool_calls ?? []);
  assert.ok(deltas.length > 2, 'the arguments arrive in several deltas');
  assert.deepEqual({ ...deltas[0], function: { ...deltas[0]!.function } }, { index: 0, id: 'call_fake0', type: 'function', function: { name: 'get_weather', arguments: '' } });
  assert.ok(deltas.slice(1).every((d) => d.index === 0 && d.id === undefined && d.function?.name === undefined));
  assert.deepEqual(JSON.parse(deltas.map((d) => d.function?.arguments ?? '').join('')), { city: '', days: 1, unit: 'c' });
  assert.equal(chunks.find((c) => c.choices[0]?.finish_reason)?.choices[0]?.finish_reason, 'tool_calls');

  // The SDK's own accumulator, which checks each delta against the one before, agrees.
  const runner = client.chat.completions.stream({ model: 'openai/gpt-4o', messages: MESSAGES, tools: [WEATHER_TOOL] });
  const final = await runner.finalChatCompletion();
  const call = final.choices[0]?.message.tool_calls?.[0];
  assert.ok(call?.type === 'function');
  assert.equal(call.function.name, 'get_weather');
  assert.deepEqual(JSON.parse(call.function.arguments), { city: '', days: 1, unit: 'c' });
  assert.equal(final.choices[0]?.finish_reason, 'tool_calls');
});

test('tool_choice "none" gets text; tool_choice naming a function gets a call to that one', async (t) => {
  const fake = await startFake(t);
  const client = sdk(fake);
  const none = await client.chat.completions.create({ model: 'openai/gpt-4o', messages: MESSAGES, tools: [WEATHER_TOOL], tool_choice: 'none' });
  assert.equal(none.choices[0]?.finish_reason, 'stop');
  assert.equal(none.choices[0]?.message.content, fake.options.content);
  assert.equal(none.choices[0]?.message.tool_calls, undefined);

  const named = await client.chat.completions.create({
    model: 'openai/gpt-4o', messages: MESSAGES, tools: [WEATHER_TOOL, TIME_TOOL], tool_choice: { type: 'function', function: { name: 'get_time' } },
  });
  const call = named.choices[0]?.message.tool_calls?.[0];
  assert.ok(call?.type === 'function');
  assert.equal(call.function.name, 'get_time');
  assert.equal(call.function.arguments, '{}');
});

test('a hostile tool schema gets a bounded answer: deep nesting stops, a required "__proto__" stays a plain key', async (t) => {
  const fake = await startFake(t);
  let deep: Record<string, unknown> = { type: 'string' };
  for (let i = 0; i < 500; i++) deep = { type: 'object', properties: { a: deep }, required: ['a'] };
  const tool = { type: 'function', function: { name: 'f', parameters: { type: 'object', properties: { deep }, required: ['deep', '__proto__'] } } };
  const res = await chat(fake, { model: 'openai/gpt-4o', messages: MESSAGES, tools: [tool] });
  assert.equal(res.status, 200);
  const body = (await res.json()) as { choices: { message: { tool_calls: { function: { arguments: string } }[] } }[] };
  const args = body.choices[0]!.message.tool_calls[0]!.function.arguments;
  assert.ok(args.length < 500, `${args.length} characters`);
  assert.ok(args.includes('"__proto__":null'));
});

// --- embeddings --------------------------------------------------------------------------------

test('embeddings honour encoding_format base64: the openai SDK (base64 by default) decodes the numbers "float" gives', async (t) => {
  const fake = await startFake(t);
  const client = sdk(fake);
  const input = ['the first text', 'a second one'];
  const asFloat = await client.embeddings.create({ model: 'openai/text-embedding-3-small', input, encoding_format: 'float' });
  const byDefault = await client.embeddings.create({ model: 'openai/text-embedding-3-small', input });

  assert.equal((fake.received[0]?.json as { encoding_format?: string }).encoding_format, 'float');
  assert.equal((fake.received[1]?.json as { encoding_format?: string }).encoding_format, 'base64', 'the SDK asked for base64');
  const base64Body = JSON.parse(Buffer.concat(fake.received[1]!.sent).toString('utf8')) as { data: { embedding: unknown }[] };
  assert.equal(typeof base64Body.data[0]?.embedding, 'string', 'the wire carried base64');

  assert.equal(asFloat.data.length, 2);
  assert.ok(asFloat.data.every((d) => d.embedding.length === 8));
  assert.deepEqual(byDefault.data.map((d) => d.embedding), asFloat.data.map((d) => d.embedding));
  assert.notDeepEqual(asFloat.data[0]?.embedding, asFloat.data[1]?.embedding, 'different texts, different vectors');
});

test('an x-fake-fault header cannot ask for a manual response (only enqueue() can)', async (t) => {
  const fake = await startFake(t);
  const res = await chat(fake, { model: 'openai/gpt-4o-mini', messages: MESSAGES }, { ...AUTH, 'x-fake-fault': '{"type":"manual"}' });
  assert.equal(res.status, 200);
  assert.equal(fake.received[0]?.fault, undefined);
});

// --- the catalog's variety and the cost priced from it ------------------------------------------

const PRICE = /^\d+(\.\d{1,12})?$/;

test('the catalog has a few dozen real-shaped entries: overrides, image and text-only input, with and without tools, JSON mode, reasoning, free models', async (t) => {
  const fake = await startFake(t);
  const models = await listModels(fake, '?output_modalities=all');
  assert.ok(models.length >= 30 && models.length <= 40, `${models.length} models`);
  assert.equal(new Set(models.map((m) => m.id)).size, models.length, 'ids are unique');
  for (const m of models.filter((e) => e.id !== 'openrouter/auto')) {
    for (const key of ['prompt', 'completion', 'request', 'image', 'web_search', 'internal_reasoning']) assert.match(price(m, key), PRICE, `${m.id} pricing.${key}`);
    for (const key of ['input_cache_read', 'input_cache_write']) if (key in m.pricing) assert.match(price(m, key), PRICE, `${m.id} pricing.${key}`);
    assert.equal(m.top_provider.context_length, m.context_length);
    assert.ok(m.top_provider.max_completion_tokens === null || Number.isInteger(m.top_provider.max_completion_tokens));
    for (const o of overrides(m)) {
      const conditions = ['min_prompt_tokens', 'utc_start', 'utc_end'].filter((k) => k in o);
      assert.ok(conditions.length > 0, `${m.id}: an override has a condition`);
      if ('min_prompt_tokens' in o) assert.ok(Number.isInteger(o.min_prompt_tokens));
      for (const k of ['utc_start', 'utc_end']) if (k in o) assert.match(String(o[k]), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
      const prices = Object.keys(o).filter((k) => !conditions.includes(k));
      assert.ok(prices.length > 0 && prices.every((k) => PRICE.test(String(o[k])) && k in m.pricing), `${m.id}: an override sets listed prices`);
    }
  }
  const some = (what: string, pick: (m: CatalogEntry) => boolean, at = 2): void => {
    const n = models.filter(pick).length;
    assert.ok(n >= at, `${n} models ${what}`);
  };
  const params = (m: CatalogEntry, p: string): boolean => m.supported_parameters.includes(p);
  some('with long-context overrides', (m) => overrides(m).some((o) => 'min_prompt_tokens' in o));
  some('with a time-window override', (m) => overrides(m).some((o) => 'utc_start' in o && 'utc_end' in o), 1);
  some('taking images', (m) => m.architecture.input_modalities.includes('image'), 10);
  some('text-only', (m) => m.architecture.input_modalities.join() === 'text', 10);
  some('with tools', (m) => params(m, 'tools'), 10);
  some('without tools', (m) => !params(m, 'tools'), 5);
  some('with tools but no response_format', (m) => params(m, 'tools') && !params(m, 'response_format'));
  some('with response_format', (m) => params(m, 'response_format'), 10);
  some('with reasoning', (m) => params(m, 'reasoning'), 5);
  some('caching (input_cache_read)', (m) => 'input_cache_read' in m.pricing, 10);
  some('priced per request', (m) => price(m, 'request') !== '0', 1);
  some('pricing reasoning on its own', (m) => price(m, 'internal_reasoning') !== '0', 1);
  some('with per-request limits', (m) => m.per_request_limits !== null, 1);
  const free = models.filter((m) => m.id.endsWith(':free'));
  assert.ok(free.length >= 4, `${free.length} free models`);
  for (const m of free) assert.ok(price(m, 'prompt') === '0' && price(m, 'completion') === '0', `${m.id} is free`);
});

const SONNET = 'anthropic/claude-3.5-sonnet';

async function usageOf(fake: FakeOpenRouter, body: Record<string, unknown>, asked?: unknown): Promise<FakeUsage> {
  const res = await chat(fake, { messages: MESSAGES, ...body }, { ...AUTH, ...(asked === undefined ? {} : { 'x-fake-usage': JSON.stringify(asked) }) });
  assert.equal(res.status, 200);
  return ((await res.json()) as { usage: FakeUsage }).usage;
}

async function entryOf(fake: FakeOpenRouter, id: string): Promise<CatalogEntry> {
  const m = (await listModels(fake, '?output_modalities=all')).find((e) => e.id === id);
  assert.ok(m, `${id} is listed`);
  return m;
}

test('usage.cost is the catalog price of the tokens: uncached prompt, cache reads and writes, completion with reasoning', async (t) => {
  const fake = await startFake(t);
  const m = await entryOf(fake, SONNET);
  const usage = await usageOf(fake, { model: SONNET }, { prompt_tokens: 1000, cached_tokens: 200, cache_write_tokens: 100, reasoning_tokens: 50 });
  const words = fake.options.content.split(/(?<= )/).length;
  assert.equal(usage.prompt_tokens, 1000);
  assert.equal(usage.completion_tokens, words + 50, 'reasoning tokens are part of the completion');
  assert.deepEqual(usage.prompt_tokens_details, { cached_tokens: 200, cache_write_tokens: 100 });
  assert.deepEqual(usage.completion_tokens_details, { reasoning_tokens: 50 });
  const expected = 700 * Number(price(m, 'prompt')) + 200 * Number(price(m, 'input_cache_read')) + 100 * Number(price(m, 'input_cache_write'))
    + (words + 50) * Number(price(m, 'completion'));
  assert.ok(Math.abs(usage.cost! - expected) < 1e-15, `${usage.cost} vs ${expected}`);
  // The same by hand, $3/M prompt, $0.30/M read, $3.75/M write, $15/M completion: exact, as OpenRouter's decimals are.
  assert.equal(usage.cost, Number((0.0021 + 0.00006 + 0.000375 + (words + 50) * 0.000015).toFixed(12)));
});

test('usage.cost adds the request price, image prices, and reasoning at internal_reasoning when a model lists one; free models cost 0', async (t) => {
  const fake = await startFake(t);
  const ask = { prompt_tokens: 100, reasoning_tokens: 40 };
  const words = fake.options.content.split(/(?<= )/).length;

  const sonar = await entryOf(fake, 'perplexity/sonar');
  const sonarUsage = await usageOf(fake, { model: sonar.id }, ask);
  assert.ok(Math.abs(sonarUsage.cost! - (100 * Number(price(sonar, 'prompt')) + (words + 40) * Number(price(sonar, 'completion')) + Number(price(sonar, 'request')))) < 1e-15);

  const gpt4o = await entryOf(fake, 'openai/gpt-4o');
  const image = { type: 'image_url', image_url: { url: 'data:image/png;base64,AAAA' } };
  const withImages = await usageOf(fake, { model: gpt4o.id, messages: [{ role: 'user', content: [{ type: 'text', text: 'two pictures' }, image, image] }] }, { prompt_tokens: 100 });
  assert.ok(Math.abs(withImages.cost! - (100 * Number(price(gpt4o, 'prompt')) + words * Number(price(gpt4o, 'completion')) + 2 * Number(price(gpt4o, 'image')))) < 1e-15);

  const thinking = await entryOf(fake, 'google/gemini-2.5-flash-preview:thinking');
  assert.notEqual(price(thinking, 'internal_reasoning'), '0');
  const thought = await usageOf(fake, { model: thinking.id }, ask);
  assert.ok(Math.abs(thought.cost! - (100 * Number(price(thinking, 'prompt')) + words * Number(price(thinking, 'completion')) + 40 * Number(price(thinking, 'internal_reasoning')))) < 1e-15);

  assert.equal((await usageOf(fake, { model: 'deepseek/deepseek-r1:free' }, ask)).cost, 0);
  // The auto router's price is variable (-1): the fake prices it as the default model.
  assert.equal((await usageOf(fake, { model: 'openrouter/auto' }, ask)).cost, (await usageOf(fake, { model: 'openai/gpt-4o-mini' }, ask)).cost);
});

test('long-context overrides apply from min_prompt_tokens on; time-window overrides from `utc_start` (inclusive) to `utc_end` (exclusive) on the injected clock', async (t) => {
  let now = Date.parse('2025-12-31T23:59:59.999Z');
  const fake = await startFake(t, { now: () => now });
  const ask = (prompt: number): { prompt_tokens: number } => ({ prompt_tokens: prompt });
  const words = fake.options.content.split(/(?<= )/).length;
  const cost = (prompt: number, promptPrice: unknown, completionPrice: unknown): number => prompt * Number(promptPrice) + words * Number(completionPrice);
  const near = (actual: number | undefined, expected: number): void => assert.ok(actual !== undefined && Math.abs(actual - expected) < 1e-15, `${actual} vs ${expected}`);

  const pro = await entryOf(fake, 'google/gemini-2.5-pro');
  const long = overrides(pro).find((o) => 'min_prompt_tokens' in o)!;
  const threshold = long.min_prompt_tokens as number;
  near((await usageOf(fake, { model: pro.id }, ask(threshold - 1))).cost, cost(threshold - 1, price(pro, 'prompt'), price(pro, 'completion')));
  near((await usageOf(fake, { model: pro.id }, ask(threshold))).cost, cost(threshold, long.prompt, long.completion));

  const r1 = await entryOf(fake, 'deepseek/deepseek-r1');
  const promo = overrides(r1).find((o) => 'utc_start' in o)!;
  assert.equal(now, Date.parse(promo.utc_start as string) - 1, 'the test starts just before the window');
  const base = cost(1000, price(r1, 'prompt'), price(r1, 'completion'));
  const discounted = cost(1000, promo.prompt, promo.completion);
  assert.ok(discounted < base);
  near((await usageOf(fake, { model: r1.id }, ask(1000))).cost, base);
  now = Date.parse(promo.utc_start as string);
  near((await usageOf(fake, { model: r1.id }, ask(1000))).cost, discounted);
  now = Date.parse(promo.utc_end as string) - 1;
  near((await usageOf(fake, { model: r1.id }, ask(1000))).cost, discounted);
  now = Date.parse(promo.utc_end as string);
  near((await usageOf(fake, { model: r1.id }, ask(1000))).cost, base);
});

test('x-fake-usage {"cost":false} omits usage.cost, in JSON and in the stream, keeping the tokens; a malformed header is ignored', async (t) => {
  const fake = await startFake(t);
  const plain = await usageOf(fake, { model: SONNET });
  assert.equal(typeof plain.cost, 'number');
  const noCost = await usageOf(fake, { model: SONNET }, { cost: false });
  assert.equal('cost' in noCost, false);
  // Without a cost there is no cost_details either, as from an upstream that reports none.
  const { cost: _, cost_details: _details, ...tokens } = plain;
  assert.deepEqual(noCost, tokens);

  const res = await chat(fake, { model: SONNET, messages: MESSAGES, stream: true }, { ...AUTH, 'x-fake-usage': '{"cost":false}' });
  const usageEvents = (await res.text()).split('\n\n').filter((e) => e.includes('"usage"'));
  assert.equal(usageEvents.length, 1);
  const streamed = (JSON.parse(usageEvents[0]!.slice('data: '.length)) as { usage: FakeUsage }).usage;
  assert.deepEqual(streamed, tokens);
  assert.deepEqual(fake.received[2]?.usage, tokens, 'the record has what was sent');

  for (const bad of ['not json', '[1]', '{"cost":"no","prompt_tokens":-5,"cached_tokens":1.5,"reasoning_tokens":1e12}']) {
    const r = await chat(fake, { model: SONNET, messages: MESSAGES }, { ...AUTH, 'x-fake-usage': bad });
    assert.deepEqual(((await r.json()) as { usage: FakeUsage }).usage, plain, bad);
  }
  // Cached tokens cannot exceed the prompt.
  const capped = await usageOf(fake, { model: SONNET }, { prompt_tokens: 10, cached_tokens: 50, cache_write_tokens: 5 });
  assert.deepEqual(capped.prompt_tokens_details, { cached_tokens: 10, cache_write_tokens: 0 });
});

test('x-fake-usage {"byok":true}: is_byok, usage.cost OpenRouter\'s 5% fee, cost_details.upstream_inference_cost the provider\'s price', async (t) => {
  const fake = await startFake(t);
  const plain = await usageOf(fake, { model: SONNET });
  const byok = await usageOf(fake, { model: SONNET }, { byok: true });
  assert.equal(plain.is_byok, false);
  assert.equal(plain.cost_details?.upstream_inference_cost, plain.cost, 'without BYOK, as on OpenRouter, both say the same');
  assert.equal(byok.is_byok, true);
  assert.equal(byok.cost_details?.upstream_inference_cost, plain.cost);
  assert.ok(Math.abs(byok.cost! - plain.cost! * 0.05) < 1e-15);
});

test('through Signalbox, x-fake-usage reaches the fake: the client gets a usage without cost, as from an upstream that reports none', async (t) => {
  const h = await startHarness();
  t.after(() => h.close());
  const res = await fetch(`${h.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: 'Bearer sk-client', 'x-fake-usage': '{"cost":false}' },
    body: JSON.stringify({ model: SONNET, messages: MESSAGES }),
  });
  assert.equal(res.status, 200);
  const usage = ((await res.json()) as { usage: Record<string, unknown> }).usage;
  assert.equal('cost' in usage, false);
  assert.equal(usage.prompt_tokens, h.fake.received[0]?.usage?.prompt_tokens);
});

test('x-fake-answer and answer() choose what a model answers, as JSON and as a stream', async (t) => {
  const fake = await startFake(t);
  const header = { ...AUTH, 'x-fake-answer': JSON.stringify({ 'openai/gpt-4o-mini': 'refusal', 'openai/gpt-4o': 'A text of my own.' }) };
  const messages = [{ role: 'user', content: 'hi' }];
  const json = async (model: string, headers: Record<string, string>) =>
    ((await (await chat(fake, { model, messages }, headers)).json()) as { choices: { message: { content: string } }[] }).choices[0]!.message.content;
  assert.equal(await json('openai/gpt-4o-mini', header), FAKE_ANSWERS.refusal);
  assert.equal(await json('openai/gpt-4o', header), 'A text of my own.');
  // A model the header does not name, and an invalid header, answer as usual.
  assert.equal(await json('anthropic/claude-3.5-haiku', header), await json('anthropic/claude-3.5-haiku', AUTH));
  assert.equal(await json('openai/gpt-4o-mini', { ...AUTH, 'x-fake-answer': '{nope' }), await json('anthropic/claude-3.5-haiku', AUTH));
  fake.answer('openai/gpt-4o-mini', 'invalid_json');
  const stream = await (await chat(fake, { model: 'openai/gpt-4o-mini', messages, stream: true }, AUTH)).text();
  const streamed = stream.split('\n').filter((l) => l.startsWith('data: {'))
    .map((l) => (JSON.parse(l.slice(6)) as { choices: { delta: { content?: string } }[] }).choices[0]!.delta.content ?? '').join('');
  assert.equal(streamed, FAKE_ANSWERS.invalid_json);
});
