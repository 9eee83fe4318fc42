import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { request as httpRequest, type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import { performance } from 'node:perf_hooks';
import { test, type TestContext } from 'node:test';
import type { ManualResponse, ReceivedRequest } from '../../src/dev/fake-openrouter.js';
import { CHAT_BODY, startHarness, type Harness, type HarnessOptions, type LogRecord } from '../support/harness.js';
import { withTimeout } from '../support/timeout.js';

const SERVER_KEY = 'sk-or-v1-observability-test-server-key';
const PROVIDER = 'DeepInfra';
/** A safety net for tests that wait on bytes: a proxy that buffers would otherwise hang them. */
const STREAM_TEST = { timeout: 15_000 };

const RULES = `version: 1
rules:
  - name: raw
    when: { model: { starts_with: "a/" } }
    route: { pass: true }
  - name: cheap
    when: { model: cheap }
    route: { model: openai/gpt-4o-mini }
`;

const PROMPT = 'Summarise the plot of Hamlet in three sentences, please.';
const CHEAP_BODY = { model: 'cheap', messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: PROMPT }] };
const STREAM_BODY = JSON.stringify({ ...CHAT_BODY, stream: true });

async function harness(t: TestContext, env: Record<string, string> = {}, options: HarnessOptions = {}): Promise<Harness> {
  const h = await startHarness({ rules: RULES, fake: { provider: PROVIDER }, ...options, env: { OPENROUTER_API_KEY: SERVER_KEY, ...env } });
  t.after(() => h.close());
  return h;
}

/** A request in flight, seen from the client socket chunk by chunk (node:http 'data' events). */
interface ClientCall {
  readonly response: Promise<IncomingMessage>;
  readonly received: Buffer[];
  /** Resolves once the client has received at least `n` body bytes. */
  waitForBytes(n: number): Promise<void>;
  /** The whole body, when the response has ended. */
  readonly done: Promise<Buffer>;
  /** performance.now() when the request was sent and when its response ended. */
  readonly startedAt: number;
  endedAt: number;
}

function postChat(h: Harness, reqId: string, body: string): ClientCall {
  const received: Buffer[] = [];
  let count = 0;
  let waiters: { n: number; resolve: () => void }[] = [];
  const payload = Buffer.from(body);
  const startedAt = performance.now();
  const req = httpRequest(`${h.url}/v1/chat/completions`, {
    method: 'POST',
    agent: false,
    headers: { 'content-type': 'application/json', 'content-length': String(payload.length), 'x-request-id': reqId },
  });
  const response = new Promise<IncomingMessage>((resolve, reject) => {
    req.once('response', resolve);
    req.once('error', reject);
  });
  const call: ClientCall = {
    response,
    received,
    startedAt,
    endedAt: Number.NaN,
    waitForBytes: (n) => (count >= n ? Promise.resolve() : withTimeout(new Promise((resolve) => waiters.push({ n, resolve })), `${n} response bytes`)),
    done: response.then((res) => new Promise<Buffer>((resolve, reject) => {
      res.on('data', (chunk: Buffer) => {
        received.push(chunk);
        count += chunk.length;
        const ready = waiters.filter((w) => count >= w.n);
        waiters = waiters.filter((w) => count < w.n);
        for (const w of ready) w.resolve();
      });
      res.once('end', () => {
        call.endedAt = performance.now();
        resolve(Buffer.concat(received));
      });
      res.once('error', reject);
    })),
  };
  req.end(payload);
  return call;
}

interface Completed {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
  /** Milliseconds from sending the request to the end of its response, as the client saw it. */
  readonly totalMs: number;
  readonly line: LogRecord;
  readonly rec: ReceivedRequest;
}

