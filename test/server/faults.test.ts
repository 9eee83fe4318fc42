/**
 * Fault injection: what the client gets, what the upstream saw and what the metrics say when the
 * upstream (the fake OpenRouter) misbehaves. Cases:
 *
 *  1. connection refused, 3 attempts → 502 upstream_unreachable
 *  2. connect timeout → 504 upstream_timeout (see below: Linux only)
 *  3. no response head within UPSTREAM_HEADERS_TIMEOUT_MS → 504 upstream_timeout, upstream aborted
 *  4. head, then silence longer than UPSTREAM_IDLE_TIMEOUT_MS → bytes, then an SSE error event
 *  5. reset before the head, retried → 200
 *  6. reset mid-stream, not retried → bytes, then an SSE error event
 *  7. malformed SSE relayed byte for byte: (a) lines split across writes, (b) a UTF-8 character
 *     split across writes, (c) CRLF line ends, (d) bad JSON in a data line, (e) no [DONE],
 *     (f) a 5 MiB event (over the tap's 4 MiB cap) followed by the usage chunk
 *  8. 429 with retry-after-ms, Retry-After in seconds, as an HTTP date (retried), and over the cap (not)
 *  9. 500/502/503/504 retried once; 400/401/402/403/404/422 passed through after one attempt
 * 10. an in-band error event relayed as it is
 * 11. a 20 MiB JSON response relayed whole (the tap reads its usage from the tail, unparsed)
 * 12. the client leaves before the head, mid-stream, and during the wait between two attempts:
 *     the upstream is aborted and never tried again
 * 13. `Expect: 100-continue` from the client
 * 14. the upstream restarts on the same port while the proxy keeps its connection pool
 *
 * Determinism: timeouts use tiny configured values with faults that never end; waits are on
 * events, log lines or metric values (a scrape flushes the batched recorder), never fixed sleeps.
 * (undici runs its connect, headers and body timeouts on its own ~1 s resolution timers, so a
 * 150 ms timeout fires after up to about a second: the tests assert the outcome, not the time.)
 *
 * Case 2 needs a peer that never completes the TCP handshake. On loopback that is a listening
 * socket whose accept queue is full: the kernel then drops SYNs. Node's own servers always accept,
 * so a child Node process listens with backlog 1 and blocks its event loop (Atomics.wait) so it
 * never accepts; the test fills the queue with held connections, confirming through
 * /proc/net/tcp that the kernel counts them (Linux accepts backlog + 1 connections, then drops
 * SYNs). Where /proc/net/tcp does not exist (not Linux), the test is skipped.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { connect, type Socket } from 'node:net';
import { test, type TestContext } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { FakeOpenRouter, openRouterErrorBody, type ManualResponse, type ReceivedRequest } from '../../src/dev/fake-openrouter.js';
import { CHAT_BODY, retryWaiting, startHarness, type Harness, type LogRecord } from '../support/harness.js';
import { jsonOf, rawRequest, type RawResponse } from '../support/http.js';
import { freePort } from '../support/ports.js';
import { withTimeout } from '../support/timeout.js';

/** Every test waits on events; this turns a lost event into a failure instead of a hang. */
const EVENT_TEST = { timeout: 30_000 };
const MiB = 1024 * 1024;
const SERVER_KEY = 'sk-or-faults-test';
const STREAM_BODY = { ...CHAT_BODY, stream: true };

// ---------------------------------------------------------------------------------------------
// Helpers

async function harness(t: TestContext, env: Record<string, string> = {}): Promise<Harness> {
  const h = await startHarness({ env: { OPENROUTER_API_KEY: SERVER_KEY, ...env } });
  t.after(() => h.close());
  return h;
}

/** A chat request with its own connection; resolves with everything the client received. */
function chat(h: Harness, id: string, body: unknown = CHAT_BODY): Promise<RawResponse> {
  return rawRequest(h.url, {
    method: 'POST', path: '/v1/chat/completions',
    headers: { 'content-type': 'application/json', 'x-request-id': id },
    body: JSON.stringify(body),
  });
}

/** The proxy's own error envelope. */
function assertEnvelope(res: RawResponse, status: number, code: string, type: string, message?: string | RegExp): void {
  assert.equal(res.status, status);
  assert.match(String(res.headers['content-type']), /^application\/json/);
  const body = jsonOf<{ error: { message: string; type: string; code: string } }>(res);
  assert.deepEqual(Object.keys(body.error).sort(), ['code', 'message', 'type']);
  assert.equal(body.error.code, code);
  assert.equal(body.error.type, type);
  if (typeof message === 'string') assert.equal(body.error.message, message);
  else if (message) assert.match(body.error.message, message);
}

/** Prometheus text, parsed: `value(name, labels)` sums the series of `name` whose labels include `labels`. */
class Scrape {
  private readonly series: { name: string; labels: Record<string, string>; value: number }[] = [];
  /** Metrics declared by a `# TYPE` line, with or without series: a misspelt name is an error, not a 0. */
  private readonly declared = new Set<string>();

  constructor(text: string) {
    for (const line of text.split('\n')) {
      const type = /^# TYPE (\w+) /.exec(line);
      if (type) this.declared.add(type[1]!);
      if (line === '' || line.startsWith('#')) continue;
      const m = /^(\w+)(?:\{(.*)\})? (\S+)$/.exec(line);
      if (m) this.series.push({ name: m[1]!, labels: parseLabels(m[2] ?? ''), value: Number(m[3]) });
    }
  }

