import assert from 'node:assert/strict';
import { once } from 'node:events';
import { Agent, request as httpRequest, type IncomingMessage, type OutgoingHttpHeaders } from 'node:http';
import { createServer, type AddressInfo } from 'node:net';
import { test, type TestContext } from 'node:test';
import type { Fault, ReceivedRequest } from '../../src/dev/fake-openrouter.js';
import { CHAT_BODY, startHarness, type Harness } from '../support/harness.js';
import { rawRequest, type RawResponse } from '../support/http.js';
import { withTimeout } from '../support/timeout.js';

const SERVER_KEY = 'sk-or-v1-server-key-never-shown-0123456789';
const CHAT_PATH = '/v1/chat/completions';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const STREAM_BODY = JSON.stringify({ ...CHAT_BODY, stream: true });
/** A safety net for tests that wait on bytes: a proxy that buffers would otherwise hang them. */
const STREAM_TEST = { timeout: 15_000 };

async function harness(t: TestContext, env: Record<string, string> = {}): Promise<Harness> {
  const h = await startHarness({ env: { OPENROUTER_API_KEY: SERVER_KEY, ...env } });
  t.after(() => h.close());
  return h;
}

interface RequestSpec {
  readonly method?: string;
  readonly path?: string;
  readonly headers?: OutgoingHttpHeaders;
  readonly body?: string | Buffer;
}

/** A request in flight, seen from the client socket chunk by chunk (node:http, keep-alive). */
interface ClientCall {
  readonly response: Promise<IncomingMessage>;
  readonly received: Buffer[];
  /** Resolves once the client has received at least `n` body bytes. */
  waitForBytes(n: number): Promise<void>;
  /** The whole body, when the response has ended. */
  readonly done: Promise<Buffer>;
}

function send(origin: string, spec: RequestSpec): ClientCall {
  const agent = new Agent({ keepAlive: true });
  const received: Buffer[] = [];
  let count = 0;
  const waiters: { n: number; resolve: () => void }[] = [];
  const notify = (): void => {
    for (const w of [...waiters]) {
      if (count >= w.n) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve();
      }
    }
  };
  const body = spec.body === undefined ? undefined : Buffer.from(spec.body);
  const headers: OutgoingHttpHeaders = { ...spec.headers };
  if (body !== undefined) headers['content-length'] = String(body.length);
  const { hostname, port } = new URL(origin);
  const req = httpRequest({ hostname, port, path: spec.path ?? CHAT_PATH, method: spec.method ?? 'POST', headers, agent });
  const response = new Promise<IncomingMessage>((resolve, reject) => {
    req.once('response', resolve);
    req.once('error', reject);
  });
  const done = response.then(
    (res) =>
      new Promise<Buffer>((resolve, reject) => {
        res.on('data', (chunk: Buffer) => {
          received.push(chunk);
          count += chunk.length;
          notify();
        });
        res.once('end', () => resolve(Buffer.concat(received)));
        res.once('error', reject);
      }),
  );
  void done.finally(() => agent.destroy()).catch(() => undefined);
  req.end(body);
  return {
    response,
    received,
    done,
    waitForBytes: (n) => (count >= n ? Promise.resolve() : withTimeout(new Promise((resolve) => waiters.push({ n, resolve })), `${n} response bytes`)),
  };
}

/** The whole response; same defaults as `send` (POST to the chat path, keep-alive). */
function call(origin: string, spec: RequestSpec): Promise<RawResponse> {
  return rawRequest(origin, { ...spec, method: spec.method ?? 'POST', path: spec.path ?? CHAT_PATH, agent: 'keep-alive' });
}

function postChat(h: Harness, body: string | Buffer, headers: OutgoingHttpHeaders = {}, path = CHAT_PATH): Promise<RawResponse> {
  return call(h.url, { path, body, headers: { 'content-type': 'application/json', ...headers } });
}

function only(h: Harness): ReceivedRequest {
  assert.equal(h.fake.received.length, 1, 'exactly one upstream request');
  return h.fake.received[0]!;
}

