import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test, type TestContext } from 'node:test';
import OpenAI from 'openai';
import { parse } from 'yaml';
import { FakeOpenRouter, fakeUsage, type FakeOpenRouterOptions } from '../../src/dev/fake-openrouter.js';

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
  assert.deepEqual(usage?.usage, fakeUsage(JSON.stringify(MESSAGES).length, words.length));
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
  assert.deepEqual(body.usage, fakeUsage(JSON.stringify(MESSAGES).length, words));
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
  pricing: Record<string, string>;
  top_provider: { context_length: number; max_completion_tokens: number | null; is_moderated: boolean };
  supported_parameters: string[];
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
    assert.equal(m.canonical_slug, m.id);
    assert.match(m.id, /^[a-z0-9-]+\/[a-z0-9.:-]+$/);
    assert.equal(typeof m.name, 'string');
    assert.ok(Number.isInteger(m.created) && m.created > 1_600_000_000);
    assert.ok(Number.isInteger(m.context_length) && m.context_length > 0);
    // OpenRouter writes prices as decimal strings, USD per token (-1: variable, the auto router).
    for (const key of ['prompt', 'completion', 'request', 'image']) assert.match(m.pricing[key] ?? '', /^(-1|\d+(\.\d+)?)$/, `${m.id} pricing.${key}`);
    assert.equal(m.architecture.modality, `${m.architecture.input_modalities.join('+')}->${m.architecture.output_modalities.join('+')}`);
    assert.equal(typeof m.architecture.tokenizer, 'string');
    assert.equal(typeof m.top_provider.is_moderated, 'boolean');
    assert.ok(Array.isArray(m.supported_parameters));
    assert.deepEqual(m.architecture.output_modalities, ['text'], 'text models unless asked otherwise');
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