/** Sends a chat request, reads the whole response, and returns it with its log line and upstream record. */
async function complete(h: Harness, reqId: string, body: unknown): Promise<Completed> {
  const call = postChat(h, reqId, typeof body === 'string' ? body : JSON.stringify(body));
  const res = await call.response;
  const bytes = await call.done;
  const line = await h.logs.requestLine(reqId);
  const rec = h.fake.received.at(-1);
  assert.ok(rec, 'upstream received the request');
  return { status: res.statusCode ?? 0, headers: res.headers, body: bytes, totalMs: call.endedAt - call.startedAt, line, rec };
}

function sse(obj: unknown): string {
  return `data: ${JSON.stringify(obj)}\n\n`;
}

/** A chat completion chunk in OpenRouter's shape. */
function chunk(delta: Record<string, unknown>, finish: string | null, extra: Record<string, unknown> = {}): string {
  return sse({
    id: 'gen-manual', provider: PROVIDER, model: 'openai/gpt-4o-mini', object: 'chat.completion.chunk', created: 1_700_000_000,
    choices: [{ index: 0, delta, finish_reason: finish, native_finish_reason: finish, logprobs: null }],
    ...extra,
  });
}

/** A stream ending with OpenRouter's usage chunk (non-empty `choices`) and [DONE]. */
function streamWithUsage(usage: Record<string, unknown>): string[] {
  return [
    chunk({ role: 'assistant', content: 'Hi' }, null),
    chunk({ content: ' there' }, null),
    chunk({ content: '' }, 'stop'),
    chunk({ content: '' }, null, { usage }),
    'data: [DONE]\n\n',
  ];
}

/** Starts a streaming request answered by the test: resolves once the client has the response head. */
async function manualStream(h: Harness, reqId: string): Promise<{ call: ClientCall; upstream: ManualResponse }> {
  h.fake.enqueue({ type: 'manual' });
  const call = postChat(h, reqId, STREAM_BODY);
  const upstream = await h.fake.nextManual();
  upstream.writeHead(200, { 'content-type': 'text/event-stream' });
  const res = await call.response;
  assert.equal(res.statusCode, 200);
  return { call, upstream };
}

function promptHash(text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 16);
}

function assertNumberWithin(value: unknown, min: number, max: number, what: string): void {
  assert.equal(typeof value, 'number', `${what} is a number`);
  assert.ok((value as number) >= min && (value as number) <= max, `${what} = ${String(value)} not within [${min}, ${max}]`);
}

test('the tap never delays a byte: each event reaches the client before the next is written, and the log line still has usage and ttft', STREAM_TEST, async (t) => {
  const h = await harness(t);
  const reqId = 'obs-tap-no-delay';
  const { call, upstream } = await manualStream(h, reqId);
  const events = streamWithUsage({ prompt_tokens: 21, completion_tokens: 2, total_tokens: 23, cost: 0.000025 });
  let sent = Buffer.alloc(0);
  for (const event of events) {
    await upstream.write(event);
    sent = Buffer.concat([sent, Buffer.from(event)]);
    // Nothing more is written upstream until the client holds this event.
    await call.waitForBytes(sent.length);
    assert.deepEqual(Buffer.concat(call.received), sent);
  }
  await upstream.end();
  const body = await call.done;
  assert.deepEqual(body, Buffer.concat(upstream.request.sent));
  assert.deepEqual(body, sent);

  const line = await h.logs.requestLine(reqId);
  assert.equal(line.prompt_tokens, 21);
  assert.equal(line.completion_tokens, 2);
  assert.equal(line.cost_usd, 0.000025);
  assert.equal(line.finish_reason, 'stop');
  assertNumberWithin(line.ttft_ms, 0, line.duration_ms as number, 'ttft_ms');
});