function last(h: Harness): ReceivedRequest {
  const rec = h.fake.received.at(-1);
  assert.ok(rec, 'the upstream received a request');
  return rec;
}

function sentBy(rec: ReceivedRequest): Buffer {
  return Buffer.concat(rec.sent);
}

interface SseErrorChunk {
  id: string;
  object: string;
  provider?: string;
  error: { code: string | number; message: string };
  choices: { finish_reason: string }[];
}

/** `text` must be exactly one SSE data event; returns its JSON. */
function parseSingleDataEvent(text: string): SseErrorChunk {
  assert.match(text, /^data: [^\n]+\n\n$/, `one data event, got ${JSON.stringify(text)}`);
  return JSON.parse(text.slice('data: '.length, -2)) as SseErrorChunk;
}

/** The body is what upstream sent, then Signalbox's own final error event with `code`. */
function assertUpstreamBytesThenProxyError(body: Buffer, upstream: Buffer, code: string, reqId: string): void {
  assert.deepEqual(body.subarray(0, upstream.length), upstream, 'the events before the failure are relayed as they are');
  const event = parseSingleDataEvent(body.subarray(upstream.length).toString('utf8'));
  assert.equal(event.object, 'chat.completion.chunk');
  assert.equal(event.id, `gen-signalbox-${reqId}`);
  assert.equal(event.provider, 'signalbox');
  assert.equal(event.error.code, code);
  assert.equal(typeof event.error.message, 'string');
  assert.notEqual(event.error.message, '');
  assert.equal(event.choices[0]?.finish_reason, 'error');
}

async function closedPortBaseUrl(): Promise<string> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `http://127.0.0.1:${port}/api/v1`;
}

test('a non-streaming completion returns upstream status, bytes and useful headers', async (t) => {
  const h = await harness(t);
  const res = await postChat(h, JSON.stringify(CHAT_BODY));
  const rec = only(h);
  assert.equal(res.status, 200);
  assert.deepEqual(res.body, sentBy(rec));
  assert.equal(res.headers['content-type'], 'application/json');
  assert.equal(res.headers['x-generation-id'], `gen-${1_700_000_000 + rec.seq}-fake${rec.seq}`);
  assert.equal(res.headers['x-ratelimit-limit'], '200');
  assert.equal(res.headers['x-ratelimit-remaining'], '199');
  assert.match(String(res.headers['x-request-id']), UUID);
});

test('the request body reaches upstream byte for byte, unknown OpenRouter fields and formatting included', async (t) => {
  const h = await harness(t);
  const raw =
    '{\n  "messages" : [ {"role":"user",   "content":"héllo ✓"} ],\n\t"model":"openai/gpt-4o-mini",' +
    ' "temperature": 1.0, "seed": 12345678901234567890,' +
    ' "models": ["openai/gpt-4o-mini", "anthropic/claude-3.5-sonnet"],' +
    ' "provider": {"order": ["OpenAI"], "allow_fallbacks": false},' +
    ' "plugins": [{"id": "web", "max_results": 3}], "reasoning": {"effort": "high"},' +
    ' "transforms": ["middle-out"], "usage": {"include": true}, "session_id": "sess-42",' +
    ' "future_field": {"nested": [1, 2.50, null, "x"]}   }\n';
  const sent = Buffer.from(raw, 'utf8');
  // The check is able to fail: a parse and re-serialise round trip changes these bytes.
  assert.notDeepEqual(Buffer.from(JSON.stringify(JSON.parse(raw))), sent);

  const res = await postChat(h, sent);
  assert.equal(res.status, 200);
  const rec = only(h);
  assert.deepEqual(rec.body, sent);
  assert.equal(rec.headers['content-type'], 'application/json');
});