  value(name: string, labels: Record<string, string> = {}): number {
    assert.ok(this.declared.has(name), `no metric ${name} in the scrape`);
    return this.series
      .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
      .reduce((sum, s) => sum + s.value, 0);
  }
}

function parseLabels(text: string): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const m of text.matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[m[1]!] = m[2]!;
  return labels;
}

async function scrape(h: Harness): Promise<Scrape> {
  const res = await fetch(`${h.url}/metrics`);
  assert.equal(res.status, 200);
  return new Scrape(await res.text());
}

/**
 * Asserts metric values in one scrape. Keys are `name` (all series summed) or
 * `name{label="value",...}` (the series with those labels, summed).
 */
async function assertMetrics(h: Harness, expected: Record<string, number>): Promise<void> {
  const s = await scrape(h);
  const actual: Record<string, number> = {};
  for (const key of Object.keys(expected)) {
    const m = /^(\w+)(?:\{(.*)\})?$/.exec(key);
    assert.ok(m, `bad metric key ${key}`);
    actual[key] = s.value(m[1]!, parseLabels(m[2] ?? ''));
  }
  assert.deepEqual(actual, expected);
}

/** Scrapes until `predicate` holds (a state to reach, not a time to wait). */
async function untilMetrics(h: Harness, predicate: (s: Scrape) => boolean): Promise<void> {
  while (!predicate(await scrape(h))) await delay(5);
}

/** The request log line, once the proxy wrote it (its metrics are recorded in the same batch). */
function requestLine(h: Harness, id: string): Promise<LogRecord> {
  return h.logs.requestLine(id);
}

/** One SSE data event in OpenRouter's chunk shape; `extra` adds top-level fields (usage). */
function chunkEvent(content: string, extra: Record<string, unknown> = {}, eol = '\n'): string {
  return `data: ${JSON.stringify({
    id: 'gen-faults-1', provider: 'OpenAI', model: CHAT_BODY.model, object: 'chat.completion.chunk', created: 1_700_000_000,
    choices: [{ index: 0, delta: { role: 'assistant', content }, finish_reason: null }],
    ...extra,
  })}${eol}${eol}`;
}

const USAGE = { prompt_tokens: 11, completion_tokens: 7, total_tokens: 18, cost: 0.000025 };
const usageEvent = (eol = '\n'): string => chunkEvent('', { usage: USAGE }, eol);

/**
 * A streamed chat request answered by hand: the fake sends an SSE head, then `pieces` as separate
 * writes, then ends. Resolves with what the client received and what the fake sent.
 */
async function manualStream(h: Harness, id: string, pieces: readonly (string | Buffer)[]): Promise<{ res: RawResponse; sent: Buffer }> {
  h.fake.enqueue({ type: 'manual' });
  const response = chat(h, id, STREAM_BODY);
  const upstream = await h.fake.nextManual();
  upstream.writeHead(200, { 'content-type': 'text/event-stream' });
  for (const piece of pieces) await upstream.write(piece);
  await upstream.end();
  const res = await response;
  return { res, sent: Buffer.concat(upstream.request.sent) };
}

/** A plain request still gets a whole answer: the fault left nothing behind in the proxy. */
async function assertProxyStillServes(h: Harness): Promise<void> {
  const res = await chat(h, 'after-the-fault');
  assert.equal(res.status, 200);
  assert.equal(jsonOf<{ choices: { message: { content: string } }[] }>(res).choices[0]?.message.content, h.fake.options.content);
}

/**
 * Asserts that `body` is exactly `sent` followed by one final SSE event in OpenRouter's
 * mid-stream error shape, with `code`.
 */
function assertBytesThenErrorEvent(body: Buffer, sent: Buffer, id: string, code: string): void {
  assert.ok(sent.length > 0);
  assert.deepEqual(body.subarray(0, sent.length), sent);
  const rest = body.subarray(sent.length).toString('utf8');
  assert.match(rest, /^data: [^\n]+\n\n$/, `one final event, got ${JSON.stringify(rest)}`);
  const event = JSON.parse(rest.slice('data: '.length, -2)) as {
    id: string; object: string; model: string; provider: string; error: { code: string; message: string };
    choices: { finish_reason: string }[];
  };
  assert.equal(event.id, `gen-signalbox-${id}`);
  assert.equal(event.object, 'chat.completion.chunk');
  assert.equal(event.model, CHAT_BODY.model);
  assert.equal(event.provider, 'signalbox');
  assert.equal(event.error.code, code);
  assert.equal(event.choices[0]?.finish_reason, 'error');
}

/** A chat request whose body bytes can be watched as they arrive, and which the test can abandon. */
interface LeavingClient {
  readonly response: Promise<IncomingMessage>;
  /** Resolves once at least `n` body bytes arrived. */
  waitForBytes(n: number): Promise<Buffer>;
  /** Leaves: destroys the request and its socket. */
  leave(): void;
}

function leavingClient(h: Harness, id: string, body: unknown): LeavingClient {
  const chunks: Buffer[] = [];
  let count = 0;
  const req = httpRequest(`${h.url}/v1/chat/completions`, {
    method: 'POST', agent: false, headers: { 'content-type': 'application/json', 'x-request-id': id },
  });
  // The test destroys the request on purpose; the resulting socket error is expected.
  req.on('error', () => {});
  const response = new Promise<IncomingMessage>((resolve) => req.once('response', resolve));
  void response.then((res) => {
    res.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      count += chunk.length;
      res.emit('progress');
    });
    res.on('error', () => {});
  });
  req.end(JSON.stringify(body));
  return {
    response,
    async waitForBytes(n) {
      const res = await response;
      while (count < n) await withTimeout(once(res, 'progress'), `${n} response bytes`);
      return Buffer.concat(chunks);
    },
    leave: () => req.destroy(),
  };
}

