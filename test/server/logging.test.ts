import assert from 'node:assert/strict';
import type { OutgoingHttpHeaders } from 'node:http';
import { test, type TestContext } from 'node:test';
import { createLogger } from '../../src/server/logger.js';
import { CHAT_BODY, LogCapture, startHarness, type Harness, type HarnessOptions, type LogRecord } from '../support/harness.js';
import { rawRequest, type RawResponse } from '../support/http.js';

/** One request with node:http; `body` holds every byte received, for the bytes_out checks. */
function send(h: Harness, method: string, path: string, headers: OutgoingHttpHeaders, body?: string): Promise<RawResponse> {
  return rawRequest(h.url, { method, path, headers, body });
}

function postChat(h: Harness, reqId: string, body: string, headers: OutgoingHttpHeaders = {}, query = ''): Promise<RawResponse> {
  return send(h, 'POST', `/v1/chat/completions${query}`, { 'content-type': 'application/json', 'x-request-id': reqId, ...headers }, body);
}

async function harness(t: TestContext, options: HarnessOptions): Promise<Harness> {
  const h = await startHarness(options);
  t.after(() => h.close());
  return h;
}

/** A harness whose upstream is gone: every request fails to connect. */
async function unreachableHarness(t: TestContext, env: Record<string, string>): Promise<Harness> {
  const h = await harness(t, { env });
  await h.fake.close();
  return h;
}

function requestLines(h: Harness, reqId: string): LogRecord[] {
  return h.logs.records.filter((r) => r.msg === 'request' && r.reqId === reqId);
}

test('one request line per request, with what happened', async (t) => {
  const h = await harness(t, { env: { OPENROUTER_API_KEY: 'sk-or-server' } });
  const streamBody = JSON.stringify({ ...CHAT_BODY, stream: true });
  const jsonBody = JSON.stringify(CHAT_BODY);
  // An upstream 400, made by the fake on request.
  const badBody = JSON.stringify({ ...CHAT_BODY, model: 'openai/gpt-4o' });
  const upstream400 = { 'x-fake-fault': JSON.stringify({ type: 'status', status: 400 }) };
  const cases = [
    { id: 'log-stream-1', body: streamBody, query: '?trace=1&key=abc', status: 200, model: CHAT_BODY.model, stream: true, headers: {} },
    { id: 'log-json-1', body: jsonBody, query: '', status: 200, model: CHAT_BODY.model, stream: false, headers: {} },
    { id: 'log-bad-1', body: badBody, query: '', status: 400, model: 'openai/gpt-4o', stream: false, headers: upstream400 },
  ];
  const responses = await Promise.all(cases.map((c) => postChat(h, c.id, c.body, c.headers, c.query)));
  const lines = await Promise.all(cases.map((c) => h.logs.requestLine(c.id)));

  cases.forEach((c, i) => {
    const res = responses[i]!;
    const line = lines[i]!;
    assert.equal(res.status, c.status, c.id);
    assert.equal(res.headers['x-request-id'], c.id);
    assert.equal(requestLines(h, c.id).length, 1, `${c.id}: exactly one request line`);
    assert.equal(line.level, 30, c.id);
    assert.equal(line.method, 'POST', c.id);
    assert.equal(line.path, '/v1/chat/completions', c.id);
    assert.equal(line.status, c.status, c.id);
    assert.equal(typeof line.duration_ms, 'number', c.id);
    assert.ok(Number.isFinite(line.duration_ms) && (line.duration_ms as number) >= 0, `${c.id}: duration_ms ${String(line.duration_ms)}`);
    assert.equal(line.bytes_in, Buffer.byteLength(c.body), c.id);
    assert.equal(line.bytes_out, res.body.length, c.id);
    assert.equal(line.model, c.model, c.id);
    assert.equal(line.rule, 'none', c.id);
    assert.equal(line.routed_model, undefined, c.id);
    assert.equal(line.stream === true, c.stream, c.id);
    assert.equal(line.upstream_status, c.status, c.id);
    assert.equal(line.client_closed, undefined, c.id);
    assert.equal(line.error_code, undefined, c.id);
  });
  assert.equal(h.logs.records.filter((r) => r.msg === 'request').length, 3);
});

test("the request line of a body the proxy rejects counts the body's bytes", async (t) => {
  const h = await harness(t, { env: { OPENROUTER_API_KEY: 'sk-or-server' } });
  const cases = [
    { id: 'log-malformed-1', body: '{"model": "openai/gpt-4o", "messages": [', code: 'invalid_json' },
    { id: 'log-not-object-1', body: '[{"model": "openai/gpt-4o"}]', code: 'invalid_body' },
  ];
  for (const c of cases) {
    const res = await postChat(h, c.id, c.body);
    assert.equal(res.status, 400, c.id);
    const line = await h.logs.requestLine(c.id);
    assert.equal(line.status, 400, c.id);
    assert.equal(line.error_code, c.code, c.id);
    assert.equal(line.bytes_out, res.body.length, c.id);
    assert.equal(line.upstream_status, undefined, c.id);
    assert.equal(line.bytes_in, Buffer.byteLength(c.body), c.id);
  }
  assert.equal(h.fake.received.length, 0);
});