/** What every completion's log line says when the fake served it through the `cheap` rule. */
function assertCompletionLine(c: Completed, stream: boolean): void {
  const { line, rec } = c;
  assert.equal(c.status, 200);
  assert.ok(rec.usage, 'the fake reported usage');
  assert.equal(line.status, 200);
  assert.equal(line.model, 'cheap');
  assert.equal(line.rule, 'cheap');
  assert.equal(line.routed_model, 'openai/gpt-4o-mini');
  assert.equal(line.served_model, 'openai/gpt-4o-mini');
  assert.equal(line.provider, PROVIDER);
  assert.equal(line.finish_reason, 'stop');
  assert.equal(line.prompt_tokens, rec.usage.prompt_tokens);
  assert.equal(line.completion_tokens, rec.usage.completion_tokens);
  assert.equal(line.cost_usd, rec.usage.cost);
  assert.equal('reasoning_tokens' in line, false, 'no reasoning_tokens when upstream reports 0');
  assert.equal('cached_tokens' in line, false, 'no cached_tokens when upstream reports 0');
  assert.equal(line.upstream_status, 200);
  assert.equal(line.upstream_attempts, 1);
  assertNumberWithin(line.overhead_ms, 0, line.duration_ms as number, 'overhead_ms');
  assert.equal(line.prompt_hash, promptHash(PROMPT));
  assert.equal('prompt' in line, false, 'no prompt text by default');
  assert.equal('upstream_error' in line, false);
  assert.equal('stream_error' in line, false);
  if (stream) {
    assert.equal(line.stream, true);
    assertNumberWithin(line.ttft_ms, 0, line.duration_ms as number, 'ttft_ms');
  } else {
    assert.equal('stream' in line, false);
    assert.equal('ttft_ms' in line, false, 'no ttft for a non-streaming response');
  }
}

test('the log line of a streaming completion has served model, provider, finish reason, usage, cost and ttft', async (t) => {
  const h = await harness(t);
  assertCompletionLine(await complete(h, 'obs-line-stream', { ...CHEAP_BODY, stream: true }), true);
});

test('the log line of a non-streaming completion has served model, provider, finish reason, usage and cost, and no ttft', async (t) => {
  const h = await harness(t);
  assertCompletionLine(await complete(h, 'obs-line-json', CHEAP_BODY), false);
});

test('with LOG_PROMPTS=true the log line holds the last user message text', async (t) => {
  const h = await harness(t, { LOG_PROMPTS: 'true' });
  const body = { ...CHEAP_BODY, messages: [...CHEAP_BODY.messages, { role: 'assistant', content: 'Sure.' }, { role: 'user', content: 'Now in French.' }] };
  const { line } = await complete(h, 'obs-log-prompts', body);
  assert.equal(line.prompt, 'Now in French.');
  assert.equal(line.prompt_hash, promptHash('Now in French.'));
});

test('a secret-looking string in the prompt never reaches the log text by default', async (t) => {
  const h = await harness(t);
  const secret = 'sk-or-v1-5ecre7c0ffee5ecre7c0ffee5ecre7c0ffee';
  const prompt = `My API key is ${secret}, keep it safe.`;
  for (const stream of [false, true]) {
    const reqId = `obs-secret-${stream ? 'stream' : 'json'}`;
    const { line } = await complete(h, reqId, { model: 'cheap', stream, messages: [{ role: 'user', content: prompt }] });
    assert.equal(line.prompt_hash, promptHash(prompt));
  }
  assert.equal(h.logs.text.includes(secret), false, 'the secret is not in the log');
  assert.equal(h.logs.text.includes('keep it safe'), false, 'no part of the prompt is in the log');
});

test('served_model is the model upstream served, not the one routed', async (t) => {
  const h = await harness(t);
  // A `pass` rule keeps the client's body; the fake serves the first of `models`, as OpenRouter's fallback routing may.
  const { line, rec, headers } = await complete(h, 'obs-served', { model: 'a/x', models: ['b/y'], messages: CHEAP_BODY.messages });
  assert.deepEqual((rec.json as { model: string }).model, 'a/x');
  assert.equal(headers['x-signalbox-model'], 'a/x');
  assert.equal(line.rule, 'raw');
  assert.equal(line.model, 'a/x');
  assert.equal('routed_model' in line, false, 'routed model is the requested one');
  assert.equal(line.served_model, 'b/y');
});

