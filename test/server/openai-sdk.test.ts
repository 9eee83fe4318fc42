import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import OpenAI from 'openai';
import { CHAT_BODY, startHarness, type Harness } from '../support/harness.js';

/** The official SDK pointed at Signalbox, without retries so that one call is one upstream request. */
async function sdkClient(t: TestContext): Promise<{ h: Harness; client: OpenAI }> {
  const h = await startHarness({ env: { OPENROUTER_API_KEY: 'sk-or-server' } });
  t.after(() => h.close());
  const client = new OpenAI({ baseURL: `${h.url}/v1`, apiKey: 'sk-client', maxRetries: 0 });
  return { h, client };
}

const MESSAGES = [...CHAT_BODY.messages];

/** OpenRouter's usage carries `cost`, which the SDK's types do not know. */
type UsageWithCost = OpenAI.CompletionUsage & { cost?: number };

test('the SDK gets a non-streaming completion with the content and the usage, cost included', async (t) => {
  const { h, client } = await sdkClient(t);
  const completion = await client.chat.completions.create({ model: CHAT_BODY.model, messages: MESSAGES });

  assert.equal(completion.choices[0]?.message.content, h.fake.options.content);
  assert.equal(completion.choices[0]?.finish_reason, 'stop');
  const expected = h.fake.received[0]?.usage;
  assert.ok(expected);
  const usage = completion.usage as UsageWithCost;
  assert.equal(usage.prompt_tokens, expected.prompt_tokens);
  assert.equal(usage.completion_tokens, expected.completion_tokens);
  assert.equal(usage.cost, expected.cost);
  assert.equal(h.fake.received[0]?.headers.authorization, 'Bearer sk-or-server');
});

test('the SDK streams chunks whose content adds up to the reply and whose last chunk carries usage.cost', async (t) => {
  const { h, client } = await sdkClient(t);
  const stream = await client.chat.completions.create({ model: CHAT_BODY.model, messages: MESSAGES, stream: true });

  const chunks: OpenAI.ChatCompletionChunk[] = [];
  for await (const chunk of stream) chunks.push(chunk);

  assert.equal(chunks.map((c) => c.choices[0]?.delta.content ?? '').join(''), h.fake.options.content);
  const last = chunks[chunks.length - 1];
  assert.equal((last?.usage as UsageWithCost | undefined)?.cost, h.fake.received[0]?.usage?.cost);
  assert.equal(chunks.filter((c) => c.usage).length, 1);
});

test('the SDK lists the models', async (t) => {
  const { client } = await sdkClient(t);
  const page = await client.models.list();
  const ids = page.data.map((m) => m.id);
  // The fake's catalog: real models first, then the ids the tests invent.
  assert.equal(ids[0], 'openai/gpt-4o-mini');
  assert.ok(ids.includes('anthropic/claude-3.5-sonnet'));
});

test('an upstream 429 surfaces in the SDK as RateLimitError with status 429', async (t) => {
  const { h, client } = await sdkClient(t);
  h.fake.enqueue({ type: 'status', status: 429, headers: { 'retry-after': '7' } });

  await assert.rejects(client.chat.completions.create({ model: CHAT_BODY.model, messages: MESSAGES }), (err: unknown) => {
    assert.ok(err instanceof OpenAI.RateLimitError);
    assert.equal(err.status, 429);
    assert.equal(err.headers?.get('retry-after'), '7');
    assert.match(err.message, /Rate limit exceeded: free-models-per-min/);
    return true;
  });
  assert.equal(h.fake.received.length, 1);
});

test('an in-band error mid-stream makes the SDK stream iteration throw', async (t) => {
  const { h, client } = await sdkClient(t);
  h.fake.enqueue({ type: 'error-mid-stream', afterEvents: 2, code: 'server_error', message: 'Provider disconnected unexpectedly' });
  const stream = await client.chat.completions.create({ model: CHAT_BODY.model, messages: MESSAGES, stream: true });

  const contents: string[] = [];
  await assert.rejects(
    (async () => {
      for await (const chunk of stream) contents.push(chunk.choices[0]?.delta.content ?? '');
    })(),
    (err: unknown) => {
      assert.ok(err instanceof OpenAI.APIError);
      assert.equal(err.message, 'Provider disconnected unexpectedly');
      assert.equal(err.code, 'server_error');
      return true;
    },
  );
  // The role chunk and the first word came before the error.
  assert.deepEqual(contents, ['', h.fake.options.content.split(' ')[0] + ' ']);
  assert.equal(h.fake.received.length, 1);
});