const BACKLOG = 1;
/** Listens with a tiny backlog and then blocks its event loop for good: connections are never accepted. */
const NEVER_ACCEPTS = `const s = require('node:net').createServer();
s.listen({ port: 0, host: '127.0.0.1', backlog: ${BACKLOG} }, () => {
  require('node:fs').writeSync(1, s.address().port + '\\n');
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
});`;

/** Connections waiting in the accept queue of the loopback listener on `port` (Linux), or undefined. */
function acceptQueueLength(port: number): number | undefined {
  let table: string;
  try {
    table = readFileSync('/proc/net/tcp', 'utf8');
  } catch {
    return undefined;
  }
  const local = `0100007F:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  for (const line of table.split('\n')) {
    const f = line.trim().split(/\s+/);
    // st 0A: LISTEN; for a listener, rx_queue is the accept queue's length.
    if (f[1] === local && f[3] === '0A') return parseInt(f[4]?.split(':')[1] ?? '', 16);
  }
  return undefined;
}

/**
 * A loopback port whose SYNs are dropped (the accept queue of a listener that never accepts is
 * full), or undefined where that cannot be confirmed. The child and the held connections are
 * released when the test ends.
 */
async function portThatDropsSyns(t: TestContext): Promise<number | undefined> {
  if (!existsProcNetTcp()) return undefined;
  const child = spawn(process.execPath, ['-e', NEVER_ACCEPTS], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = once(child, 'exit');
  const held: Socket[] = [];
  t.after(async () => {
    for (const socket of held) socket.destroy();
    child.kill('SIGKILL');
    await exited;
  });
  let out = '';
  child.stdout.setEncoding('utf8');
  while (!out.includes('\n')) out += String((await withTimeout(once(child.stdout, 'data'), "the child's first line"))[0]);
  const port = Number(out.trim());
  // Linux queues backlog + 1 connections; each is awaited until the kernel counts it.
  while (held.length <= BACKLOG) {
    const socket = connect(port, '127.0.0.1');
    held.push(socket);
    await once(socket, 'connect');
    while (acceptQueueLength(port) !== held.length) {
      if (acceptQueueLength(port) === undefined) return undefined;
      await delay(1);
    }
  }
  return port;
}

function existsProcNetTcp(): boolean {
  try {
    readFileSync('/proc/net/tcp', 'utf8');
    return true;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------
// 1-3: no answer at all

test('1. connection refused: three attempts, then 502 upstream_unreachable', EVENT_TEST, async (t) => {
  const port = await freePort();
  const h = await harness(t, { OPENROUTER_BASE_URL: `http://127.0.0.1:${port}/api/v1`, RETRY_MAX_ATTEMPTS: '3' });

  const res = await chat(h, 'refused');

  assertEnvelope(res, 502, 'upstream_unreachable', 'server_error', /^Upstream unreachable: ECONNREFUSED/);
  assert.equal(res.headers['x-request-id'], 'refused');
  assert.equal(res.headers['x-signalbox-attempts'], '3');
  assert.equal(h.fake.received.length, 0);
  const line = await requestLine(h, 'refused');
  assert.equal(line.status, 502);
  assert.equal(line.upstream_attempts, 3);
  assert.equal(line.error_code, 'upstream_unreachable');
  assert.equal(line.upstream_status, undefined);
  await assertMetrics(h, {
    'signalbox_requests_total': 1,
    'signalbox_requests_total{status="502",stream="false"}': 1,
    'signalbox_upstream_requests_total': 3,
    'signalbox_upstream_requests_total{status="upstream_unreachable"}': 3,
    'signalbox_fallbacks_total': 2,
    'signalbox_fallbacks_total{reason="upstream_unreachable"}': 2,
  });
});

test('2. connect timeout: a peer that never completes the handshake gives 504 upstream_timeout', EVENT_TEST, async (t) => {
  const port = await portThatDropsSyns(t);
  if (port === undefined) {
    t.skip('needs /proc/net/tcp (Linux) to confirm that the accept queue is full and SYNs are dropped');
    return;
  }
  const h = await harness(t, { OPENROUTER_BASE_URL: `http://127.0.0.1:${port}/api/v1`, UPSTREAM_CONNECT_TIMEOUT_MS: '150' });

  const res = await chat(h, 'connect-timeout');

  assertEnvelope(res, 504, 'upstream_timeout', 'timeout_error', 'Upstream timeout: 150 ms elapsed connecting to the upstream');
  const line = await requestLine(h, 'connect-timeout');
  assert.equal(line.status, 504);
  assert.equal(line.upstream_attempts, 1);
  assert.equal(line.error_code, 'upstream_timeout');
  await assertMetrics(h, {
    'signalbox_requests_total{status="504"}': 1,
    'signalbox_upstream_requests_total': 1,
    'signalbox_upstream_requests_total{status="upstream_timeout"}': 1,
    'signalbox_fallbacks_total': 0,
  });
});