test('a stream is relayed byte for byte with live-stream headers', STREAM_TEST, async (t) => {
  const h = await harness(t);
  const res = await postChat(h, STREAM_BODY);
  const rec = only(h);
  assert.equal(res.status, 200);
  assert.deepEqual(res.body, sentBy(rec));
  const text = res.body.toString('utf8');
  assert.ok(text.startsWith(': OPENROUTER PROCESSING\n\n'), 'processing comments are relayed');
  assert.match(text, /"usage":\{[^}]*"cost":/, 'the usage chunk with cost is relayed');
  assert.ok(text.endsWith('data: [DONE]\n\n'));
  assert.equal(res.headers['content-type'], 'text/event-stream');
  assert.equal(res.headers['cache-control'], 'no-cache');
  assert.equal(res.headers['x-accel-buffering'], 'no');
  assert.equal(res.headers['content-encoding'], undefined);
  assert.equal(res.headers['content-length'], undefined);
});

test('an SSE event split across TCP writes reaches the client half by half, unbuffered', STREAM_TEST, async (t) => {
  const h = await harness(t);
  h.fake.enqueue({ type: 'manual' });
  const client = send(h.url, { body: STREAM_BODY, headers: { 'content-type': 'application/json' } });
  const upstream = await h.fake.nextManual();
  upstream.writeHead(200, { 'content-type': 'text/event-stream' });
  await client.response;

  const event = Buffer.from(
    'data: {"id":"gen-split","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"Hello"},"finish_reason":null}]}\n\n',
  );
  const half = Math.floor(event.length / 2);
  const first = event.subarray(0, half);
  await upstream.write(first);
  await client.waitForBytes(first.length);
  // Nothing more has been written upstream yet: the client already holds exactly the first half.
  assert.deepEqual(Buffer.concat(client.received), first);

  await upstream.write(event.subarray(half));
  await upstream.write('data: [DONE]\n\n');
  await upstream.end();
  const body = await client.done;
  assert.deepEqual(body, Buffer.concat([event, Buffer.from('data: [DONE]\n\n')]));
});

test('an in-band error from upstream mid-stream is relayed as it is', STREAM_TEST, async (t) => {
  const h = await harness(t);
  h.fake.enqueue({ type: 'error-mid-stream', afterEvents: 2 });
  const res = await postChat(h, STREAM_BODY, { 'x-request-id': 'mid-stream-error' });
  const rec = only(h);
  assert.equal(res.status, 200);
  assert.deepEqual(res.body, sentBy(rec));
  const events = res.body.toString('utf8').split('\n\n').filter((e) => e.startsWith('data: '));
  assert.equal(events.length, 3);
  const errorChunk = parseSingleDataEvent(`${events[2]}\n\n`);
  assert.equal(errorChunk.error.code, 'server_error');
  assert.equal(errorChunk.choices[0]?.finish_reason, 'error');
  const line = await h.logs.requestLine('mid-stream-error');
  assert.equal(line.error_code, undefined, "upstream's own error is not the proxy's");
});

test('an upstream reset mid-stream ends the stream with an upstream_unreachable error event', STREAM_TEST, async (t) => {
  const h = await harness(t);
  h.fake.enqueue({ type: 'reset-mid-stream', afterEvents: 2 });
  const reqId = 'reset-mid-stream-1';
  const res = await postChat(h, STREAM_BODY, { 'x-request-id': reqId });
  const rec = only(h);
  assert.equal(res.status, 200);
  const upstream = sentBy(rec);
  assert.equal(upstream.toString('utf8').split('\n\n').filter((e) => e.startsWith('data: ')).length, 2);
  assertUpstreamBytesThenProxyError(res.body, upstream, 'upstream_unreachable', reqId);

  const line = await h.logs.requestLine(reqId);
  assert.equal(line.error_code, 'upstream_unreachable');
  assert.equal(line.status, 200);
  assert.equal(line.stream, true);
});

test('an idle upstream mid-stream ends the stream with an upstream_timeout error event', STREAM_TEST, async (t) => {
  const h = await harness(t, { UPSTREAM_IDLE_TIMEOUT_MS: '150' });
  h.fake.enqueue({ type: 'manual' });
  const reqId = 'idle-mid-stream-1';
  const client = send(h.url, { body: STREAM_BODY, headers: { 'content-type': 'application/json', 'x-request-id': reqId } });
  const upstream = await h.fake.nextManual();
  const event = 'data: {"id":"gen-idle","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}\n\n';
  upstream.writeHead(200, { 'content-type': 'text/event-stream' });
  await upstream.write(event);
  // ...and then nothing, ever.

  const res = await client.response;
  assert.equal(res.statusCode, 200);
  assertUpstreamBytesThenProxyError(await client.done, Buffer.from(event), 'upstream_timeout', reqId);
  const line = await h.logs.requestLine(reqId);
  assert.equal(line.error_code, 'upstream_timeout');
});

