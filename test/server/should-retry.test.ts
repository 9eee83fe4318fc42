import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import OpenAI from 'openai';
import type { Fault } from '../../src/dev/fake-openrouter.js';
import { CHAT_BODY, startHarness, type Harness } from '../support/harness.js';
import { rawRequest } from '../support/http.js';

const MESSAGES = [...CHAT_BODY.messages];

/**
 * Signalbox with `env` in front of the fake, and the official SDK with its default retries
 * (`maxRetries` 2 unless given), every request of which carries `fault` to the fake.
 */
async function sdkAgainst(t: TestContext, env: Record<string, string>, fault: Fault, maxRetries?: number): Promise<{ h: Harness; client: OpenAI }> {
  const h = await startHarness({ env: { OPENROUTER_API_KEY: 'sk-or-server', ...env } });
  t.after(() => h.close());
  const client = new OpenAI({
    baseURL: `${h.url}/v1`, apiKey: 'sk-client', defaultHeaders: { 'x-fake-fault': JSON.stringify(fault) },
    ...(maxRetries !== undefined && { maxRetries }),
  });
  return { h, client };
}

/** The SDK's error for a chat completion that must fail. */
async function apiError(client: OpenAI): Promise<InstanceType<typeof OpenAI.APIError>> {
  try {
    await client.chat.completions.create({ model: CHAT_BODY.model, messages: MESSAGES });
  } catch (err) {
    assert.ok(err instanceof OpenAI.APIError, `expected an APIError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected the call to fail');
}

test('a 429 the proxy retried reaches the SDK with x-should-retry: false, and the SDK does not call again', async (t) => {
  const { h, client } = await sdkAgainst(t, { RETRY_MAX_ATTEMPTS: '3' }, { type: 'status', status: 429 });
  const err = await apiError(client);

  assert.equal(err.status, 429);
  assert.equal(err.headers?.get('x-should-retry'), 'false');
  assert.equal(err.headers?.get('x-signalbox-attempts'), '3');
  // The proxy's 3 attempts, not 3 times the SDK's 3 calls.
  assert.equal(h.fake.received.length, 3);
});

test('a 429 the proxy did not retry leaves the retry to the SDK', async (t) => {
  const { h, client } = await sdkAgainst(t, { RETRY_MAX_ATTEMPTS: '1' }, { type: 'status', status: 429 }, 1);
  const err = await apiError(client);

  assert.equal(err.status, 429);
  assert.equal(err.headers?.get('x-should-retry'), null);
  assert.equal(h.fake.received.length, 2);
});

test('an upstream 400 carries x-should-retry: false', async (t) => {
  const { h, client } = await sdkAgainst(t, { RETRY_MAX_ATTEMPTS: '3' }, { type: 'status', status: 400 });
  const err = await apiError(client);

  assert.equal(err.status, 400);
  assert.equal(err.headers?.get('x-should-retry'), 'false');
  assert.equal(h.fake.received.length, 1);
});

test("the proxy's own 502 after its retries carries x-should-retry: false, and the SDK does not call again", async (t) => {
  const { h, client } = await sdkAgainst(t, { RETRY_MAX_ATTEMPTS: '3' }, { type: 'reset-before-headers' });
  const err = await apiError(client);

  assert.equal(err.status, 502);
  assert.equal((err.error as { code?: string } | undefined)?.code, 'upstream_unreachable');
  assert.equal(err.headers?.get('x-should-retry'), 'false');
  assert.equal(h.fake.received.length, 3);
});

test("the proxy's own 502 after a single attempt carries x-should-retry: true", async (t) => {
  const { h, client } = await sdkAgainst(t, { RETRY_MAX_ATTEMPTS: '1' }, { type: 'reset-before-headers' }, 0);
  const err = await apiError(client);

  assert.equal(err.status, 502);
  assert.equal(err.headers?.get('x-should-retry'), 'true');
  assert.equal(h.fake.received.length, 1);
});

test("the proxy's own errors before any upstream call carry their class's x-should-retry", async (t) => {
  const h = await startHarness();
  t.after(() => h.close());
  const post = (path: string, body: string) => rawRequest(h.url, {
    method: 'POST', path, headers: { 'content-type': 'application/json', authorization: 'Bearer sk-client' }, body,
  });

  const invalidJson = await post('/v1/chat/completions', '{"model":');
  assert.equal(invalidJson.status, 400);
  assert.equal(invalidJson.headers['x-should-retry'], 'false');

  const notFound = await rawRequest(h.url, { path: '/nowhere' });
  assert.equal(notFound.status, 404);
  assert.equal(notFound.headers['x-should-retry'], 'false');

  // Draining: this instance will not serve it, another one can.
  h.lifecycle.startDraining();
  const draining = await post('/v1/chat/completions', JSON.stringify(CHAT_BODY));
  assert.equal(draining.status, 503);
  assert.equal(draining.headers['x-should-retry'], 'true');
  assert.equal(h.fake.received.length, 0);
});
