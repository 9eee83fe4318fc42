import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import type { OutgoingHttpHeaders } from 'node:http';
import { test, type TestContext } from 'node:test';
import type { ExchangeRecord } from '../../src/server/record.js';
import { CHAT_BODY, startHarness, type Harness, type HarnessOptions, type LogRecord } from '../support/harness.js';
import { rawRequest, type RawResponse } from '../support/http.js';
import { startMain } from '../support/main-process.js';

/** Every test waits on log lines (events); this only turns a lost line into a failure instead of a hang. */
const EVENT_TEST = { timeout: 30_000 };

async function harness(t: TestContext, options: HarnessOptions): Promise<Harness> {
  const h = await startHarness(options);
  t.after(() => h.close());
  return h;
}

function postChat(h: Harness, reqId: string, body: unknown, headers: OutgoingHttpHeaders = {}): Promise<RawResponse> {
  return rawRequest(h.url, {
    method: 'POST',
    path: '/v1/chat/completions',
    headers: { 'content-type': 'application/json', 'x-request-id': reqId, ...headers },
    body: JSON.stringify(body),
  });
}

// ---------------------------------------------------------------------------------------------
// Who sent the request

const KEY_ONE = 'sy-KEYONE-0123456789';
const KEY_TWO = 'sy-KEYTWO-9876543210';

test('the request line names the TCP peer, the user agent and the client key by name (key-N by position in the flat list), never the key', EVENT_TEST, async (t) => {
  const headers = {
    authorization: `Bearer ${KEY_TWO}`,
    'user-agent': 'OpenAI/JS 6.49.0',
    // No trust-proxy setting exists: a client's own claim about its address is not logged as its address.
    'x-forwarded-for': '203.0.113.9',
  };
  const lines: LogRecord[] = [];
  // The flat list names keys by position (issue 16): the keys file gives them names of their own.
  for (const [i, keys] of [`${KEY_ONE},${KEY_TWO}`, `${KEY_TWO},${KEY_ONE}`].entries()) {
    const h = await harness(t, { env: { OPENROUTER_API_KEY: 'sk-or-server', SIGNALBOX_API_KEYS: keys } });
    const res = await postChat(h, `who-${i}`, CHAT_BODY, headers);
    assert.equal(res.status, 200);
    const wrong = await postChat(h, `who-wrong-${i}`, CHAT_BODY, { ...headers, authorization: 'Bearer sy-KEYTHREE' });
    assert.equal(wrong.status, 401);
    lines.push(await h.logs.requestLine(`who-${i}`));
    const refused = await h.logs.requestLine(`who-wrong-${i}`);
    assert.equal(refused.client_key, undefined, 'a refused key has no id');
    assert.equal(refused.remote_addr, '127.0.0.1');
    for (const secret of ['KEYONE', 'KEYTWO', 'KEYTHREE']) assert.equal(h.logs.text.includes(secret), false, `log contains ${secret}`);
  }
  assert.deepEqual(lines.map((line) => line.client_key), ['key-2', 'key-1']);
  for (const line of lines) {
    assert.equal(line.remote_addr, '127.0.0.1');
    assert.equal(line.user_agent, 'OpenAI/JS 6.49.0');
  }

  // Without client keys there is no key to name.
  const open = await harness(t, { env: { OPENROUTER_API_KEY: 'sk-or-server' } });
  assert.equal((await postChat(open, 'who-open', CHAT_BODY)).status, 200);
  const line = await open.logs.requestLine('who-open');
  assert.equal(line.client_key, undefined);
  assert.equal(line.user_agent, undefined, 'node:http sends no user agent unless asked');
  assert.equal(line.remote_addr, '127.0.0.1');
});