test('upstream error statuses pass through with their headers and error body', async (t) => {
  const h = await harness(t);
  for (const status of [400, 401, 402, 403, 404, 408, 429, 500, 502, 503, 504]) {
    await t.test(`HTTP ${status}`, async () => {
      const headers: Record<string, string> = status === 429 ? { 'retry-after': '7' } : {};
      h.fake.enqueue({ type: 'status', status, headers });
      const res = await postChat(h, JSON.stringify(CHAT_BODY));
      const rec = last(h);
      assert.equal(res.status, status);
      assert.deepEqual(res.body, sentBy(rec));
      assert.equal((JSON.parse(res.body.toString('utf8')) as { error: { code: number } }).error.code, status);
      assert.equal(res.headers['content-type'], 'application/json');
      assert.equal(res.headers['retry-after'], status === 429 ? '7' : undefined);
    });
  }
});

interface ProxyErrorCase {
  readonly name: string;
  readonly env?: Record<string, string>;
  readonly fault?: Fault;
  /** Point the proxy at a port nobody listens on. */
  readonly closedUpstream?: boolean;
  readonly contentType?: string;
  readonly body: string | Buffer;
  readonly status: number;
  readonly code: string;
  readonly type: string;
  /** Whether the fake upstream sees the request. */
  readonly reachesUpstream: boolean;
}

const PROXY_ERRORS: readonly ProxyErrorCase[] = [
  { name: 'malformed JSON', body: '{"model": "openai/gpt-4o-mini", "messages": [', status: 400, code: 'invalid_json', type: 'invalid_request_error', reachesUpstream: false },
  { name: 'a JSON array', body: '[{"model":"openai/gpt-4o-mini"}]', status: 400, code: 'invalid_body', type: 'invalid_request_error', reachesUpstream: false },
  { name: 'a JSON string', body: '"hello"', status: 400, code: 'invalid_body', type: 'invalid_request_error', reachesUpstream: false },
  {
    name: 'a __proto__ key', body: '{"model":"openai/gpt-4o-mini","messages":[],"__proto__":{"isAdmin":true}}',
    status: 400, code: 'forbidden_json_key', type: 'invalid_request_error', reachesUpstream: false,
  },
  {
    name: 'a constructor.prototype key', body: '{"model":"openai/gpt-4o-mini","messages":[],"constructor":{"prototype":{"isAdmin":true}}}',
    status: 400, code: 'forbidden_json_key', type: 'invalid_request_error', reachesUpstream: false,
  },
  {
    name: 'a body over the limit', env: { BODY_LIMIT_BYTES: '2048' },
    body: JSON.stringify({ ...CHAT_BODY, messages: [{ role: 'user', content: 'x'.repeat(4096) }] }),
    status: 413, code: 'body_too_large', type: 'invalid_request_error', reachesUpstream: false,
  },
  {
    name: 'content-type text/plain', contentType: 'text/plain', body: JSON.stringify(CHAT_BODY),
    status: 415, code: 'unsupported_media_type', type: 'invalid_request_error', reachesUpstream: false,
  },
  {
    name: 'an unreachable upstream', closedUpstream: true, body: JSON.stringify(CHAT_BODY),
    status: 502, code: 'upstream_unreachable', type: 'server_error', reachesUpstream: false,
  },
  {
    name: 'upstream response headers timing out', env: { UPSTREAM_HEADERS_TIMEOUT_MS: '150' }, fault: { type: 'hang' },
    body: JSON.stringify(CHAT_BODY), status: 504, code: 'upstream_timeout', type: 'timeout_error', reachesUpstream: true,
  },
];