test('3. no response head within the headers timeout: 504 upstream_timeout, upstream request aborted', EVENT_TEST, async (t) => {
  const h = await harness(t, { UPSTREAM_HEADERS_TIMEOUT_MS: '150' });
  h.fake.enqueue({ type: 'hang' });

  const res = await chat(h, 'slow-headers');

  assertEnvelope(res, 504, 'upstream_timeout', 'timeout_error', 'Upstream timeout: 150 ms elapsed waiting for response headers from the upstream');
  assert.equal(h.fake.received.length, 1);
  const rec = h.fake.received[0]!;
  assert.equal(await rec.outcome, 'aborted');
  assert.equal(rec.aborted, true);
  assert.equal(rec.sent.length, 0);
  const line = await requestLine(h, 'slow-headers');
  assert.equal(line.status, 504);
  assert.equal(line.error_code, 'upstream_timeout');
  await assertMetrics(h, {
    'signalbox_requests_total{status="504",stream="false"}': 1,
    'signalbox_upstream_requests_total': 1,
    'signalbox_upstream_requests_total{status="upstream_timeout"}': 1,
    'signalbox_stream_errors_total': 0,
  });
});

// ---------------------------------------------------------------------------------------------
// 4-6: the connection breaks

test('4. a head, then silence past the idle timeout: the bytes, then an upstream_timeout error event', EVENT_TEST, async (t) => {
  const h = await harness(t, { UPSTREAM_IDLE_TIMEOUT_MS: '150' });
  h.fake.enqueue({ type: 'hang-after-headers' });

  const res = await chat(h, 'idle', STREAM_BODY);

  assert.equal(res.status, 200);
  assert.equal(res.headers['content-type'], 'text/event-stream');
  assert.equal(res.headers['cache-control'], 'no-cache');
  assert.equal(res.headers['x-accel-buffering'], 'no');
  const rec = h.fake.received[0]!;
  assert.equal(h.fake.received.length, 1);
  assert.deepEqual(Buffer.concat(rec.sent), Buffer.from(': OPENROUTER PROCESSING\n\n'));
  assertBytesThenErrorEvent(res.body, Buffer.concat(rec.sent), 'idle', 'upstream_timeout');
  assert.equal(await rec.outcome, 'aborted');
  const line = await requestLine(h, 'idle');
  assert.equal(line.status, 200);
  assert.equal(line.stream_error, 'idle_timeout');
  assert.equal(line.error_code, 'upstream_timeout');
  assert.equal(line.client_closed, undefined);
  await assertMetrics(h, {
    'signalbox_requests_total{status="200",stream="true"}': 1,
    'signalbox_upstream_requests_total{status="200"}': 1,
    'signalbox_stream_errors_total': 1,
    'signalbox_stream_errors_total{kind="idle_timeout"}': 1,
    'signalbox_client_disconnects_total': 0,
  });
});

test('5. a reset before the head is retried: 200 from the second attempt', EVENT_TEST, async (t) => {
  const h = await harness(t, { RETRY_MAX_ATTEMPTS: '2' });
  h.fake.enqueue({ type: 'reset-before-headers' });

  const res = await chat(h, 'reset-retried');

  assert.equal(res.status, 200);
  assert.equal(res.headers['x-signalbox-attempts'], '2');
  assert.equal(jsonOf<{ choices: { message: { content: string } }[] }>(res).choices[0]?.message.content, h.fake.options.content);
  assert.equal(h.fake.received.length, 2);
  const [first, second] = h.fake.received as [ReceivedRequest, ReceivedRequest];
  assert.equal(await first.outcome, 'aborted');
  assert.equal(await second.outcome, 'complete');
  assert.deepEqual(second.body, first.body);
  const line = await requestLine(h, 'reset-retried');
  assert.equal(line.status, 200);
  assert.equal(line.upstream_attempts, 2);
  assert.equal(line.upstream_status, 200);
  await assertMetrics(h, {
    'signalbox_requests_total': 1,
    'signalbox_requests_total{status="200"}': 1,
    'signalbox_upstream_requests_total': 2,
    'signalbox_upstream_requests_total{status="upstream_unreachable"}': 1,
    'signalbox_upstream_requests_total{status="200"}': 1,
    'signalbox_fallbacks_total{reason="upstream_unreachable"}': 1,
  });
});

test('6. a reset mid-stream is not retried: the bytes, then an upstream_unreachable error event', EVENT_TEST, async (t) => {
  const h = await harness(t, { RETRY_MAX_ATTEMPTS: '3' });
  h.fake.enqueue({ type: 'reset-mid-stream', afterEvents: 2 });

  const res = await chat(h, 'reset-mid-stream', STREAM_BODY);

  assert.equal(res.status, 200);
  assert.equal(res.headers['content-type'], 'text/event-stream');
  assert.equal(res.headers['x-signalbox-attempts'], '1');
  assert.equal(h.fake.received.length, 1);
  const rec = h.fake.received[0]!;
  // Two processing comments and two data events went out before the reset.
  assert.equal(rec.sent.length, 4);
  assertBytesThenErrorEvent(res.body, Buffer.concat(rec.sent), 'reset-mid-stream', 'upstream_unreachable');
  const line = await requestLine(h, 'reset-mid-stream');
  assert.equal(line.status, 200);
  assert.equal(line.stream_error, 'upstream_cut');
  assert.equal(line.error_code, 'upstream_unreachable');
  assert.equal(line.upstream_attempts, 1);
  await assertMetrics(h, {
    'signalbox_requests_total{status="200",stream="true"}': 1,
    'signalbox_upstream_requests_total': 1,
    'signalbox_fallbacks_total': 0,
    'signalbox_stream_errors_total': 1,
    'signalbox_stream_errors_total{kind="upstream_cut"}': 1,
  });
});