test('x-signalbox-overhead-ms is a decimal number of milliseconds, smaller than the whole request', async (t) => {
  const h = await harness(t);
  for (const stream of [false, true]) {
    await t.test(stream ? 'streaming' : 'non-streaming', async () => {
      const c = await complete(h, `obs-overhead-${String(stream)}`, { ...CHEAP_BODY, stream });
      const header = c.headers['x-signalbox-overhead-ms'];
      assert.equal(typeof header, 'string');
      assert.match(header as string, /^\d+\.\d{3}$/);
      const ms = Number(header);
      assert.ok(ms >= 0 && ms < c.totalMs, `overhead ${ms} ms not within [0, ${c.totalMs})`);
      // The header is taken before the head is written; the log line's overhead includes that too.
      assert.ok(ms <= (c.line.overhead_ms as number) + 0.001, `header ${ms} > log overhead_ms ${String(c.line.overhead_ms)}`);
    });
  }
});

test('reasoning and cached tokens appear on the log line when upstream reports them', STREAM_TEST, async (t) => {
  const h = await harness(t);
  const reqId = 'obs-reasoning-cached';
  const { call, upstream } = await manualStream(h, reqId);
  const usage = {
    prompt_tokens: 40, completion_tokens: 20, total_tokens: 60, cost: 0.00008,
    prompt_tokens_details: { cached_tokens: 3 }, completion_tokens_details: { reasoning_tokens: 7 },
  };
  for (const event of streamWithUsage(usage)) await upstream.write(event);
  await upstream.end();
  await call.done;
  const line = await h.logs.requestLine(reqId);
  assert.equal(line.prompt_tokens, 40);
  assert.equal(line.completion_tokens, 20);
  assert.equal(line.reasoning_tokens, 7);
  assert.equal(line.cached_tokens, 3);
  assert.equal(line.cost_usd, 0.00008);
});

test('a stream cut by upstream logs stream_error upstream_cut', async (t) => {
  const h = await harness(t);
  h.fake.enqueue({ type: 'reset-mid-stream', afterEvents: 2 });
  const { status, line } = await complete(h, 'obs-cut', { ...CHEAP_BODY, stream: true });
  assert.equal(status, 200);
  assert.equal(line.stream_error, 'upstream_cut');
  assert.equal(line.error_code, 'upstream_unreachable');
  assert.equal('upstream_error' in line, false, 'upstream reported no error of its own');
});

test('an in-band upstream error logs stream_error upstream_inband and upstream_error', async (t) => {
  const h = await harness(t);
  h.fake.enqueue({ type: 'error-mid-stream', afterEvents: 2, code: 502, message: 'Provider disconnected' });
  const { status, line } = await complete(h, 'obs-inband', { ...CHEAP_BODY, stream: true });
  assert.equal(status, 200);
  assert.equal(line.stream_error, 'upstream_inband');
  assert.equal(line.upstream_error, '502');
  assert.equal(line.finish_reason, 'error');
  assert.equal('error_code' in line, false, "upstream's error is not the proxy's");
});

test('an upstream that goes idle mid-stream logs stream_error idle_timeout', STREAM_TEST, async (t) => {
  const h = await harness(t, { UPSTREAM_IDLE_TIMEOUT_MS: '150' });
  const reqId = 'obs-idle';
  const { call, upstream } = await manualStream(h, reqId);
  await upstream.write(chunk({ role: 'assistant', content: 'Hi' }, null));
  // ...and then nothing, ever.
  await call.done;
  const line = await h.logs.requestLine(reqId);
  assert.equal(line.status, 200);
  assert.equal(line.stream_error, 'idle_timeout');
  assert.equal(line.error_code, 'upstream_timeout');
  assertNumberWithin(line.ttft_ms, 0, line.duration_ms as number, 'ttft_ms');
});
