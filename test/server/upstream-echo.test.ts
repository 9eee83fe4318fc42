import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { startHarness, type Harness } from '../support/harness.js';
import { jsonOf, rawRequest, type RawResponse } from '../support/http.js';

/**
 * Issue 12, defects 14 and 24: what an upstream sends back cannot forge the proxy's own headers,
 * nor hand the server key to a client.
 */

const SERVER_KEY = 'sk-or-v1-server-key-that-upstream-echoes';
const RULES = `
version: 1
rules:
  - name: to-mini
    route: { model: openai/gpt-4o-mini }
`;
const CHAT_BODY = JSON.stringify({ model: 'auto', messages: [{ role: 'user', content: 'hi' }] });

async function harness(t: TestContext): Promise<Harness> {
  const h = await startHarness({ env: { OPENROUTER_API_KEY: SERVER_KEY }, rules: RULES });
  t.after(() => h.close());
  return h;
}

function chat(h: Harness, fault: unknown, headers: Record<string, string> = {}): Promise<RawResponse> {
  return rawRequest(h.url, {
    method: 'POST', path: '/v1/chat/completions', body: CHAT_BODY,
    headers: { 'content-type': 'application/json', 'x-fake-fault': JSON.stringify(fault), ...headers },
  });
}

const FORGED = {
  'x-request-id': 'forged-by-upstream', 'x-signalbox-rule': 'forged-rule', 'x-signalbox-model': 'forged/model',
  'x-signalbox-attempts': '99', 'x-signalbox-overhead-ms': '123456',
};

test("upstream copies of the proxy's own headers are dropped: the proxy's values reach the client (D14)", async (t) => {
  const h = await harness(t);
  const res = await chat(h, { type: 'status', status: 200, body: { id: 'x', choices: [] }, headers: FORGED }, { 'x-request-id': 'client-req-d14' });
  assert.equal(res.status, 200);
  assert.equal(res.headers['x-request-id'], 'client-req-d14');
  assert.equal(res.headers['x-signalbox-rule'], 'to-mini');
  assert.equal(res.headers['x-signalbox-model'], 'openai/gpt-4o-mini');
  assert.equal(res.headers['x-signalbox-attempts'], '1');
  assert.notEqual(res.headers['x-signalbox-overhead-ms'], '123456');
  // The pass-through route sets no model header itself: the upstream's is not passed on either.
  const models = await rawRequest(h.url, { path: '/v1/models', headers: { 'x-request-id': 'client-req-d14b', 'x-fake-fault': JSON.stringify({ type: 'status', status: 200, body: { data: [] }, headers: FORGED }) } });
  assert.equal(models.status, 200);
  assert.equal(models.headers['x-request-id'], 'client-req-d14b');
  assert.equal(models.headers['x-signalbox-model'], undefined);
  assert.equal(models.headers['x-signalbox-rule'], undefined);
});

const ECHO = { type: 'status', status: 401, body: { error: { code: 401, message: `No auth credentials found for Bearer ${SERVER_KEY}` } }, headers: { 'www-authenticate': `Bearer error="invalid_token", token="${SERVER_KEY}"` } };

test('an upstream error that echoes the server key reaches the client with the key scrubbed, body and headers (D24)', async (t) => {
  const h = await harness(t);
  for (const res of [await chat(h, ECHO), await rawRequest(h.url, { path: '/v1/models', headers: { 'x-fake-fault': JSON.stringify(ECHO) } })]) {
    assert.equal(res.status, 401);
    const raw = `${JSON.stringify(res.headers)}${res.body.toString('latin1')}`;
    assert.equal(raw.includes(SERVER_KEY), false, raw);
    assert.equal(jsonOf<{ error: { message: string } }>(res).error.message, 'No auth credentials found for Bearer [redacted]');
    assert.equal(res.headers['www-authenticate'], 'Bearer error="invalid_token", token="[redacted]"');
    // Scrubbing changes the length: the body goes out chunked.
    assert.equal(res.headers['content-length'], undefined);
  }
});

test('a large upstream error body is relayed whole, every echo of the key scrubbed, without holding it (D24)', async (t) => {
  const h = await harness(t);
  const filler = 'x'.repeat(64 * 1024);
  const message = [filler, SERVER_KEY, filler, SERVER_KEY, filler, SERVER_KEY].join(' ');
  // Queued, not sent in x-fake-fault: a header that size would be refused (431) before the upstream.
  h.fake.enqueue({ type: 'status', status: 500, body: { error: { message } } });
  const res = await rawRequest(h.url, { method: 'POST', path: '/v1/chat/completions', body: CHAT_BODY, headers: { 'content-type': 'application/json' } });
  assert.equal(res.status, 500);
  assert.equal(res.body.toString('latin1').includes(SERVER_KEY), false);
  assert.equal(jsonOf<{ error: { message: string } }>(res).error.message, message.replaceAll(SERVER_KEY, '[redacted]'));
});

test('a 2xx body is relayed byte for byte, whatever it holds (D24 scrubs error bodies only)', async (t) => {
  const h = await harness(t);
  const body = { id: 'x', choices: [{ message: { content: `echo ${SERVER_KEY}` } }] };
  const res = await chat(h, { type: 'status', status: 200, body });
  assert.equal(res.status, 200);
  assert.deepEqual(res.body, Buffer.from(JSON.stringify(body)));
});
