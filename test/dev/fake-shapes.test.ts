import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import OpenAI from 'openai';
import { FakeOpenRouter, type FakeOpenRouterOptions } from '../../src/dev/fake-openrouter.js';

// The Responses and Messages shapes of the fake OpenRouter (issue 18, item 6); chat is in fake-openrouter.test.ts.

const AUTH = { authorization: 'Bearer sk-or-test' };
const CONTENT = 'One two three.';
const WORDS = ['One ', 'two ', 'three.'];
/** openai/gpt-4o-mini: $0.15 and $0.60 per million prompt and completion tokens. */
const PROMPT_PRICE = 0.00000015;
const COMPLETION_PRICE = 0.0000006;

async function startFake(t: TestContext, options: FakeOpenRouterOptions = {}): Promise<FakeOpenRouter> {
  const fake = new FakeOpenRouter({ content: CONTENT, ...options });
  await fake.listen();
  t.after(() => fake.close());
  return fake;
}

function post(fake: FakeOpenRouter, path: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${fake.baseUrl}${path}`, {
    method: 'POST', headers: { 'content-type': 'application/json', ...AUTH, ...headers }, body: JSON.stringify(body),
  });
}

interface SseEvent {
  event: string | undefined;
  data: Record<string, unknown>;
}

/** The events of a stream, processing comments left out; each `event:` name must equal its data's `type`. */
function parseSse(text: string): SseEvent[] {
  const blocks = text.split('\n\n');
  assert.equal(blocks.pop(), '', 'the stream ends with a blank line');
  return blocks.filter((b) => !b.startsWith(':')).map((block) => {
    const lines = block.split('\n');
    const event = lines.find((l) => l.startsWith('event: '))?.slice('event: '.length);
    const data = JSON.parse(lines.find((l) => l.startsWith('data: '))!.slice('data: '.length)) as Record<string, unknown>;
    assert.equal(event, data.type, 'the event name is the type of its data');
    return { event, data };
  });
}

function promptTokens(prompt: unknown[]): number {
  return Math.ceil(JSON.stringify(prompt).length / 4);
}

function assertCost(actual: unknown, prompt: number, completion: number): void {
  assert.equal(typeof actual, 'number');
  const expected = prompt * PROMPT_PRICE + completion * COMPLETION_PRICE;
  assert.ok(Math.abs((actual as number) - expected) < 1e-15, `cost ${String(actual)}, expected ${expected}`);
}

const RESPONSES_BODY = { model: 'openai/gpt-4o-mini', instructions: 'Be brief.', input: 'Say hello' };
const MESSAGES_BODY = { model: 'anthropic/claude-3.5-sonnet', max_tokens: 100, system: 'Be brief.', messages: [{ role: 'user', content: 'Say hello' }] };

// --- Responses ---------------------------------------------------------------------------------

test('responses: a non-streaming answer is a completed response with output_text and usage (cost included), recorded like chat', async (t) => {
  const fake = await startFake(t);
  const res = await post(fake, '/responses', RESPONSES_BODY);
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('x-generation-id'), 'gen-1700000000-fake0');
  const body = (await res.json()) as Record<string, any>;
  assert.equal(body.id, 'resp_fake0');
  assert.equal(body.object, 'response');
  assert.equal(body.status, 'completed');
  assert.equal(body.model, 'openai/gpt-4o-mini');
  assert.equal(body.instructions, 'Be brief.');
  assert.deepEqual(body.output, [{ id: 'msg_fake0', type: 'message', role: 'assistant', status: 'completed', content: [{ type: 'output_text', text: CONTENT, annotations: [] }] }]);
  const prompt = promptTokens(['Be brief.', 'Say hello']);
  const { cost, cost_details: _details, ...tokens } = body.usage;
  assert.deepEqual(tokens, {
    input_tokens: prompt, input_tokens_details: { cached_tokens: 0 }, output_tokens: 3, output_tokens_details: { reasoning_tokens: 0 },
    total_tokens: prompt + 3, is_byok: false,
  });
  assertCost(cost, prompt, 3);
  assert.equal(fake.received[0]?.usage?.prompt_tokens, prompt);
  assert.equal(fake.received[0]?.usage?.cost, cost);
});

test('responses: a stream sends created, in_progress, item and part added, a delta per word, the dones, then completed with the usage', async (t) => {
  const fake = await startFake(t, { processingComments: 1 });
  const res = await post(fake, '/responses', { ...RESPONSES_BODY, stream: true });
  assert.equal(res.headers.get('content-type'), 'text/event-stream');
  const text = await res.text();
  assert.ok(text.startsWith(': OPENROUTER PROCESSING\n\n'));
  const events = parseSse(text);
  assert.deepEqual(events.map((e) => e.event), [
    'response.created', 'response.in_progress', 'response.output_item.added', 'response.content_part.added',
    'response.output_text.delta', 'response.output_text.delta', 'response.output_text.delta',
    'response.output_text.done', 'response.content_part.done', 'response.output_item.done', 'response.completed',
  ]);
  assert.deepEqual(events.map((e) => e.data.sequence_number), events.map((_, i) => i));
  assert.deepEqual(events.filter((e) => e.event === 'response.output_text.delta').map((e) => e.data.delta), WORDS);
  assert.equal(events[7]?.data.text, CONTENT);
  assert.equal((events[0]?.data.response as Record<string, unknown>).status, 'in_progress');
  const completed = events.at(-1)?.data.response as Record<string, any>;
  assert.equal(completed.status, 'completed');
  assert.equal(completed.usage.output_tokens, 3);
  assertCost(completed.usage.cost, promptTokens(['Be brief.', 'Say hello']), 3);
  assert.equal(Buffer.concat(fake.received[0]!.sent).toString('utf8'), text);
});

test('responses: input items with input_text parts count as the prompt; max_output_tokens cuts the answer to an incomplete response', async (t) => {
  const fake = await startFake(t);
  const input = [{ role: 'user', content: [{ type: 'input_text', text: 'Say hello' }] }];
  const res = await post(fake, '/responses', { model: 'openai/gpt-4o-mini', input, max_output_tokens: 2 });
  const body = (await res.json()) as Record<string, any>;
  assert.equal(body.status, 'incomplete');
  assert.deepEqual(body.incomplete_details, { reason: 'max_output_tokens' });
  assert.equal(body.output[0].content[0].text, 'One two ');
  assert.equal(body.usage.input_tokens, promptTokens(['', input]));
  assert.equal(body.usage.output_tokens, 2);

  const stream = parseSse(await (await post(fake, '/responses', { model: 'openai/gpt-4o-mini', input, max_output_tokens: 2, stream: true })).text());
  assert.equal(stream.at(-1)?.event, 'response.incomplete');
  assert.equal(stream.filter((e) => e.event === 'response.output_text.delta').length, 2);
});

test('responses: x-fake-usage reports cached and reasoning tokens in the details, or no cost', async (t) => {
  const fake = await startFake(t);
  const res = await post(fake, '/responses', RESPONSES_BODY, { 'x-fake-usage': '{"prompt_tokens":100,"cached_tokens":40,"reasoning_tokens":5,"cost":false}' });
  const { usage } = (await res.json()) as { usage: Record<string, unknown> };
  assert.deepEqual(usage, {
    input_tokens: 100, input_tokens_details: { cached_tokens: 40 }, output_tokens: 8, output_tokens_details: { reasoning_tokens: 5 },
    total_tokens: 108, is_byok: false,
  });
});

test('responses: refusals in OpenRouter\'s shape: no input, an unknown model, no key', async (t) => {
  const fake = await startFake(t);
  const noInput = await post(fake, '/responses', { model: 'openai/gpt-4o-mini' });
  assert.equal(noInput.status, 400);
  assert.deepEqual(await noInput.json(), { error: { code: 400, message: 'Input required: specify "input"' } });
  const unknown = await post(fake, '/responses', { ...RESPONSES_BODY, model: 'nobody/model' });
  assert.deepEqual([unknown.status, await unknown.json()], [400, { error: { code: 400, message: 'nobody/model is not a valid model ID' } }]);
  const noKey = await post(fake, '/responses', RESPONSES_BODY, { authorization: '' });
  assert.deepEqual([noKey.status, await noKey.json()], [401, { error: { code: 401, message: 'No auth credentials found' } }]);
});

test('responses: error-mid-stream sends an error event then response.failed after the events asked for', async (t) => {
  const fake = await startFake(t);
  const res = await post(fake, '/responses', { ...RESPONSES_BODY, stream: true }, { 'x-fake-fault': '{"type":"error-mid-stream","afterEvents":5,"code":"rate_limited","message":"Slow down"}' });
  const events = parseSse(await res.text());
  assert.equal(events.length, 7);
  assert.deepEqual(events[5]?.data, { type: 'error', sequence_number: 5, code: 'rate_limited', message: 'Slow down', param: null });
  const failed = events[6]?.data.response as Record<string, unknown>;
  assert.equal(events[6]?.event, 'response.failed');
  assert.equal(events[6]?.data.sequence_number, 6);
  assert.deepEqual([failed.status, failed.error], ['failed', { code: 'rate_limited', message: 'Slow down' }]);
});

test('responses: the openai SDK\'s responses.create reads the fake, as JSON and as a stream', async (t) => {
  const fake = await startFake(t);
  const client = new OpenAI({ baseURL: fake.baseUrl, apiKey: 'sk-or-test', maxRetries: 0 });
  const response = await client.responses.create({ model: 'openai/gpt-4o-mini', instructions: 'Be brief.', input: 'Say hello' });
  assert.equal(response.output_text, CONTENT);
  assert.equal(response.usage?.output_tokens, 3);

  const stream = await client.responses.create({ model: 'openai/gpt-4o-mini', input: [{ role: 'user', content: 'Say hello' }], stream: true });
  const deltas: string[] = [];
  let completed: OpenAI.Responses.Response | undefined;
  for await (const event of stream) {
    if (event.type === 'response.output_text.delta') deltas.push(event.delta);
    if (event.type === 'response.completed') completed = event.response;
  }
  assert.deepEqual(deltas, WORDS);
  assert.equal(completed?.usage?.total_tokens, (completed?.usage?.input_tokens ?? 0) + 3);

  const helper = client.responses.stream({ model: 'openai/gpt-4o-mini', input: 'Say hello' });
  assert.equal((await helper.finalResponse()).output_text, CONTENT);
});

// --- Messages ----------------------------------------------------------------------------------

test('messages: a non-streaming answer is an Anthropic message; usage splits cache reads and writes from input_tokens, with OpenRouter\'s cost', async (t) => {
  const fake = await startFake(t);
  const res = await post(fake, '/messages', MESSAGES_BODY, { 'x-fake-usage': '{"prompt_tokens":100,"cached_tokens":30,"cache_write_tokens":20}' });
  assert.equal(res.status, 200);
  const body = (await res.json()) as Record<string, any>;
  const { usage, ...message } = body;
  assert.deepEqual(message, {
    id: 'msg_fake0', type: 'message', role: 'assistant', model: 'anthropic/claude-3.5-sonnet',
    content: [{ type: 'text', text: CONTENT }], stop_reason: 'end_turn', stop_sequence: null,
  });
  const { cost, ...tokens } = usage;
  assert.deepEqual(tokens, { input_tokens: 50, cache_creation_input_tokens: 20, cache_read_input_tokens: 30, output_tokens: 3 });
  assert.equal(typeof cost, 'number');
  assert.equal(cost, fake.received[0]?.usage?.cost);
  assert.equal(fake.received[0]?.usage?.prompt_tokens, 100);
});

test('messages: the prompt counts system (string or blocks) and messages; max_tokens cuts the answer with stop_reason max_tokens', async (t) => {
  const fake = await startFake(t);
  const system = [{ type: 'text', text: 'Be brief.' }];
  const body = (await (await post(fake, '/messages', { ...MESSAGES_BODY, system, max_tokens: 1 })).json()) as Record<string, any>;
  assert.equal(body.stop_reason, 'max_tokens');
  assert.deepEqual(body.content, [{ type: 'text', text: 'One ' }]);
  assert.equal(body.usage.input_tokens, promptTokens([system, ...MESSAGES_BODY.messages]));
  assert.equal(body.usage.output_tokens, 1);
});

test('messages: a stream sends message_start, content_block_start, ping, a text_delta per word, content_block_stop, message_delta, message_stop', async (t) => {
  const fake = await startFake(t);
  const text = await (await post(fake, '/messages', { ...MESSAGES_BODY, stream: true })).text();
  const events = parseSse(text);
  assert.deepEqual(events.map((e) => e.event), [
    'message_start', 'content_block_start', 'ping', 'content_block_delta', 'content_block_delta', 'content_block_delta',
    'content_block_stop', 'message_delta', 'message_stop',
  ]);
  const prompt = promptTokens(['Be brief.', ...MESSAGES_BODY.messages]);
  const start = events[0]?.data.message as Record<string, any>;
  assert.deepEqual(start.usage, { input_tokens: prompt, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, output_tokens: 0 });
  assert.deepEqual([start.content, start.stop_reason], [[], null]);
  assert.deepEqual(events[1]?.data.content_block, { type: 'text', text: '' });
  assert.deepEqual(events.slice(3, 6).map((e) => e.data.delta), WORDS.map((w) => ({ type: 'text_delta', text: w })));
  const delta = events[7]!.data as Record<string, any>;
  assert.deepEqual(delta.delta, { stop_reason: 'end_turn', stop_sequence: null });
  assert.equal(delta.usage.output_tokens, 3);
  assert.equal(delta.usage.cost, fake.received[0]?.usage?.cost);
  assert.equal(Buffer.concat(fake.received[0]!.sent).toString('utf8'), text);
});

test('messages: refusals in Anthropic\'s error shape: no max_tokens, no messages, an unknown model, no key, a status fault', async (t) => {
  const fake = await startFake(t);
  const refusal = async (body: unknown, headers: Record<string, string> = {}): Promise<[number, unknown]> => {
    const res = await post(fake, '/messages', body, headers);
    return [res.status, await res.json()];
  };
  const { max_tokens: _cap, ...noCap } = MESSAGES_BODY;
  assert.deepEqual(await refusal(noCap), [400, { type: 'error', error: { type: 'invalid_request_error', message: 'max_tokens: Field required' } }]);
  assert.deepEqual(await refusal({ model: 'anthropic/claude-3.5-sonnet', max_tokens: 5 }), [400, { type: 'error', error: { type: 'invalid_request_error', message: 'messages: Field required' } }]);
  assert.deepEqual(await refusal({ ...MESSAGES_BODY, model: 'nobody/model' }), [400, { type: 'error', error: { type: 'invalid_request_error', message: 'nobody/model is not a valid model ID' } }]);
  assert.deepEqual(await refusal(MESSAGES_BODY, { authorization: '' }), [401, { type: 'error', error: { type: 'authentication_error', message: 'No auth credentials found' } }]);
  assert.deepEqual(await refusal(MESSAGES_BODY, { 'x-fake-fault': '{"type":"status","status":429}' }), [429, { type: 'error', error: { type: 'rate_limit_error', message: 'Rate limit exceeded: free-models-per-min' } }]);
});

test('messages: error-mid-stream sends Anthropic\'s error event (overloaded_error, or the fault\'s code as its type)', async (t) => {
  const fake = await startFake(t);
  const events = parseSse(await (await post(fake, '/messages', { ...MESSAGES_BODY, stream: true }, { 'x-fake-fault': '{"type":"error-mid-stream","afterEvents":4}' })).text());
  assert.deepEqual(events.map((e) => e.event), ['message_start', 'content_block_start', 'ping', 'content_block_delta', 'error']);
  assert.deepEqual(events[4]?.data, { type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } });
  const named = parseSse(await (await post(fake, '/messages', { ...MESSAGES_BODY, stream: true }, { 'x-fake-fault': '{"type":"error-mid-stream","afterEvents":0,"code":"api_error","message":"boom"}' })).text());
  assert.deepEqual(named.map((e) => e.data), [{ type: 'error', error: { type: 'api_error', message: 'boom' } }]);
});

// --- both shapes -------------------------------------------------------------------------------

const SHAPES = [
  { name: 'responses', path: '/responses', body: RESPONSES_BODY, model: 'openai/gpt-4o-mini' },
  { name: 'messages', path: '/messages', body: MESSAGES_BODY, model: 'anthropic/claude-3.5-sonnet' },
] as const;

for (const shape of SHAPES) {
  test(`${shape.name}: x-fake-answer and answer() choose the answer, as JSON and as a stream`, async (t) => {
    const fake = await startFake(t);
    const json = await (await post(fake, shape.path, shape.body, { 'x-fake-answer': JSON.stringify({ [shape.model]: 'short' }) })).text();
    assert.ok(json.includes('"Ok."'), json);
    fake.answer(shape.model, 'Canned reply');
    const deltas = parseSse(await (await post(fake, shape.path, { ...shape.body, stream: true })).text())
      .flatMap((e) => (e.event === 'response.output_text.delta' ? [e.data.delta] : e.event === 'content_block_delta' ? [(e.data.delta as { text: string }).text] : []));
    assert.deepEqual(deltas, ['Canned ', 'reply']);
  });

  test(`${shape.name}: faults apply as in chat: status, latency, garbage, reset before headers and mid-stream, hang, hang after headers, slow stamped stream`, { timeout: 20_000 }, async (t) => {
    const fake = await startFake(t);
    const withFault = (fault: unknown, stream = true): Promise<Response> =>
      post(fake, shape.path, { ...shape.body, stream }, { 'x-fake-fault': JSON.stringify(fault) });

    const status = await withFault({ type: 'status', status: 503, body: { custom: true } }, false);
    assert.deepEqual([status.status, await status.json()], [503, { custom: true }]);

    const late = await withFault({ type: 'latency', ms: 1 });
    assert.equal(late.status, 200);
    assert.ok(parseSse(await late.text()).length > 5);

    const garbage = await withFault({ type: 'garbage' });
    assert.equal(await garbage.text(), '<html>502 Bad Gateway</html>');

    await assert.rejects(withFault({ type: 'reset-before-headers' }));

    const reset = await withFault({ type: 'reset-mid-stream', afterEvents: 2 });
    assert.equal(reset.status, 200);
    await assert.rejects(reset.text());
    const resetRecord = fake.received.at(-1)!;
    assert.equal(parseSse(Buffer.concat(resetRecord.sent).toString('utf8')).length, 2, 'two events, then the reset');

    for (const fault of [{ type: 'hang' }, { type: 'hang-after-headers' }]) {
      const arrived = fake.nextRequest();
      const controller = new AbortController();
      const hanging = fetch(`${fake.baseUrl}${shape.path}`, {
        method: 'POST', signal: controller.signal,
        headers: { 'content-type': 'application/json', ...AUTH, 'x-fake-fault': JSON.stringify(fault) }, body: JSON.stringify({ ...shape.body, stream: true }),
      });
      const record = await arrived;
      if (fault.type === 'hang-after-headers') {
        const res = await hanging;
        const reader = res.body!.getReader();
        const first = await reader.read();
        assert.equal(Buffer.from(first.value!).toString('utf8'), ': OPENROUTER PROCESSING\n\n');
        controller.abort();
        await reader.closed.catch(() => {});
      } else {
        controller.abort();
        await assert.rejects(hanging);
      }
      assert.equal(await record.outcome, 'aborted');
    }

    const before = process.hrtime.bigint();
    const stamped = parseSse(await (await withFault({ type: 'slow-stream', ms: 1, stamp: true })).text());
    let previous = before;
    for (const { data } of stamped) {
      const sent = BigInt(data.x_sent_ns as string);
      assert.ok(sent > previous, 'every event is stamped, later than the one before');
      previous = sent;
    }
  });
}

test('paths that name no shape are 404s, prototype members included', async (t) => {
  const fake = await startFake(t);
  for (const path of ['__proto__', 'constructor', '/toString', '/responses/extra']) {
    const res = await post(fake, path, MESSAGES_BODY);
    assert.equal(res.status, 404, path);
    assert.deepEqual(await res.json(), { error: { code: 404, message: 'Not Found' } });
  }
});