function assertOpenAIError(res: RawResponse, c: ProxyErrorCase): void {
  const text = res.body.toString('utf8');
  assert.equal(res.status, c.status, text);
  assert.match(String(res.headers['content-type']), /^application\/json/);
  const parsed = JSON.parse(text) as { error: { message: unknown; type: unknown; code: unknown } };
  assert.deepEqual(Object.keys(parsed), ['error']);
  assert.equal(parsed.error.code, c.code);
  assert.equal(parsed.error.type, c.type);
  assert.equal(typeof parsed.error.message, 'string');
  assert.notEqual(parsed.error.message, '');
  assert.ok(!text.includes('    at '), `no stack trace in ${text}`);
  assert.ok(!text.includes(SERVER_KEY), 'the server key is not in the body');
  assert.ok(!JSON.stringify(res.headers).includes(SERVER_KEY), 'the server key is not in the headers');
  assert.match(String(res.headers['x-request-id']), UUID);
}

/** The server keeps answering: a full completion when the upstream is up, the probe and the same error otherwise. */
async function assertStillServes(h: Harness, c: ProxyErrorCase): Promise<void> {
  const health = await call(h.url, { method: 'GET', path: '/healthz' });
  assert.equal(health.status, 200);
  const res = await postChat(h, JSON.stringify(CHAT_BODY));
  if (c.closedUpstream) {
    assertOpenAIError(res, c);
    return;
  }
  assert.equal(res.status, 200, res.body.toString('utf8'));
  assert.deepEqual(res.body, sentBy(last(h)));
}

test("the proxy's own errors use the OpenAI envelope with exact status, code and type", async (t) => {
  for (const c of PROXY_ERRORS) {
    await t.test(c.name, async (st) => {
      const env = { ...c.env, ...(c.closedUpstream && { OPENROUTER_BASE_URL: await closedPortBaseUrl() }) };
      const h = await harness(st, env);
      if (c.fault) h.fake.enqueue(c.fault);
      const res = await postChat(h, c.body, { 'content-type': c.contentType ?? 'application/json' });
      assertOpenAIError(res, c);
      assert.equal(h.fake.received.length, c.reachesUpstream ? 1 : 0);
      await assertStillServes(h, c);
    });
  }
});

test('content-type application/json with a charset is accepted', async (t) => {
  const h = await harness(t);
  const body = Buffer.from(JSON.stringify({ ...CHAT_BODY, messages: [{ role: 'user', content: 'grüß dich ✓' }] }), 'utf8');
  const res = await postChat(h, body, { 'content-type': 'application/json; charset=utf-8' });
  assert.equal(res.status, 200);
  const rec = only(h);
  assert.deepEqual(rec.body, body);
  assert.equal(rec.headers['content-type'], 'application/json; charset=utf-8');
});

test('the query string of a chat request is forwarded upstream', async (t) => {
  const h = await harness(t);
  const res = await postChat(h, JSON.stringify(CHAT_BODY), {}, `${CHAT_PATH}?foo=bar`);
  assert.equal(res.status, 200);
  assert.equal(only(h).url, '/api/v1/chat/completions?foo=bar');
});

test('garbage from upstream is passed through as it is', async (t) => {
  const h = await harness(t);
  const garbage = [
    { body: undefined, contentType: 'application/json' },
    { body: 'data: {not json at all\n\nevent: ???\n\n', contentType: 'text/event-stream' },
  ];
  for (const { body, contentType } of garbage) {
    await t.test(`${contentType} body`, async () => {
      h.fake.enqueue({ type: 'garbage', body, contentType });
      const res = await postChat(h, JSON.stringify(CHAT_BODY));
      const rec = last(h);
      assert.equal(res.status, 200);
      assert.deepEqual(res.body, sentBy(rec));
      assert.equal(res.headers['content-type'], contentType);
    });
  }
  const after = await postChat(h, JSON.stringify(CHAT_BODY));
  assert.equal(after.status, 200);
  assert.deepEqual(after.body, sentBy(last(h)));
});
