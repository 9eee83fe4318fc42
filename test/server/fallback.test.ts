import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { test, type TestContext } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { openRouterErrorBody, type Fault, type ReceivedRequest } from '../../src/dev/fake-openrouter.js';
import { retryWaiting, startHarness, type Harness, type LogRecord } from '../support/harness.js';

/** Every test waits on events; this only turns a lost event into a failure instead of a hang. */
const EVENT_TEST = { timeout: 30_000 };

const A = 'a/primary';
const B = 'b/second';
const C = 'c/third';

/**
 * The default rule routes to a tier with two fallbacks; an `x-route` header picks the others.
 * Every retry setting not given by a rule comes from the environment of the test.
 */
const RULES = `version: 1
tiers:
  main: { model: ${A}, fallbacks: [${B}, ${C}] }
rules:
  - name: single-model
    when: { header.x-route: single }
    route: { model: ${A} }
  - name: no-retry
    when: { header.x-route: no-retry }
    route: { model: ${A}, fallbacks: [${B}, ${C}], retry: { max_attempts: 1 } }
  - name: retry-500-only
    when: { header.x-route: retry-500 }
    route: { model: ${A}, fallbacks: [${B}, ${C}], retry: { statuses: [500] } }
  - name: all-retry-settings
    when: { header.x-route: all-settings }
    route: { model: ${A}, fallbacks: [${B}, ${C}], retry: { max_attempts: 2, statuses: [502, 503], budget_ms: 10000 } }
  - name: pass-two-attempts
    when: { header.x-route: pass }
    route: { pass: true, retry: { max_attempts: 2 } }
  - name: with-fallbacks
    route: { tier: main }
`;

const CHAT_BODY = { model: 'auto', messages: [{ role: 'user', content: 'Say hello' }] };
const STREAM_BODY = { ...CHAT_BODY, stream: true };

// ---------------------------------------------------------------------------------------------
// Helpers

async function harness(t: TestContext, env: Record<string, string> = {}): Promise<Harness> {
  const h = await startHarness({
    rules: RULES,
    env: { OPENROUTER_API_KEY: 'sk-or-retry-test', RETRY_MAX_ATTEMPTS: '3', ...env },
  });
  t.after(() => h.close());
  return h;
}

function status(code: number, extra: { message?: string; headers?: Record<string, string> } = {}): Fault {
  return { type: 'status', status: code, body: openRouterErrorBody(code, extra.message), ...(extra.headers && { headers: extra.headers }) };
}

interface ChatResult {
  readonly status: number;
  readonly headers: Headers;
  /** Every body byte the client received. */
  readonly body: Buffer;
  /** The proxy's log line for the request. */
  readonly line: LogRecord;
}

interface ChatOptions {
  /** The `x-route` header: which rule decides. */
  readonly route?: string;
  readonly body?: unknown;
}

