import assert from 'node:assert/strict';
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import { test, type TestContext } from 'node:test';
import { CHAT_BODY, startHarness, type Harness } from '../support/harness.js';
import { jsonOf, rawRequest } from '../support/http.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

async function harness(t: TestContext): Promise<Harness> {
  const h = await startHarness({ env: { OPENROUTER_API_KEY: 'sk-or-v1-server-key-health' } });
  t.after(() => h.close());
  return h;
}

interface JsonResponse {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  /** The parsed body; undefined when the body is empty. */
  readonly json: unknown;
}

/**
 * node:http over a keep-alive agent: the client asks to keep the connection, so a
 * `connection: close` in the answer is the server's decision. A body is sent as JSON.
 */
async function call(h: Harness, method: string, path: string, body?: string, headers: OutgoingHttpHeaders = {}): Promise<JsonResponse> {
  const allHeaders = body === undefined ? headers : { ...headers, 'content-type': 'application/json' };
  const res = await rawRequest(h.url, { method, path, body, headers: allHeaders, agent: 'keep-alive' });
  return { status: res.status, headers: res.headers, json: res.body.length === 0 ? undefined : jsonOf(res) };
}

function chat(h: Harness, headers: OutgoingHttpHeaders = {}): Promise<JsonResponse> {
  return call(h, 'POST', '/v1/chat/completions', JSON.stringify(CHAT_BODY), headers);
}

test('/healthz and /readyz answer 200 when the server is ready', async (t) => {
  const h = await harness(t);
  const health = await call(h, 'GET', '/healthz');
  assert.equal(health.status, 200);
  assert.deepEqual(health.json, { status: 'ok' });
  const ready = await call(h, 'GET', '/readyz');
  assert.equal(ready.status, 200);
  assert.deepEqual(ready.json, { status: 'ready' });
});

test('/readyz is 503 while starting, /healthz stays 200', async (t) => {
  const h = await harness(t);
  h.lifecycle.state = 'starting';
  const ready = await call(h, 'GET', '/readyz');
  assert.equal(ready.status, 503);
  assert.deepEqual(ready.json, { status: 'starting' });
  const health = await call(h, 'GET', '/healthz');
  assert.equal(health.status, 200);
  assert.deepEqual(health.json, { status: 'ok' });
});

test('while draining, /readyz is 503, /healthz 200 and chat requests get 503 shutting_down with connection: close', async (t) => {
  const h = await harness(t);
  h.lifecycle.startDraining();
  const ready = await call(h, 'GET', '/readyz');
  assert.equal(ready.status, 503);
  assert.deepEqual(ready.json, { status: 'draining' });
  const health = await call(h, 'GET', '/healthz');
  assert.equal(health.status, 200);
  assert.deepEqual(health.json, { status: 'ok' });

  const res = await chat(h);
  assert.equal(res.status, 503);
  assert.equal(res.headers.connection, 'close');
  const body = res.json as { error: { code: string; type: string; message: string } };
  assert.equal(body.error.code, 'shutting_down');
  assert.equal(body.error.type, 'server_error');
  assert.equal(typeof body.error.message, 'string');
  assert.equal(h.fake.received.length, 0);
});

test("a client's safe x-request-id is echoed, sent upstream and used as the log reqId", async (t) => {
  const h = await harness(t);
  for (const id of ['trace-42.abc_DEF:7', 'a'.repeat(128)]) {
    const res = await chat(h, { 'x-request-id': id });
    assert.equal(res.status, 200);
    assert.equal(res.headers['x-request-id'], id);
    assert.equal(h.fake.received.at(-1)?.headers['x-request-id'], id);
    const line = await h.logs.requestLine(id);
    assert.equal(line.path, '/v1/chat/completions');
    assert.equal(line.status, 200);
  }
});

test('an unsafe x-request-id is replaced by a UUID everywhere', async (t) => {
  const h = await harness(t);
  for (const id of ['bad id with spaces', 'a'.repeat(200), 'x\u00e9y']) {
    await t.test(JSON.stringify(id.length > 20 ? `${id.slice(0, 10)}... (${id.length} chars)` : id), async () => {
      const res = await chat(h, { 'x-request-id': id });
      assert.equal(res.status, 200);
      const replaced = String(res.headers['x-request-id']);
      assert.match(replaced, UUID);
      assert.equal(h.fake.received.at(-1)?.headers['x-request-id'], replaced);
      const line = await h.logs.requestLine(replaced);
      assert.equal(line.path, '/v1/chat/completions');
      assert.ok(!h.logs.records.some((r) => r.reqId === id), 'the unsafe id is never logged as reqId');
    });
  }
});
