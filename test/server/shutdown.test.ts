import assert from 'node:assert/strict';
import { Agent, request as httpRequest } from 'node:http';
import { connect, type Socket } from 'node:net';
import { test, type TestContext } from 'node:test';
import { FakeOpenRouter, type ManualResponse } from '../../src/dev/fake-openrouter.js';
import { gracefulShutdown } from '../../src/server/shutdown.js';
import { CHAT_BODY, startHarness, type Harness, type LogRecord } from '../support/harness.js';
import { spawnMain, startMain, tempConfigFile } from '../support/main-process.js';
import { parseResponses, type ClientResponse } from '../support/raw-http.js';
import { withTimeout } from '../support/timeout.js';

const STREAM_BODY = { ...CHAT_BODY, stream: true };


/** One SSE data event in OpenRouter's chunk shape. */
function chunkEvent(content: string): string {
  return `data: ${JSON.stringify({
    id: 'gen-1', object: 'chat.completion.chunk', created: 1_700_000_000, model: CHAT_BODY.model,
    choices: [{ index: 0, delta: { role: 'assistant', content }, finish_reason: null }],
  })}\n\n`;
}

const FIRST_EVENTS = [': OPENROUTER PROCESSING\n\n', chunkEvent('Hello')];
const LAST_EVENTS = [chunkEvent(' world'), 'data: [DONE]\n\n'];

/** Starts the manual upstream response: SSE head and the first events, as OpenRouter would. */
async function startUpstreamStream(upstream: ManualResponse): Promise<Buffer> {
  upstream.writeHead(200, { 'content-type': 'text/event-stream' });
  for (const event of FIRST_EVENTS) await upstream.write(event);
  return Buffer.from(FIRST_EVENTS.join(''));
}

async function finishUpstreamStream(upstream: ManualResponse): Promise<void> {
  for (const event of LAST_EVENTS) await upstream.write(event);
  await upstream.end();
}

const WHOLE_STREAM = Buffer.from([...FIRST_EVENTS, ...LAST_EVENTS].join(''));

/** A client request whose body bytes can be watched as they arrive. */
interface WatchedRequest {
  /** Resolves once at least `n` body bytes have arrived. */
  waitForBytes(n: number): Promise<void>;
  /** Resolves when the response has ended (rejects if it was cut). */
  readonly done: Promise<ClientResponse>;
}

/**
 * POSTs a chat request. `agent: false` (the default) asks for `Connection: close`, so that a test
 * about draining does not also depend on how long the client keeps an idle connection.
 */