// ---------------------------------------------------------------------------------------------
// 7: malformed SSE

/**
 * Relays `pieces` as separate upstream writes and checks the passthrough is byte-exact, the
 * exchange ends cleanly (no stream error) and the proxy still serves; returns the log line.
 */
async function assertRelayedExactly(t: TestContext, id: string, pieces: readonly (string | Buffer)[]): Promise<LogRecord> {
  const h = await harness(t);
  const { res, sent } = await manualStream(h, id, pieces);
  assert.equal(res.status, 200);
  assert.equal(res.headers['content-type'], 'text/event-stream');
  assert.deepEqual(sent, Buffer.concat(pieces.map((p) => Buffer.from(p))));
  assert.ok(res.body.equals(sent), 'the client received exactly the bytes the upstream wrote');
  const line = await requestLine(h, id);
  assert.equal(line.status, 200);
  assert.equal(line.stream_error, undefined);
  assert.equal(line.error_code, undefined);
  assert.equal(line.bytes_out, sent.length);
  await assertMetrics(h, {
    'signalbox_requests_total': 1,
    'signalbox_requests_total{status="200",stream="true"}': 1,
    'signalbox_stream_errors_total': 0,
  });
  await assertProxyStillServes(h);
  return line;
}

function assertUsageCounted(line: LogRecord): void {
  assert.equal(line.prompt_tokens, USAGE.prompt_tokens);
  assert.equal(line.completion_tokens, USAGE.completion_tokens);
  assert.equal(line.cost_usd, USAGE.cost);
}

/** `text` cut into pieces at the given character offsets. */
function cutAt(text: string, ...offsets: number[]): string[] {
  const bounds = [0, ...offsets, text.length];
  return bounds.slice(1).map((end, i) => text.slice(bounds[i], end));
}

test('7a. malformed SSE: lines split across writes are relayed byte for byte', EVENT_TEST, async (t) => {
  const first = chunkEvent('Hello');
  const usage = usageEvent();
  const line = await assertRelayedExactly(t, 'split-lines', [
    ': OPENROUTER PROCESSING\n\n',
    ...cutAt(first, 3, 20, first.length - 1),
    ...cutAt(usage + 'data: [DONE]\n\n', 9, usage.length - 1, usage.length + 4),
  ]);
  assertUsageCounted(line);
});

test('7b. malformed SSE: a UTF-8 character split across two writes is relayed byte for byte', EVENT_TEST, async (t) => {
  const event = Buffer.from(chunkEvent('Grüße aus der Welt 🌍!'));
  const globe = event.indexOf(Buffer.from('🌍'));
  assert.ok(globe > 0);
  const line = await assertRelayedExactly(t, 'split-utf8', [
    event.subarray(0, globe + 2), event.subarray(globe + 2), usageEvent(), 'data: [DONE]\n\n',
  ]);
  assertUsageCounted(line);
});

test('7c. malformed SSE: CRLF line ends are relayed byte for byte and still read', EVENT_TEST, async (t) => {
  const line = await assertRelayedExactly(t, 'crlf', [
    ': OPENROUTER PROCESSING\r\n\r\n', chunkEvent('Hello', {}, '\r\n'), usageEvent('\r\n'), 'data: [DONE]\r\n\r\n',
  ]);
  assertUsageCounted(line);
});

test('7d. malformed SSE: a data line with bad JSON is relayed; the usage after it still counts', EVENT_TEST, async (t) => {
  const line = await assertRelayedExactly(t, 'bad-json', [
    chunkEvent('Hello'), 'data: {"id":"gen-faults-1","choices":[{"delta":\n\n', usageEvent(), 'data: [DONE]\n\n',
  ]);
  assertUsageCounted(line);
});

test('7e. malformed SSE: a stream that ends without [DONE] is relayed as it is, no error added', EVENT_TEST, async (t) => {
  const line = await assertRelayedExactly(t, 'no-done', [chunkEvent('Hello'), chunkEvent('', {}), usageEvent()]);
  assertUsageCounted(line);
});

test('7f. malformed SSE: a 5 MiB event is relayed whole and the usage chunk after it still counts', EVENT_TEST, async (t) => {
  const WRITE = 64 * 1024;
  const head = 'data: {"id":"gen-faults-1","object":"chat.completion.chunk","pad":"';
  const tail = '"}\n\n';
  const event = Buffer.alloc(5 * MiB, 'x');
  event.write(head, 0, 'latin1');
  event.write(tail, event.length - tail.length, 'latin1');
  const pieces: Buffer[] = [];
  for (let at = 0; at < event.length; at += WRITE) pieces.push(event.subarray(at, at + WRITE));
  const line = await assertRelayedExactly(t, 'oversize', [chunkEvent('Hello'), ...pieces, usageEvent(), 'data: [DONE]\n\n']);
  assertUsageCounted(line);
});

// ---------------------------------------------------------------------------------------------
// 8-9: error statuses

const RATE_LIMITED = openRouterErrorBody(429);

/**
 * A request answered first by a 429 with `headers`, then (when retried) by the fake's normal
 * answer; `arrivals` holds when each upstream request arrived (Date.now(): the clock an HTTP-date
 * Retry-After is read against).
 */