test('the startup line says how many flat keys there are and how they are named, never the keys', EVENT_TEST, async (t) => {
  // No request is made: the upstream is never reached.
  const main = await startMain(t, 'http://127.0.0.1:9/api/v1', { SIGNALBOX_API_KEYS: `${KEY_ONE},${KEY_TWO}` });
  const ready = await main.waitForLog((r) => r.msg === 'signalbox ready');
  assert.equal(ready.client_auth, '2 key(s), named key-1... by position');
  assert.equal(main.logs.text.includes('KEYONE') || main.logs.text.includes('KEYTWO'), false);
});

// ---------------------------------------------------------------------------------------------
// One debug line per upstream attempt

const PRIMARY = 'openai/gpt-4o-mini';
const FALLBACK = 'anthropic/claude-3-haiku';
const LAST = 'openai/gpt-4o';
const FALLBACK_RULES = `version: 1
rules:
  - name: with-fallbacks
    route: { model: ${PRIMARY}, fallbacks: [${FALLBACK}, ${LAST}] }
`;

async function attemptsOf(t: TestContext, level: string, reqId: string): Promise<{ attempts: LogRecord[]; records: LogRecord[]; line: LogRecord }> {
  const h = await harness(t, { rules: FALLBACK_RULES, env: { OPENROUTER_API_KEY: 'sk-or-server', RETRY_MAX_ATTEMPTS: '3', LOG_LEVEL: level } });
  // No answer at all, then a 500: both are retried, each on the next model of the route.
  h.fake.enqueue({ type: 'reset-before-headers' }, { type: 'status', status: 500 });
  const res = await postChat(h, reqId, { ...CHAT_BODY, model: 'auto' });
  assert.equal(res.status, 200);
  const line = await h.logs.requestLine(reqId);
  const records = h.logs.records;
  return { attempts: records.filter((r) => r.msg === 'upstream attempt' && r.reqId === reqId), records, line };
}

test('at debug, each upstream attempt has its own line, before the request line', EVENT_TEST, async (t) => {
  const { attempts, records, line } = await attemptsOf(t, 'debug', 'attempts-debug');
  assert.equal(line.upstream_attempts, 3);
  assert.deepEqual(
    attempts.map(({ attempt, model, status, error_code, wait_ms, level }) => ({ attempt, model, status, error_code, wait_ms, level })),
    [
      { attempt: 1, model: PRIMARY, status: undefined, error_code: 'upstream_unreachable', wait_ms: 0, level: 20 },
      { attempt: 2, model: FALLBACK, status: 500, error_code: undefined, wait_ms: 0, level: 20 },
      { attempt: 3, model: LAST, status: 200, error_code: undefined, wait_ms: undefined, level: 20 },
    ],
  );
  for (const a of attempts) assert.ok(typeof a.duration_ms === 'number' && a.duration_ms >= 0, `duration_ms ${String(a.duration_ms)}`);
  assert.ok(records.indexOf(attempts[2]!) < records.indexOf(line), 'attempt lines come before the request line');
});

test('at info, no attempt line is written', EVENT_TEST, async (t) => {
  const { attempts, records, line } = await attemptsOf(t, 'info', 'attempts-info');
  assert.equal(line.upstream_attempts, 3);
  assert.deepEqual(attempts, []);
  assert.equal(records.some((r) => r.level < 30), false);
});

// ---------------------------------------------------------------------------------------------
// Bounded fields