const SERVER_SECRET = 'sk-or-SERVERSECRET';
const CLIENT_SECRET = 'sy-CLIENTSECRET';
const SECRET_ENV = { OPENROUTER_API_KEY: SERVER_SECRET, SIGNALBOX_API_KEYS: CLIENT_SECRET, LOG_LEVEL: 'debug' };
const CLIENT_AUTH = { authorization: `Bearer ${CLIENT_SECRET}` };
/** The fake reads its fault from this header, so it applies to exactly that request. */
const UPSTREAM_401 = JSON.stringify({ type: 'status', status: 401 });

function assertNoSecret(what: string, text: string): void {
  for (const secret of ['SERVERSECRET', 'CLIENTSECRET']) {
    assert.equal(text.includes(secret), false, `${what} contains ${secret}: ${text}`);
  }
}

function assertResponseClean(id: string, res: RawResponse): void {
  assertNoSecret(`${id} body`, res.body.toString('latin1'));
  assertNoSecret(`${id} headers`, JSON.stringify(res.headers));
}

test('no secret appears in logs or responses, whatever fails', async (t) => {
  const h = await harness(t, { env: SECRET_ENV });
  const requests: [string, () => Promise<RawResponse>, number][] = [
    ['sec-ok', () => postChat(h, 'sec-ok', JSON.stringify(CHAT_BODY), CLIENT_AUTH), 200],
    ['sec-stream', () => postChat(h, 'sec-stream', JSON.stringify({ ...CHAT_BODY, stream: true }), CLIENT_AUTH), 200],
    ['sec-upstream-401', () => send(h, 'GET', '/v1/models', { ...CLIENT_AUTH, 'x-request-id': 'sec-upstream-401', 'x-fake-fault': UPSTREAM_401 }), 401],
    ['sec-malformed', () => postChat(h, 'sec-malformed', '{"model": ', CLIENT_AUTH), 400],
    ['sec-wrong-key', () => postChat(h, 'sec-wrong-key', JSON.stringify(CHAT_BODY), { authorization: 'Bearer sy-wrong' }), 401],
    ['sec-health', () => send(h, 'GET', '/healthz', { ...CLIENT_AUTH, 'x-request-id': 'sec-health' }), 200],
  ];
  for (const [id, run, status] of requests) {
    const res = await run();
    assert.equal(res.status, status, id);
    assertResponseClean(id, res);
    await h.logs.requestLine(id);
  }
  // The upstream 401 really was the fake's (so its path through the proxy was exercised).
  assert.equal(h.fake.received.find((r) => r.url === '/api/v1/models')?.fault?.type, 'status');
  assertNoSecret('log output', h.logs.text);

  const down = await unreachableHarness(t, SECRET_ENV);
  const res = await postChat(down, 'sec-unreachable', JSON.stringify(CHAT_BODY), CLIENT_AUTH);
  assert.equal(res.status, 502);
  assertResponseClean('sec-unreachable', res);
  await down.logs.requestLine('sec-unreachable');
  assertNoSecret('log output (unreachable upstream)', down.logs.text);
});

test('createLogger censors authorization headers and api keys', async () => {
  const logs = new LogCapture();
  const logger = createLogger('info', logs);
  logger.info({ headers: { authorization: 'Bearer unit-secret-1', 'x-foo': 'bar' } }, 'headers');
  logger.info({ api_key: 'unit-secret-2' }, 'key');
  const headers = await logs.waitFor((r) => r.msg === 'headers');
  const key = await logs.waitFor((r) => r.msg === 'key');
  assert.deepEqual(headers.headers, { authorization: '[redacted]', 'x-foo': 'bar' });
  assert.equal(key.api_key, '[redacted]');
  assert.equal(logs.text.includes('unit-secret'), false);
});

/** Every log record of one request must be free of stack traces. */
function assertNoStack(h: Harness, reqId: string): void {
  for (const record of h.logs.records.filter((r) => r.reqId === reqId)) {
    const text = JSON.stringify(record);
    assert.equal(/"stack"|\\n\s+at /.test(text), false, `stack trace in ${text}`);
  }
}

test('an unreachable upstream is logged on the request line at warn, without a stack', async (t) => {
  const h = await unreachableHarness(t, { OPENROUTER_API_KEY: 'sk-or-server' });
  const res = await postChat(h, 'log-502', JSON.stringify(CHAT_BODY));
  assert.equal(res.status, 502);
  const line = await h.logs.requestLine('log-502');
  assert.equal(line.level, 40);
  assert.equal(line.status, 502);
  assert.equal(line.error_code, 'upstream_unreachable');
  assert.equal(typeof line.error, 'string');
  assert.equal(line.upstream_status, undefined);
  assert.equal(line.model, CHAT_BODY.model);
  assertNoStack(h, 'log-502');
});

test('an upstream timeout is logged on the request line at warn, without a stack', async (t) => {
  const h = await harness(t, { env: { OPENROUTER_API_KEY: 'sk-or-server', UPSTREAM_HEADERS_TIMEOUT_MS: '150' } });
  h.fake.enqueue({ type: 'hang' });
  const res = await postChat(h, 'log-504', JSON.stringify(CHAT_BODY));
  assert.equal(res.status, 504);
  const line = await h.logs.requestLine('log-504');
  assert.equal(line.level, 40);
  assert.equal(line.status, 504);
  assert.equal(line.error_code, 'upstream_timeout');
  assertNoStack(h, 'log-504');
});