async function rateLimited(t: TestContext, id: string, headers: Record<string, string>): Promise<{ h: Harness; res: RawResponse; arrivals: number[] }> {
  const h = await harness(t, { RETRY_MAX_ATTEMPTS: '2' });
  const arrivals: number[] = [];
  h.fake.on('request', () => arrivals.push(Date.now()));
  h.fake.enqueue({ type: 'status', status: 429, body: RATE_LIMITED, headers });
  const res = await chat(h, id);
  return { h, res, arrivals };
}

/**
 * `earliestRetry`: the wall-clock time before which the retry must not arrive, given the first
 * request's arrival and the headers sent. Relative forms count from the first arrival (the proxy
 * reads the 429 later still); an HTTP date is an absolute time, whatever the first arrival.
 */
const RETRY_AFTER_FORMS: readonly {
  name: string;
  headers: () => Record<string, string>;
  earliestRetry: (firstArrival: number, headers: Record<string, string>) => number;
}[] = [
  { name: 'retry-after-ms: 20', headers: () => ({ 'retry-after-ms': '20' }), earliestRetry: (first) => first + 20 },
  { name: 'retry-after: 1 (seconds)', headers: () => ({ 'retry-after': '1' }), earliestRetry: (first) => first + 1000 },
  // An HTTP date has whole seconds: two seconds ahead is 1 to 2 s from now, so a proxy that did
  // not wait (or misread the date) sends the retry well before it.
  {
    name: 'retry-after as an HTTP date ~2 s ahead',
    headers: () => ({ 'retry-after': new Date(Date.now() + 2000).toUTCString() }),
    earliestRetry: (_first, headers) => Date.parse(headers['retry-after']!),
  },
];

for (const form of RETRY_AFTER_FORMS) {
  test(`8. a 429 with ${form.name} is waited for and retried: 200 after two upstream requests`, EVENT_TEST, async (t) => {
    const headers = form.headers();
    const { h, res, arrivals } = await rateLimited(t, 'rate-limited', headers);

    assert.equal(res.status, 200);
    assert.equal(res.headers['x-signalbox-attempts'], '2');
    assert.equal(res.headers['retry-after'], undefined);
    assert.equal(h.fake.received.length, 2);
    assert.equal(arrivals.length, 2);
    // Timers never fire early; allow for the millisecond rounding of Node's timers.
    const earliest = form.earliestRetry(arrivals[0]!, headers);
    assert.ok(arrivals[1]! >= earliest - 2, `the retry came ${earliest - arrivals[1]!} ms before Retry-After allowed`);
    assert.deepEqual(h.fake.received[1]!.body, h.fake.received[0]!.body);
    const line = await requestLine(h, 'rate-limited');
    assert.equal(line.upstream_attempts, 2);
    await assertMetrics(h, {
      'signalbox_requests_total{status="200"}': 1,
      'signalbox_upstream_requests_total': 2,
      'signalbox_upstream_requests_total{status="429"}': 1,
      'signalbox_upstream_requests_total{status="200"}': 1,
      'signalbox_fallbacks_total': 1,
      'signalbox_fallbacks_total{reason="429"}': 1,
    });
  });
}

test('8. a 429 whose Retry-After is over the cap goes to the client at once, with its header', EVENT_TEST, async (t) => {
  const { h, res } = await rateLimited(t, 'over-cap', { 'retry-after': '3600' });

  assert.equal(res.status, 429);
  assert.equal(res.headers['retry-after'], '3600');
  assert.equal(res.headers['x-signalbox-attempts'], '1');
  assert.deepEqual(jsonOf(res), RATE_LIMITED);
  assert.equal(h.fake.received.length, 1);
  const line = await requestLine(h, 'over-cap');
  assert.equal(line.status, 429);
  assert.equal(line.upstream_status, 429);
  assert.equal(line.upstream_attempts, 1);
  await assertMetrics(h, {
    'signalbox_requests_total{status="429"}': 1,
    'signalbox_upstream_requests_total': 1,
    'signalbox_upstream_requests_total{status="429"}': 1,
    'signalbox_fallbacks_total': 0,
  });
});

for (const status of [500, 502, 503, 504]) {
  test(`9. a ${status} is retried once, then the success is answered`, EVENT_TEST, async (t) => {
    const h = await harness(t, { RETRY_MAX_ATTEMPTS: '2' });
    h.fake.enqueue({ type: 'status', status });
    const id = `retried-${status}`;

    const res = await chat(h, id);

    assert.equal(res.status, 200);
    assert.equal(res.headers['x-signalbox-attempts'], '2');
    assert.equal(jsonOf<{ choices: { message: { content: string } }[] }>(res).choices[0]?.message.content, h.fake.options.content);
    assert.equal(h.fake.received.length, 2);
    assert.deepEqual(h.fake.received[1]!.body, h.fake.received[0]!.body);
    const line = await requestLine(h, id);
    assert.equal(line.status, 200);
    assert.equal(line.upstream_attempts, 2);
    await assertMetrics(h, {
      'signalbox_requests_total': 1,
      'signalbox_requests_total{status="200"}': 1,
      'signalbox_upstream_requests_total': 2,
      [`signalbox_upstream_requests_total{status="${status}"}`]: 1,
      'signalbox_upstream_requests_total{status="200"}': 1,
      'signalbox_fallbacks_total': 1,
      [`signalbox_fallbacks_total{reason="${status}"}`]: 1,
    });
  });
}