function postChat(origin: string, body: unknown, agent: Agent | false = false): WatchedRequest {
  const chunks: Buffer[] = [];
  let length = 0;
  const waiters: { n: number; resolve: () => void }[] = [];
  const done = new Promise<ClientResponse>((resolve, reject) => {
    const req = httpRequest(`${origin}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, agent });
    req.on('error', reject);
    req.on('response', (res) => {
      res.on('data', (chunk: Buffer) => {
        chunks.push(chunk);
        length += chunk.length;
        for (const w of waiters.filter((x) => length >= x.n)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve();
        }
      });
      res.on('error', reject);
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.end(JSON.stringify(body));
  });
  done.catch(() => {});
  return {
    done,
    waitForBytes(n) {
      if (length >= n) return Promise.resolve();
      return withTimeout(new Promise((resolve) => waiters.push({ n, resolve })), `${n} response bytes`);
    },
  };
}

/** The data events of an SSE text, parsed. */
function dataEvents(text: string): unknown[] {
  return text.split('\n\n').filter((e) => e.startsWith('data: ') && e !== 'data: [DONE]').map((e) => JSON.parse(e.slice(6)));
}

interface SseError {
  error: { code: string; message: string };
  choices: { finish_reason: string }[];
}

/** Asserts `body` is `prefix` followed by exactly one final Signalbox error event with `code`. */
function assertEndsWithErrorEvent(body: Buffer, prefix: Buffer, code: string): void {
  assert.deepEqual(body.subarray(0, prefix.length), prefix);
  const events = dataEvents(body.subarray(prefix.length).toString('utf8')) as SseError[];
  assert.equal(events.length, 1);
  assert.equal(events[0]?.error.code, code);
  assert.equal(events[0]?.choices[0]?.finish_reason, 'error');
  assert.match(body.toString('utf8'), /\n\n$/);
}

async function harness(t: TestContext): Promise<Harness> {
  const h = await startHarness({ env: { OPENROUTER_API_KEY: 'sk-or-server' } });
  t.after(() => h.close());
  return h;
}

/** A streaming exchange in flight through the harness: the client has the first events. */
async function streamInFlight(
  fake: FakeOpenRouter, origin: string, agent: Agent | false = false,
): Promise<{ client: WatchedRequest; upstream: ManualResponse; first: Buffer }> {
  fake.enqueue({ type: 'manual' });
  const client = postChat(origin, STREAM_BODY, agent);
  const upstream = await fake.nextManual();
  const first = await startUpstreamStream(upstream);
  await client.waitForBytes(first.length);
  return { client, upstream, first };
}

test('graceful shutdown starts draining at once and lets an in-flight stream finish untouched', async (t) => {
  const h = await harness(t);
  const { client, upstream } = await streamInFlight(h.fake, h.url);

  const shutdown = gracefulShutdown(h.app, h.lifecycle, 10_000);
  assert.equal(h.lifecycle.draining, true);
  assert.equal(h.lifecycle.inflightCount, 1);

  await finishUpstreamStream(upstream);
  const res = await client.done;
  assert.equal(res.status, 200);
  assert.deepEqual(res.body, WHOLE_STREAM);
  assert.deepEqual(await shutdown, { terminated: 0 });
  assert.equal(await upstream.request.outcome, 'complete');
});

test('graceful shutdown closes a kept-alive client connection once its stream has finished', { timeout: 20_000 }, async (t) => {
  // A keep-alive client that never closes an idle connection by itself (like an SDK's pool).
  const agent = new Agent({ keepAlive: true });
  t.after(() => agent.destroy());
  const h = await harness(t);
  const { client, upstream } = await streamInFlight(h.fake, h.url, agent);

  const shutdown = gracefulShutdown(h.app, h.lifecycle, 10_000);
  await finishUpstreamStream(upstream);
  assert.deepEqual((await client.done).body, WHOLE_STREAM);

  // Must not wait for the client's idle connection to time out (KEEP_ALIVE_TIMEOUT_MS, 65 s).
  assert.deepEqual(await shutdown, { terminated: 0 });
});


/** Resolves with every byte the socket received, once the server has closed it. */
function readAll(socket: Socket): { bytes: Promise<Buffer>; waitFor(text: string): Promise<void> } {
  const chunks: Buffer[] = [];
  const seen = (text: string): boolean => Buffer.concat(chunks).includes(text);
  let onData = (): void => {};
  socket.on('data', (chunk: Buffer) => {
    chunks.push(chunk);
    onData();
  });
  const bytes = new Promise<Buffer>((resolve, reject) => {
    socket.once('error', reject);
    socket.once('close', () => resolve(Buffer.concat(chunks)));
  });
  return {
    bytes,
    waitFor(text) {
      if (seen(text)) return Promise.resolve();
      return withTimeout(new Promise((resolve) => {
        onData = () => {
          if (seen(text)) resolve();
        };
      }), JSON.stringify(text));
    },
  };
}

function rawRequest(method: string, path: string, headers: Record<string, string>, body = ''): string {
  const lines = [`${method} ${path} HTTP/1.1`, 'host: 127.0.0.1', ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`)];
  if (body) lines.push(`content-length: ${Buffer.byteLength(body)}`);
  return `${lines.join('\r\n')}\r\n\r\n${body}`;
}

test('while draining, a new request on an open keep-alive connection gets 503 shutting_down with connection: close', async (t) => {
  const h = await harness(t);
  h.fake.enqueue({ type: 'manual' });
  const socket = connect(Number(new URL(h.url).port), '127.0.0.1');
  t.after(() => socket.destroy());
  const reader = readAll(socket);
  socket.write(rawRequest('POST', '/v1/chat/completions', { 'content-type': 'application/json' }, JSON.stringify(STREAM_BODY)));
  const upstream = await h.fake.nextManual();
  await startUpstreamStream(upstream);
  await reader.waitFor(FIRST_EVENTS[FIRST_EVENTS.length - 1]!);

  const shutdown = gracefulShutdown(h.app, h.lifecycle, 10_000);
  // The next request on the same connection, sent once draining has started.
  socket.write(rawRequest('GET', '/v1/models', { 'x-request-id': 'drain-503' }));
  await finishUpstreamStream(upstream);

  const [stream, refused, ...more] = parseResponses(await reader.bytes);
  assert.equal(more.length, 0);
  assert.equal(stream?.status, 200);
  assert.deepEqual(stream?.body, WHOLE_STREAM);
  assert.equal(refused?.status, 503);
  assert.equal(refused?.headers.connection, 'close');
  assert.deepEqual(JSON.parse(refused?.body.toString('utf8') ?? ''), {
    error: { message: 'Signalbox is shutting down; retry on another instance', type: 'server_error', code: 'shutting_down' },
  });
  const line = await h.logs.requestLine('drain-503');
  assert.equal(line.status, 503);
  assert.equal(line.error_code, 'shutting_down');
  assert.deepEqual(await shutdown, { terminated: 0 });
  assert.equal(h.fake.received.length, 1, 'the refused request never reached upstream');
});

test('when the grace period elapses, a stream still running ends with a shutting_down SSE error event', async (t) => {
  const h = await harness(t);
  const { client, upstream, first } = await streamInFlight(h.fake, h.url);

  assert.deepEqual(await gracefulShutdown(h.app, h.lifecycle, 100), { terminated: 1 });

  const res = await client.done;
  assert.equal(res.status, 200);
  assertEndsWithErrorEvent(res.body, first, 'shutting_down');
  assert.equal(await upstream.request.outcome, 'aborted');
});

test('when the grace period elapses, a request still waiting for upstream headers gets 503 shutting_down', async (t) => {
  const h = await harness(t);
  h.fake.enqueue({ type: 'hang' });
  const arrived = h.fake.nextRequest();
  const client = postChat(h.url, CHAT_BODY);
  const rec = await arrived;

  assert.deepEqual(await gracefulShutdown(h.app, h.lifecycle, 100), { terminated: 1 });

  const res = await client.done;
  assert.equal(res.status, 503);
  assert.equal(res.headers.connection, 'close');
  assert.deepEqual(JSON.parse(res.body.toString('utf8')), {
    error: { message: 'Signalbox is shutting down; retry on another instance', type: 'server_error', code: 'shutting_down' },
  });
  assert.equal(await rec.outcome, 'aborted');
});

// ---- The real process: dist/src/main.js with signals ----





async function startFake(t: TestContext): Promise<FakeOpenRouter> {
  const fake = new FakeOpenRouter();
  await fake.listen();
  t.after(() => fake.close());
  return fake;
}


test('SIGTERM lets the process finish an in-flight stream untouched, then exit 0', async (t) => {
  const fake = await startFake(t);
  const main = await startMain(t, fake.baseUrl, { SHUTDOWN_GRACE_MS: '5000' });
  const { client, upstream } = await streamInFlight(fake, main.origin);

  main.child.kill('SIGTERM');
  const shuttingDown = await main.waitForLog((r) => r.msg === 'shutting down');
  assert.equal(shuttingDown.signal, 'SIGTERM');
  assert.equal(shuttingDown.inflight, 1);
  await finishUpstreamStream(upstream);

  const res = await client.done;
  assert.equal(res.status, 200);
  assert.deepEqual(res.body, WHOLE_STREAM);
  assert.deepEqual(await main.exit, { code: 0, signal: null });
  assert.equal((await main.waitForLog((r) => r.msg === 'stopped')).terminated, 0);
});

test('SIGTERM with a stream that outlives SHUTDOWN_GRACE_MS ends it with a shutting_down event and exits 0', async (t) => {
  const fake = await startFake(t);
  const main = await startMain(t, fake.baseUrl, { SHUTDOWN_GRACE_MS: '200' });
  const { client, upstream, first } = await streamInFlight(fake, main.origin);

  main.child.kill('SIGTERM');

  const res = await client.done;
  assertEndsWithErrorEvent(res.body, first, 'shutting_down');
  assert.deepEqual(await main.exit, { code: 0, signal: null });
  assert.equal((await main.waitForLog((r) => r.msg === 'stopped')).terminated, 1);
  assert.equal(await upstream.request.outcome, 'aborted');
});

test('an invalid setting makes the process exit 1 with the problem on stderr and no stack trace', async (t) => {
  const main = spawnMain(t, { PORT: 'abc', CONFIG_FILE: tempConfigFile(t) });
  assert.deepEqual(await main.exit, { code: 1, signal: null });
  assert.match(main.stderr(), /PORT \(server\.port\): must be an integer, got "abc"/);
  assert.doesNotMatch(main.stderr(), /\n\s+at /);
});

/** Starts main.js on `host`, stops it with SIGTERM (asserting exit 0), and returns its warn-level lines. */
async function startupWarnings(t: TestContext, host: string): Promise<LogRecord[]> {
  const fake = await startFake(t);
  const main = await startMain(t, fake.baseUrl, { HOST: host });
  main.child.kill('SIGTERM');
  assert.deepEqual(await main.exit, { code: 0, signal: null });
  return main.logs.records.filter((r) => r.level === 40);
}

test('a non-loopback HOST with a server key and no client keys logs a warning at startup', async (t) => {
  const warnings = await startupWarnings(t, '0.0.0.0');
  assert.equal(warnings.length, 1);
  assert.equal(warnings[0]?.host, '0.0.0.0');
  assert.match(String(warnings[0]?.msg), /OPENROUTER_API_KEY is set, client authentication is off.*spends on your key/);
});

test('a loopback HOST logs no key-exposure warning', async (t) => {
  assert.deepEqual(await startupWarnings(t, '127.0.0.1'), []);
});