/** One chat request, read to the end; resolves once the proxy's log line for it was written. */
async function chat(h: Harness, id: string, options: ChatOptions = {}): Promise<ChatResult> {
  const res = await fetch(`${h.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-request-id': id, ...(options.route && { 'x-route': options.route }) },
    body: JSON.stringify(options.body ?? CHAT_BODY),
  });
  const body = Buffer.from(await res.arrayBuffer());
  const line = await h.logs.requestLine(id);
  return { status: res.status, headers: res.headers, body, line };
}

function jsonOf<T = Record<string, unknown>>(bytes: Buffer): T {
  return JSON.parse(bytes.toString('utf8')) as T;
}

/** Bytes the fake sent for one request (head excluded). */
function sentBy(rec: ReceivedRequest | undefined): Buffer {
  assert.ok(rec, 'no such upstream request');
  return Buffer.concat(rec.sent);
}

/** `model` and (when present) `models` of every body upstream received, in order. */
function upstreamSaw(h: Harness): { model: unknown; models?: unknown }[] {
  return h.fake.received.map((r) => {
    const json = r.json as Record<string, unknown>;
    return 'models' in json ? { model: json.model, models: json.models } : { model: json.model };
  });
}

/** A counter family of a scrape: `label=value,...` (exposition order) to the sample's value. */
function family(scrape: string, name: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of scrape.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)\{(.*)\} (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const labels = [...m[2]!.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)].map((l) => `${l[1]}=${l[2]}`);
    out[labels.join(',')] = Number(m[3]);
  }
  return out;
}

interface RetryMetrics {
  readonly fallbacks: Record<string, number>;
  readonly upstream: Record<string, number>;
}

/** signalbox_fallbacks_total and signalbox_upstream_requests_total, from one scrape. */
async function retryMetrics(h: Harness): Promise<RetryMetrics> {
  const res = await fetch(`${h.url}/metrics`);
  assert.equal(res.status, 200);
  const text = await res.text();
  return { fallbacks: family(text, 'signalbox_fallbacks_total'), upstream: family(text, 'signalbox_upstream_requests_total') };
}

const fallback = (from: string, to: string, reason: string): string => `from=${from},to=${to},reason=${reason}`;
const attempt = (model: string, result: number | string): string => `model=${model},status=${result}`;

/** Records when (performance.now()) each upstream request arrived at the fake. */
function arrivalTimes(h: Harness): number[] {
  const times: number[] = [];
  h.fake.on('request', () => times.push(performance.now()));
  return times;
}

function assertAttempts(res: ChatResult, attempts: number, model: string): void {
  assert.equal(res.headers.get('x-signalbox-attempts'), String(attempts));
  assert.equal(res.headers.get('x-signalbox-model'), model);
  assert.equal(res.line.upstream_attempts, attempts);
}

// ---------------------------------------------------------------------------------------------
// Fallbacks through the routed model's list

test('a 503 from the routed model is retried on the first fallback, whose answer the client gets', EVENT_TEST, async (t) => {
  const h = await harness(t);
  h.fake.enqueue(status(503));
  const res = await chat(h, 'fb-503-then-ok');

  assert.equal(res.status, 200);
  assertAttempts(res, 2, B);
  assert.deepEqual(res.body, sentBy(h.fake.received[1]));
  assert.equal(jsonOf(res.body).model, B);
  assert.deepEqual(upstreamSaw(h), [{ model: A, models: [A, B, C] }, { model: B, models: [B, C] }]);
  assert.deepEqual(await retryMetrics(h), {
    fallbacks: { [fallback(A, B, '503')]: 1 },
    upstream: { [attempt(A, 503)]: 1, [attempt(B, 200)]: 1 },
  });
  assert.equal(res.line.status, 200);
  assert.equal(res.line.upstream_status, 200);
  assert.equal(res.line.routed_model, B);
});

test('when every attempt fails the client gets the last upstream answer as OpenRouter sent it', EVENT_TEST, async (t) => {
  const h = await harness(t);
  h.fake.enqueue(status(503, { message: 'first down' }), status(503, { message: 'second down' }), status(503, { message: 'third down' }));
  const res = await chat(h, 'fb-all-fail');

  assert.equal(res.status, 503);
  assertAttempts(res, 3, C);
  assert.deepEqual(jsonOf(res.body), { error: { code: 503, message: 'third down' } });
  assert.deepEqual(res.body, sentBy(h.fake.received[2]));
  assert.equal(h.fake.received.length, 3);
  assert.deepEqual(upstreamSaw(h), [{ model: A, models: [A, B, C] }, { model: B, models: [B, C] }, { model: C }]);
  assert.deepEqual(await retryMetrics(h), {
    fallbacks: { [fallback(A, B, '503')]: 1, [fallback(B, C, '503')]: 1 },
    upstream: { [attempt(A, 503)]: 1, [attempt(B, 503)]: 1, [attempt(C, 503)]: 1 },
  });
  assert.equal(res.line.status, 503);
  assert.equal(res.line.upstream_status, 503);
});

test('a single-model route retries the same model with the same body bytes, after a backoff', EVENT_TEST, async (t) => {
  const h = await harness(t);
  const times = arrivalTimes(h);
  h.fake.enqueue(status(502));
  const res = await chat(h, 'fb-single-model', { route: 'single' });

  assert.equal(res.status, 200);
  assertAttempts(res, 2, A);
  assert.deepEqual(upstreamSaw(h), [{ model: A }, { model: A }]);
  assert.deepEqual(h.fake.received[1]!.body, h.fake.received[0]!.body);
  // The backoff of attempt 1 is 250 ms ± 20%: at least 200 ms (a little slack for timer rounding).
  assert.ok(times[1]! - times[0]! >= 195, `second attempt ${(times[1]! - times[0]!).toFixed(1)} ms after the first`);
  assert.deepEqual(await retryMetrics(h), {
    fallbacks: { [fallback(A, A, '502')]: 1 },
    upstream: { [attempt(A, 502)]: 1, [attempt(A, 200)]: 1 },
  });
});

test('a pass rule with its own max_attempts follows the client\'s models list, first attempt as the client\'s bytes', EVENT_TEST, async (t) => {
  const h = await harness(t);
  h.fake.enqueue(status(503, { message: 'one down' }), status(503, { message: 'two down' }));
  const body = { model: 'p/one', models: ['p/one', 'p/two', 'p/three'], messages: [{ role: 'user', content: 'hi' }] };
  const res = await chat(h, 'fb-pass', { route: 'pass', body });

  assert.equal(res.status, 503);
  assertAttempts(res, 2, 'p/two');
  assert.deepEqual(jsonOf(res.body), { error: { code: 503, message: 'two down' } });
  assert.deepEqual(h.fake.received[0]!.body, Buffer.from(JSON.stringify(body)));
  assert.deepEqual(upstreamSaw(h), [
    { model: 'p/one', models: ['p/one', 'p/two', 'p/three'] },
    { model: 'p/two', models: ['p/two', 'p/three'] },
  ]);
});

// ---------------------------------------------------------------------------------------------
// Retry-After

test('a 429 with retry-after-ms is retried after that wait', EVENT_TEST, async (t) => {
  const h = await harness(t);
  const times = arrivalTimes(h);
  h.fake.enqueue(status(429, { headers: { 'retry-after-ms': '50' } }));
  const res = await chat(h, 'fb-429-retry-after-ms');

  assert.equal(res.status, 200);
  assertAttempts(res, 2, B);
  assert.equal(h.fake.received.length, 2);
  assert.equal(times.length, 2);
  // Switching to a fallback has no backoff of its own: the wait is the Retry-After (slack for timer rounding).
  assert.ok(times[1]! - times[0]! >= 48, `second attempt ${(times[1]! - times[0]!).toFixed(1)} ms after the first`);
  assert.deepEqual(await retryMetrics(h), {
    fallbacks: { [fallback(A, B, '429')]: 1 },
    upstream: { [attempt(A, 429)]: 1, [attempt(B, 200)]: 1 },
  });
});

/** A 429 asking for two minutes: whatever the settings, the client must get it as it is, untried. */
async function assertRetryAfterNotWaited(t: TestContext, env: Record<string, string>, id: string): Promise<void> {
  const h = await harness(t, env);
  h.fake.enqueue(status(429, { headers: { 'retry-after': '120' } }));
  const res = await chat(h, id);

  assert.equal(res.status, 429);
  assert.equal(res.headers.get('retry-after'), '120');
  assertAttempts(res, 1, A);
  assert.deepEqual(jsonOf(res.body), openRouterErrorBody(429));
  assert.equal(h.fake.received.length, 1);
  assert.deepEqual(await retryMetrics(h), { fallbacks: {}, upstream: { [attempt(A, 429)]: 1 } });
}

test('a Retry-After over the cap is not waited for: the client gets the 429 with its header', EVENT_TEST, async (t) => {
  await assertRetryAfterNotWaited(t, {}, 'fb-429-over-cap');
});

test('a Retry-After under the cap but past the budget is not waited for either', EVENT_TEST, async (t) => {
  await assertRetryAfterNotWaited(t, { RETRY_AFTER_CAP_MS: '200000', RETRY_BUDGET_MS: '1000' }, 'fb-429-over-budget');
});

// ---------------------------------------------------------------------------------------------
// Statuses never retried

for (const code of [400, 401, 402, 403, 404, 422]) {
  const which = code === 402 ? '402 without Retry-After' : String(code);
  test(`a ${which} is passed through at once, never retried`, EVENT_TEST, async (t) => {
    const h = await harness(t);
    h.fake.enqueue(status(code));
    const res = await chat(h, `fb-final-${code}`);

    assert.equal(res.status, code);
    assertAttempts(res, 1, A);
    assert.deepEqual(jsonOf(res.body), openRouterErrorBody(code));
    assert.equal(h.fake.received.length, 1);
    assert.deepEqual(await retryMetrics(h), { fallbacks: {}, upstream: { [attempt(A, code)]: 1 } });
  });
}

test('a 402 with Retry-After is retried', EVENT_TEST, async (t) => {
  const h = await harness(t);
  h.fake.enqueue(status(402, { headers: { 'retry-after-ms': '10' } }));
  const res = await chat(h, 'fb-402-retry-after');

  assert.equal(res.status, 200);
  assertAttempts(res, 2, B);
  assert.deepEqual(upstreamSaw(h), [{ model: A, models: [A, B, C] }, { model: B, models: [B, C] }]);
  assert.deepEqual(await retryMetrics(h), {
    fallbacks: { [fallback(A, B, '402')]: 1 },
    upstream: { [attempt(A, 402)]: 1, [attempt(B, 200)]: 1 },
  });
});

// ---------------------------------------------------------------------------------------------
// Network failures

test('a connection reset before the response head is retried on the next model', EVENT_TEST, async (t) => {
  const h = await harness(t);
  h.fake.enqueue({ type: 'reset-before-headers' });
  const res = await chat(h, 'fb-reset');

  assert.equal(res.status, 200);
  assertAttempts(res, 2, B);
  assert.equal(jsonOf(res.body).model, B);
  assert.deepEqual(upstreamSaw(h), [{ model: A, models: [A, B, C] }, { model: B, models: [B, C] }]);
  assert.deepEqual(await retryMetrics(h), {
    fallbacks: { [fallback(A, B, 'upstream_unreachable')]: 1 },
    upstream: { [attempt(A, 'upstream_unreachable')]: 1, [attempt(B, 200)]: 1 },
  });
});

test('with RETRY_ON_NETWORK_ERRORS false a reset is a 502 envelope after one attempt', EVENT_TEST, async (t) => {
  const h = await harness(t, { RETRY_ON_NETWORK_ERRORS: 'false' });
  h.fake.enqueue({ type: 'reset-before-headers' });
  const res = await chat(h, 'fb-reset-no-retry');

  assert.equal(res.status, 502);
  assertAttempts(res, 1, A);
  const error = jsonOf<{ error: { message: string; type: string; code: string } }>(res.body).error;
  assert.equal(error.code, 'upstream_unreachable');
  assert.equal(error.type, 'server_error');
  assert.match(error.message, /^Upstream unreachable: /);
  assert.equal(h.fake.received.length, 1);
  assert.equal(res.line.error_code, 'upstream_unreachable');
  assert.deepEqual(await retryMetrics(h), { fallbacks: {}, upstream: { [attempt(A, 'upstream_unreachable')]: 1 } });
});

test('a response-headers timeout is retried on the next model', EVENT_TEST, async (t) => {
  const h = await harness(t, { UPSTREAM_HEADERS_TIMEOUT_MS: '150' });
  h.fake.enqueue({ type: 'hang' });
  const res = await chat(h, 'fb-headers-timeout');

  assert.equal(res.status, 200);
  assertAttempts(res, 2, B);
  assert.equal(await h.fake.received[0]!.outcome, 'aborted');
  assert.deepEqual(upstreamSaw(h), [{ model: A, models: [A, B, C] }, { model: B, models: [B, C] }]);
  assert.deepEqual(await retryMetrics(h), {
    fallbacks: { [fallback(A, B, 'upstream_timeout')]: 1 },
    upstream: { [attempt(A, 'upstream_timeout')]: 1, [attempt(B, 200)]: 1 },
  });
});

// ---------------------------------------------------------------------------------------------
// Streams

test('a stream whose first attempt fails before the head is retried, and the client gets a normal stream', EVENT_TEST, async (t) => {
  const h = await harness(t);
  h.fake.enqueue(status(503));
  const res = await chat(h, 'fb-stream-503', { body: STREAM_BODY });

  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), 'text/event-stream');
  assertAttempts(res, 2, B);
  assert.deepEqual(res.body, sentBy(h.fake.received[1]));
  assert.ok(res.body.toString('utf8').endsWith('data: [DONE]\n\n'));
  assert.deepEqual(upstreamSaw(h), [{ model: A, models: [A, B, C] }, { model: B, models: [B, C] }]);
  assert.deepEqual(await retryMetrics(h), {
    fallbacks: { [fallback(A, B, '503')]: 1 },
    upstream: { [attempt(A, 503)]: 1, [attempt(B, 200)]: 1 },
  });
});

test('a stream cut after its head is never retried: the bytes, then the SSE error event', EVENT_TEST, async (t) => {
  const h = await harness(t);
  h.fake.enqueue({ type: 'reset-mid-stream', afterEvents: 2 });
  const res = await chat(h, 'fb-stream-cut', { body: STREAM_BODY });

  assert.equal(res.status, 200);
  assertAttempts(res, 1, A);
  assert.equal(h.fake.received.length, 1);
  const relayed = sentBy(h.fake.received[0]);
  assert.ok(relayed.length > 0);
  assert.deepEqual(res.body.subarray(0, relayed.length), relayed);
  const rest = res.body.subarray(relayed.length).toString('utf8');
  const m = /^data: (.*)\n\n$/s.exec(rest);
  assert.ok(m, `not one SSE event after the relayed bytes: ${JSON.stringify(rest)}`);
  const event = JSON.parse(m[1]!) as { model: string; error: { code: string }; choices: { finish_reason: string }[] };
  assert.equal(event.error.code, 'upstream_unreachable');
  assert.equal(event.choices[0]!.finish_reason, 'error');
  assert.equal(event.model, A);
  assert.equal(res.line.stream_error, 'upstream_cut');
  assert.deepEqual(await retryMetrics(h), { fallbacks: {}, upstream: { [attempt(A, 200)]: 1 } });
});

// ---------------------------------------------------------------------------------------------
// A client that leaves

/** Polls the metrics until the proxy has decided on a retry, i.e. it is about to wait or waiting. */
test('a client that leaves during a Retry-After wait ends it: no further upstream request', EVENT_TEST, async (t) => {
  const h = await harness(t);
  h.fake.enqueue(status(429, { headers: { 'retry-after-ms': '5000' } }));
  const id = 'fb-client-leaves';
  const payload = JSON.stringify(CHAT_BODY);
  const { port } = new URL(h.url);
  const req = httpRequest({
    host: '127.0.0.1', port, path: '/v1/chat/completions', method: 'POST', agent: false,
    headers: { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(payload)), 'x-request-id': id },
  });
  const response = new Promise<unknown>((resolve) => {
    req.once('response', resolve);
    req.once('error', () => resolve(undefined));
    req.once('close', () => resolve(undefined));
  });
  req.end(payload);

  const first = await h.fake.nextRequest();
  assert.equal(await first.outcome, 'complete');
  await retryWaiting(h.lifecycle);
  req.destroy();

  const line = await h.logs.requestLine(id);
  assert.equal(await response, undefined, 'the client got a response head');
  assert.equal(line.status, 499);
  assert.equal(line.client_closed, true);
  assert.equal(line.upstream_attempts, 1);
  // The wait is over (the exchange left the in-flight set) and it sent nothing more.
  assert.equal(h.lifecycle.inflightCount, 0);
  assert.equal(h.fake.received.length, 1);
  assert.deepEqual(await retryMetrics(h), { fallbacks: { [fallback(A, B, '429')]: 1 }, upstream: { [attempt(A, 429)]: 1 } });
});

// ---------------------------------------------------------------------------------------------
// A rule's own retry settings

test('a rule with retry.max_attempts 1 is never retried although the global setting is 3', EVENT_TEST, async (t) => {
  const h = await harness(t);
  h.fake.enqueue(status(503));
  const res = await chat(h, 'fb-rule-no-retry', { route: 'no-retry' });

  assert.equal(res.status, 503);
  assertAttempts(res, 1, A);
  assert.deepEqual(upstreamSaw(h), [{ model: A, models: [A, B, C] }]);
  assert.deepEqual(await retryMetrics(h), { fallbacks: {}, upstream: { [attempt(A, 503)]: 1 } });
});

test('a rule with retry.statuses [500] retries a 500 but not a 503', EVENT_TEST, async (t) => {
  const h = await harness(t);
  h.fake.enqueue(status(500));
  const retried = await chat(h, 'fb-rule-500', { route: 'retry-500' });
  assert.equal(retried.status, 200);
  assertAttempts(retried, 2, B);
  assert.equal(h.fake.received.length, 2);

  h.fake.enqueue(status(503));
  const final = await chat(h, 'fb-rule-503', { route: 'retry-500' });
  assert.equal(final.status, 503);
  assertAttempts(final, 1, A);
  assert.equal(h.fake.received.length, 3);
  assert.deepEqual(await retryMetrics(h), {
    fallbacks: { [fallback(A, B, '500')]: 1 },
    upstream: { [attempt(A, 500)]: 1, [attempt(B, 200)]: 1, [attempt(A, 503)]: 1 },
  });
});

// ---------------------------------------------------------------------------------------------
// Explain

interface Explained {
  rule: string;
  action: string;
  route?: Record<string, unknown>;
}

async function explain(h: Harness, route: string): Promise<Explained> {
  const res = await fetch(`${h.url}/v1/routing/explain`, {
    method: 'POST', headers: { 'content-type': 'application/json', 'x-route': route }, body: JSON.stringify(CHAT_BODY),
  });
  assert.equal(res.status, 200);
  return (await res.json()) as Explained;
}

test('explain shows a route\'s retry settings as the rules file writes them', EVENT_TEST, async (t) => {
  const h = await harness(t);
  const e = await explain(h, 'all-settings');
  assert.equal(e.rule, 'all-retry-settings');
  assert.deepEqual(e.route, { model: A, fallbacks: [B, C], retry: { max_attempts: 2, statuses: [502, 503], budget_ms: 10000 } });
  assert.equal(h.fake.received.length, 0);
});

test('explain shows the retry settings of a pass rule', EVENT_TEST, async (t) => {
  const h = await harness(t);
  const e = await explain(h, 'pass');
  assert.equal(e.rule, 'pass-two-attempts');
  assert.equal(e.action, 'pass');
  assert.deepEqual(e.route?.retry, { max_attempts: 2 });
});