for (const status of [400, 401, 403, 404, 422, 402]) {
  test(`9. a ${status}${status === 402 ? ' without Retry-After' : ''} is never retried: passed through after one upstream request`, EVENT_TEST, async (t) => {
    const h = await harness(t, { RETRY_MAX_ATTEMPTS: '2' });
    h.fake.enqueue({ type: 'status', status });
    const id = `final-${status}`;

    const res = await chat(h, id);

    assert.equal(res.status, status);
    assert.match(String(res.headers['content-type']), /^application\/json/);
    assert.deepEqual(jsonOf(res), openRouterErrorBody(status));
    assert.equal(res.headers['x-signalbox-attempts'], '1');
    assert.equal(h.fake.received.length, 1);
    const line = await requestLine(h, id);
    assert.equal(line.status, status);
    assert.equal(line.upstream_status, status);
    assert.equal(line.upstream_attempts, 1);
    await assertMetrics(h, {
      [`signalbox_requests_total{status="${status}"}`]: 1,
      'signalbox_upstream_requests_total': 1,
      [`signalbox_upstream_requests_total{status="${status}"}`]: 1,
      'signalbox_fallbacks_total': 0,
    });
  });
}

// ---------------------------------------------------------------------------------------------
// 10-11: errors and sizes inside a 200

test('10. an in-band error event is relayed as it is and counted as upstream_inband', EVENT_TEST, async (t) => {
  const h = await harness(t, { RETRY_MAX_ATTEMPTS: '3' });
  h.fake.enqueue({ type: 'error-mid-stream', afterEvents: 2, code: 'server_error', message: 'Provider disconnected unexpectedly' });

  const res = await chat(h, 'inband', STREAM_BODY);

  assert.equal(res.status, 200);
  assert.equal(h.fake.received.length, 1);
  const sent = Buffer.concat(h.fake.received[0]!.sent);
  assert.ok(res.body.equals(sent), 'the client received exactly the bytes the upstream wrote');
  assert.match(res.body.toString('utf8'), /"error":\{"code":"server_error","message":"Provider disconnected unexpectedly"\}/);
  assert.doesNotMatch(res.body.toString('utf8'), /signalbox/);
  const line = await requestLine(h, 'inband');
  assert.equal(line.status, 200);
  assert.equal(line.stream_error, 'upstream_inband');
  assert.equal(line.upstream_error, 'server_error');
  assert.equal(line.error_code, undefined);
  await assertMetrics(h, {
    'signalbox_requests_total{status="200",stream="true"}': 1,
    'signalbox_upstream_requests_total': 1,
    'signalbox_stream_errors_total': 1,
    'signalbox_stream_errors_total{kind="upstream_inband"}': 1,
  });
});

test('11. a 20 MiB JSON response reaches the client whole, byte for byte', EVENT_TEST, async (t) => {
  const h = await harness(t);
  const prefix = '{"id":"gen-big","object":"chat.completion","model":"openai/gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"';
  const suffix = '"},"finish_reason":"stop"}],"usage":{"prompt_tokens":11,"completion_tokens":7,"total_tokens":18}}';
  const body = Buffer.alloc(20 * MiB, 'y');
  body.write(prefix, 0, 'latin1');
  body.write(suffix, body.length - suffix.length, 'latin1');
  h.fake.enqueue({ type: 'manual' });
  const response = chat(h, 'big-json');
  const upstream = await h.fake.nextManual();
  upstream.writeHead(200, { 'content-type': 'application/json', 'content-length': String(body.length) });
  for (let at = 0; at < body.length; at += MiB) await upstream.write(body.subarray(at, at + MiB));
  await upstream.end();

  const res = await response;

  assert.equal(res.status, 200);
  assert.equal(res.headers['content-type'], 'application/json');
  assert.equal(res.headers['content-length'], String(body.length));
  assert.equal(res.body.length, body.length);
  assert.ok(res.body.equals(body), 'the client received exactly the bytes the upstream wrote');
  const line = await requestLine(h, 'big-json');
  assert.equal(line.status, 200);
  assert.equal(line.bytes_out, body.length);
  assert.equal(line.prompt_tokens, 11, 'usage read from the end of a body too large to parse');
  await assertProxyStillServes(h);
});

// ---------------------------------------------------------------------------------------------
// 12: the client leaves

/** After a client left: aborted once, never retried, logged as 499, counted as a disconnect. */
async function assertLeftForGood(h: Harness, id: string, upstreamStatusLabel: string, fallbacks: number): Promise<void> {
  const line = await requestLine(h, id);
  assert.equal(line.status, 499);
  assert.equal(line.client_closed, true);
  assert.equal(line.upstream_attempts, 1);
  // Nothing is in flight any more: the attempt loop is over, no later retry can start.
  await untilMetrics(h, (s) => s.value('signalbox_inflight_requests') === 0);
  assert.equal(h.fake.received.length, 1);
  await assertMetrics(h, {
    'signalbox_requests_total': 1,
    'signalbox_requests_total{status="499"}': 1,
    'signalbox_client_disconnects_total': 1,
    'signalbox_upstream_requests_total': 1,
    [`signalbox_upstream_requests_total{status="${upstreamStatusLabel}"}`]: 1,
    'signalbox_fallbacks_total': fallbacks,
    'signalbox_inflight_requests': 0,
  });
}