test('log fields a client or the upstream chooses are cut: a 1 MB model name keeps the line small', EVENT_TEST, async (t) => {
  const h = await harness(t, { env: { OPENROUTER_API_KEY: 'sk-or-server', LOG_PROMPTS: 'true' } });
  const model = 'm'.repeat(1024 * 1024);
  const prompt = 'p'.repeat(1024 * 1024);
  // Node's default header limit is 16 KiB in all: a long user agent, and a long path beside it.
  const userAgent = 'u'.repeat(6000);
  const body = { model, messages: [{ role: 'user', content: prompt }] };
  const res = await postChat(h, 'bounded-chat', body, { 'user-agent': userAgent });
  assert.ok(res.status < 500, `status ${res.status}`);
  const longPath = `/v1/${'x'.repeat(6000)}`;
  const passthrough = await rawRequest(h.url, { path: longPath, headers: { 'x-request-id': 'bounded-path' } });
  assert.ok(passthrough.status < 500, `status ${passthrough.status}`);

  const line = await h.logs.requestLine('bounded-chat');
  const pathLine = await h.logs.requestLine('bounded-path');
  const size = (r: LogRecord): number => JSON.stringify(r).length;
  assert.ok(size(line) < 8 * 1024, `the request line has ${size(line)} characters`);
  assert.ok(size(pathLine) < 4 * 1024, `the request line has ${size(pathLine)} characters`);
  assert.equal(line.model, `${'m'.repeat(200)}…[cut, ${model.length} chars]`);
  // The fake answers with the model it was sent: the upstream's choice is bounded as well.
  if (line.served_model !== undefined) assert.equal(line.served_model, line.model);
  assert.equal(line.user_agent, `${'u'.repeat(200)}…[cut, 6000 chars]`);
  assert.equal(line.prompt, `${'p'.repeat(4096)}…[cut, ${prompt.length} chars]`);
  // The hash is of the whole prompt, so identical long prompts still group.
  assert.equal(line.prompt_hash, createHash('sha256').update(prompt).digest('hex').slice(0, 16));
  assert.equal(pathLine.path, `${longPath.slice(0, 1024)}…[cut, ${longPath.length} chars]`);
});

test('an exchange that cannot be metered is logged at error and the rest of the batch is recorded (issue 12, defect 1)', EVENT_TEST, async () => {
  const { ExchangeRecorder } = await import('../../src/server/recorder.js');
  const { Exchange } = await import('../../src/server/exchange.js');
  const { createLogger } = await import('../../src/server/logger.js');
  const { LogCapture } = await import('../support/harness.js');
  const logs = new LogCapture();
  const logger = createLogger('info', logs);
  let metered = 0;
  const metrics = {
    exchangeFinished() {
      if (++metered === 1) throw new RangeError('Invalid string length');
    },
  } as unknown as ConstructorParameters<typeof ExchangeRecorder>[0]['metrics'];
  const recorder = new ExchangeRecorder({ metrics, logPrompts: false });
  for (const id of ['unmeterable', 'next-in-batch']) {
    recorder.record(new Exchange().record(200, false, 'POST', '/v1/chat/completions'), logger.child({ reqId: id }));
  }

  // The batch timer would run this; a throw there kills the process.
  assert.doesNotThrow(() => recorder.flush());

  const failed = await logs.waitFor((r) => r.msg === 'recording the finished request failed');
  assert.equal(failed.reqId, 'unmeterable');
  assert.equal(failed.level, 50);
  assert.equal(metered, 2);
  await logs.requestLine('next-in-batch');
});

for (const [level, expected] of [['info', 'Say hello'], ['error', undefined]] as const) {
  test(`at LOG_LEVEL=${level} the last user message is ${expected === undefined ? 'never taken (no request line will hash it)' : 'taken for the prompt hash'}`, EVENT_TEST, async (t) => {
    const { withTimeout } = await import('../support/timeout.js');
    const h = await harness(t, { env: { LOG_LEVEL: level, METRICS_ENABLED: 'true' } });
    const metrics = h.metrics!;
    const recorded = new Promise<ExchangeRecord>((resolve) => {
      const meter = metrics.exchangeFinished.bind(metrics);
      metrics.exchangeFinished = (record, endpoint) => {
        meter(record, endpoint);
        resolve(record);
      };
    });
    const res = await fetch(`${h.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer sk-or-test' }, body: JSON.stringify(CHAT_BODY) });
    assert.equal(res.status, 200);
    await res.arrayBuffer();
    // A scrape flushes the recorder's batch.
    await (await fetch(`${h.url}/metrics`)).text();
    const record = await withTimeout(recorded, 'the request\'s record');
    assert.equal(record.promptText, expected);
  });
}
