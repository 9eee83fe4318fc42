import assert from 'node:assert/strict';
import type { OutgoingHttpHeaders } from 'node:http';
import { test, type TestContext } from 'node:test';
import type { ReceivedRequest } from '../../src/dev/fake-openrouter.js';
import { modelOf } from '../../src/server/routes/passthrough.js';
import { startHarness, type Harness } from '../support/harness.js';
import { rawRequest, type RawResponse } from '../support/http.js';

const SERVER_KEY = 'sk-or-v1-server-key-passthrough';

async function harness(t: TestContext): Promise<Harness> {
  const h = await startHarness({ env: { OPENROUTER_API_KEY: SERVER_KEY } });
  t.after(() => h.close());
  return h;
}

/** The path goes on the wire exactly as written (fetch would normalise `..`). */
function call(h: Harness, method: string, path: string, body?: string | Buffer, headers: OutgoingHttpHeaders = {}): Promise<RawResponse> {
  return rawRequest(h.url, { method, path, body, headers, agent: 'keep-alive' });
}

function only(h: Harness): ReceivedRequest {
  assert.equal(h.fake.received.length, 1, 'exactly one upstream request');
  return h.fake.received[0]!;
}

function assertEnvelope(res: RawResponse, status: number, code: string, type: string): void {
  const text = res.body.toString('utf8');
  assert.equal(res.status, status, text);
  const parsed = JSON.parse(text) as { error: { message: unknown; type: unknown; code: unknown } };
  assert.deepEqual(Object.keys(parsed), ['error']);
  assert.equal(parsed.error.code, code);
  assert.equal(parsed.error.type, type);
  assert.equal(typeof parsed.error.message, 'string');
  assert.notEqual(parsed.error.message, '');
}

test('GET /v1/models returns the upstream catalog byte for byte', async (t) => {
  const h = await harness(t);
  const res = await call(h, 'GET', '/v1/models');
  const rec = only(h);
  assert.equal(rec.method, 'GET');
  assert.equal(rec.url, '/api/v1/models');
  assert.equal(rec.headers.authorization, `Bearer ${SERVER_KEY}`);
  assert.equal(res.status, 200);
  assert.deepEqual(res.body, Buffer.concat(rec.sent));
  assert.equal(res.headers['content-type'], 'application/json');
});

test('POST /v1/embeddings is forwarded with the body and the response unchanged', async (t) => {
  const h = await harness(t);
  const body = Buffer.from('{ "model" : "openai/text-embedding-3-small",\n  "input": ["a", "b"], "dimensions": 1.0 }', 'utf8');
  const res = await call(h, 'POST', '/v1/embeddings', body, { 'content-type': 'application/json' });
  const rec = only(h);
  assert.equal(rec.method, 'POST');
  assert.equal(rec.url, '/api/v1/embeddings');
  assert.deepEqual(rec.body, body);
  assert.equal(res.status, 200);
  assert.deepEqual(res.body, Buffer.concat(rec.sent));
});

test('a text/plain POST /v1/completions is forwarded and the upstream 404 comes back as it is', async (t) => {
  const h = await harness(t);
  const body = 'Once upon a time';
  const res = await call(h, 'POST', '/v1/completions', body, { 'content-type': 'text/plain' });
  const rec = only(h);
  assert.equal(rec.url, '/api/v1/completions');
  assert.equal(rec.headers['content-type'], 'text/plain');
  assert.deepEqual(rec.body, Buffer.from(body));
  assert.equal(res.status, 404);
  assert.deepEqual(res.body, Buffer.concat(rec.sent));
  assert.deepEqual(JSON.parse(res.body.toString('utf8')), { error: { code: 404, message: 'Not Found' } });
});

test('the query string of a passthrough request is preserved', async (t) => {
  const h = await harness(t);
  const res = await call(h, 'GET', '/v1/models?supported_parameters=tools');
  assert.equal(res.status, 200);
  assert.equal(only(h).url, '/api/v1/models?supported_parameters=tools');
});

test('paths that climb are refused with 400 invalid_path and never reach upstream', async (t) => {
  const h = await harness(t);
  for (const path of ['/v1/../admin', '/v1/%2e%2e/keys', '/v1/models/./x', '/v1/models/%2E%2E/%2e%2e/admin']) {
    await t.test(path, async () => {
      const res = await call(h, 'GET', path);
      assertEnvelope(res, 400, 'invalid_path', 'invalid_request_error');
      assert.equal(h.fake.received.length, 0);
    });
  }
});

test('an unknown path outside /v1 is a 404 in the OpenAI envelope', async (t) => {
  const h = await harness(t);
  for (const [method, path] of [['GET', '/admin'], ['POST', '/v2/chat/completions']] as const) {
    await t.test(`${method} ${path}`, async () => {
      const res = await call(h, method, path);
      assertEnvelope(res, 404, 'not_found', 'not_found_error');
      assert.equal(h.fake.received.length, 0);
    });
  }
});

test('the model of a pass-through body is read without parsing the body whole', () => {
  const input = 'word '.repeat(400_000);
  const parse = JSON.parse;
  let longest = 0;
  JSON.parse = ((text: string) => {
    longest = Math.max(longest, text.length);
    return parse(text);
  }) as typeof JSON.parse;
  let first: string | undefined;
  let last: string | undefined;
  try {
    first = modelOf(Buffer.from(JSON.stringify({ model: 'openai/text-embedding-3-small', input })));
    last = modelOf(Buffer.from(JSON.stringify({ input, model: 'openai/text-embedding-3-small' })));
  } finally {
    JSON.parse = parse;
  }
  assert.equal(first, 'openai/text-embedding-3-small');
  assert.equal(last, 'openai/text-embedding-3-small');
  assert.ok(longest < 1000, `JSON.parse was given ${longest} characters`);
  assert.equal(modelOf(Buffer.from('{"input":"\\"model\\":\\"x\\"","model":{"id":"y"}}')), undefined, 'a model that is not a string');
  assert.equal(modelOf(Buffer.from('not json')), undefined);
});