test('12. a client that leaves before the head: upstream aborted, no retry, 499', EVENT_TEST, async (t) => {
  const h = await harness(t, { RETRY_MAX_ATTEMPTS: '3' });
  h.fake.enqueue({ type: 'hang' });
  const arrived = h.fake.nextRequest();
  const client = leavingClient(h, 'leave-before-head', CHAT_BODY);
  const rec = await arrived;

  client.leave();

  assert.equal(await rec.outcome, 'aborted');
  assert.equal(rec.aborted, true);
  await assertLeftForGood(h, 'leave-before-head', 'client_closed_request', 0);
});

test('12. a client that leaves mid-stream: upstream aborted, no retry, 499', EVENT_TEST, async (t) => {
  const h = await harness(t, { RETRY_MAX_ATTEMPTS: '3' });
  h.fake.enqueue({ type: 'manual' });
  const client = leavingClient(h, 'leave-mid-stream', STREAM_BODY);
  const upstream: ManualResponse = await h.fake.nextManual();
  upstream.writeHead(200, { 'content-type': 'text/event-stream' });
  const first = ': OPENROUTER PROCESSING\n\n' + chunkEvent('Hello');
  await upstream.write(first);
  assert.deepEqual(await client.waitForBytes(Buffer.byteLength(first)), Buffer.from(first));

  client.leave();

  assert.equal(await upstream.request.outcome, 'aborted');
  await assertLeftForGood(h, 'leave-mid-stream', '200', 0);
  const line = await requestLine(h, 'leave-mid-stream');
  assert.equal(line.bytes_out, Buffer.byteLength(first));
  assert.equal(line.stream_error, undefined);
});

test('12. a client that leaves while the proxy waits to retry: the wait ends, no second attempt, 499', EVENT_TEST, async (t) => {
  // A 50 s Retry-After (within the cap and the budget): the proxy is certainly still waiting when the client leaves.
  const h = await harness(t, { RETRY_MAX_ATTEMPTS: '3', RETRY_BUDGET_MS: '120000' });
  h.fake.enqueue({ type: 'status', status: 429, headers: { 'retry-after-ms': '50000' } });
  const client = leavingClient(h, 'leave-while-waiting', CHAT_BODY);
  await retryWaiting(h.lifecycle);

  client.leave();

  await assertLeftForGood(h, 'leave-while-waiting', '429', 1);
});

// ---------------------------------------------------------------------------------------------
// 13-14: protocol and restarts

test('13. Expect: 100-continue: the client gets its 100, then a 200; upstream gets the body and no expect header', EVENT_TEST, async (t) => {
  const h = await harness(t);
  const body = Buffer.from(JSON.stringify({ ...CHAT_BODY, messages: [{ role: 'user', content: 'Continue, please' }] }));
  const req = httpRequest(`${h.url}/v1/chat/completions`, {
    method: 'POST', agent: false,
    headers: { 'content-type': 'application/json', 'content-length': String(body.length), expect: '100-continue', 'x-request-id': 'expect-continue' },
  });
  const response = new Promise<{ status: number; body: Buffer }>((resolve, reject) => {
    req.once('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.once('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
      res.once('error', reject);
    });
    req.once('error', reject);
  });
  req.flushHeaders();
  // The body goes only once the server asked for it.
  await withTimeout(once(req, 'continue'), '100 Continue');
  assert.equal(h.fake.received.length, 0);
  req.end(body);

  const res = await response;

  assert.equal(res.status, 200);
  assert.equal((JSON.parse(res.body.toString('utf8')) as { choices: { message: { content: string } }[] }).choices[0]?.message.content, h.fake.options.content);
  assert.equal(h.fake.received.length, 1);
  const rec = h.fake.received[0]!;
  assert.ok(rec.body.equals(body), 'upstream received the body as the client sent it');
  assert.equal(rec.headers.expect, undefined);
  const line = await requestLine(h, 'expect-continue');
  assert.equal(line.status, 200);
  assert.equal(line.bytes_in, body.length);
});

test('14. the upstream restarts on the same port: 502 while it is down, 200 again once it is back', EVENT_TEST, async (t) => {
  let fake = new FakeOpenRouter();
  await fake.listen(0);
  const port = fake.port;
  t.after(() => fake.close());
  const h = await harness(t, { OPENROUTER_BASE_URL: fake.baseUrl, RETRY_MAX_ATTEMPTS: '1' });

  for (const id of ['before-1', 'before-2']) assert.equal((await chat(h, id)).status, 200);
  assert.equal(fake.received.length, 2);

  await fake.close();
  const down = await chat(h, 'while-down');
  assertEnvelope(down, 502, 'upstream_unreachable', 'server_error');

  const first = fake;
  fake = new FakeOpenRouter();
  await fake.listen(port);
  for (const id of ['after-1', 'after-2']) {
    const res = await chat(h, id);
    assert.equal(res.status, 200);
    assert.equal(jsonOf<{ choices: { message: { content: string } }[] }>(res).choices[0]?.message.content, fake.options.content);
  }
  assert.equal(first.received.length, 2);
  assert.equal(fake.received.length, 2);
  assert.equal(h.fake.received.length, 0);
  await requestLine(h, 'after-2');
  await assertMetrics(h, {
    'signalbox_requests_total': 5,
    'signalbox_requests_total{status="200"}': 4,
    'signalbox_requests_total{status="502"}': 1,
    'signalbox_upstream_requests_total': 5,
    'signalbox_upstream_requests_total{status="200"}': 4,
    'signalbox_upstream_requests_total{status="upstream_unreachable"}': 1,
  });
});
