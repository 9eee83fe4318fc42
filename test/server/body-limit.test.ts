/**
 * Bodies over BODY_LIMIT_BYTES: the 413 names the configured limit, and the client reads it
 * whatever the size of what it was still uploading (lingering close: the rest of the body is
 * read and discarded, bounded in bytes and time, before the connection closes).
 *
 * Determinism: every wait is on an event (a response, a socket's close, a log line) under the
 * test's timeout; the lingering bounds are set small where a test needs them to fire.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { Agent, request as httpRequest, type OutgoingHttpHeaders } from 'node:http';
import { connect } from 'node:net';
import { test, type TestContext } from 'node:test';
import OpenAI from 'openai';
import { CHAT_BODY, startHarness, type Harness, type LogRecord } from '../support/harness.js';
import { withTimeout } from '../support/timeout.js';

const EVENT_TEST = { timeout: 60_000 };
const MiB = 1024 * 1024;
const DEFAULT_LIMIT = 20 * MiB;

async function harness(t: TestContext, env: Record<string, string> = {}): Promise<Harness> {
  const h = await startHarness({ env: { OPENROUTER_API_KEY: 'sk-or-body-limit', ...env } });
  t.after(() => h.close());
  return h;
}

/** A chat request of exactly `bytes` bytes of valid JSON (one long user message). */
function chatBodyOfSize(bytes: number): Buffer {
  const empty = JSON.stringify({ ...CHAT_BODY, messages: [{ role: 'user', content: '' }] });
  return Buffer.from(JSON.stringify({ ...CHAT_BODY, messages: [{ role: 'user', content: 'x'.repeat(bytes - empty.length) }] }));
}

interface Outcome {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: string;
  /** Errors the request reported (EPIPE, ECONNRESET...), before or after the response. */
  readonly errors: string[];
  /** The server said 100 Continue. */
  readonly continued: boolean;
}

/**
 * One request with node:http; resolves once the request is closed, with the response (status 0
 * when none arrived) and every error the client saw. `body` undefined: the headers only, as a
 * client waiting for 100 Continue that never comes; the request is then destroyed after the response.
 */
function send(h: Harness, path: string, headers: OutgoingHttpHeaders, body: Buffer | string[] | undefined, agent: Agent | false): Promise<Outcome> {
  const { hostname, port } = new URL(h.url);
  return new Promise((resolve) => {
    const errors: string[] = [];
    let continued = false;
    let response: Omit<Outcome, 'errors' | 'continued'> = { status: 0, headers: {}, body: '' };
    const req = httpRequest({ hostname, port, path, method: 'POST', headers, agent });
    req.on('error', (err: NodeJS.ErrnoException) => errors.push(err.code ?? err.message));
    req.once('continue', () => {
      continued = true;
    });
    req.once('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', (err: NodeJS.ErrnoException) => errors.push(`response: ${err.code ?? err.message}`));
      res.once('end', () => {
        response = { status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') };
        if (body === undefined) req.destroy();
      });
    });
    req.once('close', () => resolve({ ...response, errors, continued }));
    if (body === undefined) req.flushHeaders();
    else if (Buffer.isBuffer(body)) req.end(body);
    else {
      // Chunked: no content-length, the limit is found while reading.
      for (const part of body) req.write(part);
      req.end();
    }
  });
}

function assertBodyTooLarge(outcome: Outcome, limit: number, requestId?: string): void {
  assert.deepEqual(outcome.errors, [], 'the client saw no connection error');
  assert.equal(outcome.status, 413, outcome.body);
  assert.match(String(outcome.headers['content-type']), /^application\/json/);
  assert.deepEqual(JSON.parse(outcome.body), {
    error: { message: `Request body is larger than the limit of ${limit} bytes`, type: 'invalid_request_error', code: 'body_too_large' },
  });
  assert.equal(outcome.headers.connection, 'close');
  if (requestId !== undefined) assert.equal(outcome.headers['x-request-id'], requestId);
  else assert.ok(outcome.headers['x-request-id']);
}

test('the 413 names the configured limit, in the OpenAI envelope, on the chat route and the pass-through, declared or chunked', EVENT_TEST, async (t) => {
  const limit = 4096;
  const h = await harness(t, { BODY_LIMIT_BYTES: String(limit) });
  const body = chatBodyOfSize(limit + 1);
  const json = { 'content-type': 'application/json' };
  for (const path of ['/v1/chat/completions', '/v1/embeddings']) {
    const id = `limit${path.replaceAll('/', '-')}`;
    assertBodyTooLarge(await send(h, path, { ...json, 'x-request-id': id }, body, false), limit, id);
    const chunks = [body.subarray(0, 3000).toString(), body.subarray(3000).toString()];
    assertBodyTooLarge(await send(h, path, { ...json, 'x-request-id': `${id}-chunked` }, chunks, false), limit, `${id}-chunked`);
    const line = await h.logs.requestLine(id);
    assert.equal(line.status, 413);
    assert.equal(line.error_code, 'body_too_large');
  }
  assert.equal(h.fake.received.length, 0);
});

test('22 and 30 MiB bodies over the 20 MiB default, 10 times each with node:http: every client reads its 413', EVENT_TEST, async (t) => {
  const h = await harness(t);
  assert.equal(h.config.server.body_limit_bytes, DEFAULT_LIMIT);
  // Half on connections the client asks to close, half on keep-alive ones: Node closes both after a 413.
  const keepAlive = new Agent({ keepAlive: true });
  t.after(() => keepAlive.destroy());
  for (const size of [22 * MiB, 30 * MiB]) {
    const body = chatBodyOfSize(size);
    const headers = { 'content-type': 'application/json', 'content-length': String(size) };
    for (let i = 0; i < 10; i++) {
      const outcome = await send(h, '/v1/chat/completions', headers, body, i % 2 === 0 ? false : keepAlive);
      assertBodyTooLarge(outcome, DEFAULT_LIMIT);
    }
  }
  assert.equal(h.fake.received.length, 0);
});

test('Expect: 100-continue with a Content-Length over the limit gets the 413 and no 100 Continue', EVENT_TEST, async (t) => {
  const h = await harness(t);
  const headers = {
    'content-type': 'application/json', 'content-length': String(DEFAULT_LIMIT + 1), expect: '100-continue', 'x-request-id': 'expect-too-large',
  };
  const outcome = await send(h, '/v1/chat/completions', headers, undefined, false);
  assert.equal(outcome.continued, false, 'the server must not invite a body it refuses');
  assertBodyTooLarge(outcome, DEFAULT_LIMIT, 'expect-too-large');
  assert.equal((await h.logs.requestLine('expect-too-large')).status, 413);
});

test('the official OpenAI SDK gets an APIError with status 413 for a message over the limit, not a connection error', EVENT_TEST, async (t) => {
  const h = await harness(t);
  const client = new OpenAI({ baseURL: `${h.url}/v1`, apiKey: 'sk-client', maxRetries: 0 });
  for (let i = 0; i < 3; i++) {
    const err = await client.chat.completions
      .create({ model: CHAT_BODY.model, messages: [{ role: 'user', content: 'x'.repeat(25 * MiB) }] })
      .then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof OpenAI.APIError, `an APIError, got ${String(err)}`);
    assert.equal(err.status, 413, String(err));
    assert.match(err.message, new RegExp(`limit of ${DEFAULT_LIMIT} bytes`));
  }
});

// ---------------------------------------------------------------------------------------------
// The bounds of lingering close: a client that keeps sending, or stops, cannot hold the connection.

interface Lingered {
  /** Everything the client received before the server closed. */
  readonly received: string;
  /** The server's debug line about the close. */
  readonly line: LogRecord;
}

/**
 * A raw client that declares a body far over the limit, then sends `chunk` every 10 ms or as fast
 * as the socket takes it (nothing when undefined) until the server has closed the connection.
 */
async function lingerUntilClosed(h: Harness, id: string, chunk: Buffer | undefined, pace: 'interval' | 'as-fast-as-possible'): Promise<Lingered> {
  const { hostname, port } = new URL(h.url);
  // Half-open allowed: the client keeps sending after the server's FIN, as an uploader that does not read would.
  const socket = connect({ port: Number(port), host: hostname, allowHalfOpen: true });
  await withTimeout(once(socket, 'connect'), 'the connection');
  let received = '';
  socket.on('data', (d: Buffer) => (received += d.toString('latin1')));
  // The server cuts the connection on purpose; the resets that follow are expected.
  socket.on('error', () => undefined);
  // The server's FIN comes after its response: the client has read the 413 once it sees it.
  const responded = withTimeout(new Promise((resolve) => socket.once('end', resolve)), "the server's FIN");
  socket.write(
    `POST /v1/chat/completions HTTP/1.1\r\nhost: ${hostname}\r\ncontent-type: application/json\r\n` +
    `content-length: ${1024 ** 3}\r\nx-request-id: ${id}\r\n\r\n`,
  );
  let timer: NodeJS.Timeout | undefined;
  if (chunk && pace === 'interval') {
    timer = setInterval(() => socket.write(chunk), 10);
  } else if (chunk) {
    const pump = (): void => {
      while (!socket.destroyed && socket.write(chunk));
    };
    socket.on('drain', pump);
    pump();
  }
  try {
    // A half-open client sees no sign of the server's close until it writes again: the server's
    // line is the event to wait for.
    const [line] = await Promise.all([h.logs.waitFor((r) => r.reqId === id && typeof r.outcome === 'string'), responded]);
    return { received, line };
  } finally {
    clearInterval(timer);
    socket.destroy();
  }
}

test('lingering close: a client that keeps sending slowly is closed after LINGERING_CLOSE_MAX_MS', EVENT_TEST, async (t) => {
  const h = await harness(t, { BODY_LIMIT_BYTES: '1024', LINGERING_CLOSE_MAX_MS: '200', LINGERING_CLOSE_IDLE_MS: '600000' });
  const { received, line } = await lingerUntilClosed(h, 'linger-time', Buffer.alloc(100, 'x'), 'interval');
  assert.match(received, /^HTTP\/1\.1 413 /);
  assert.equal(line.outcome, 'max_time');
  assert.ok((line.discarded_bytes as number) > 0);
});

test('lingering close: a client that keeps sending fast is cut after LINGERING_CLOSE_MAX_BYTES', EVENT_TEST, async (t) => {
  const h = await harness(t, { BODY_LIMIT_BYTES: '1024', LINGERING_CLOSE_MAX_BYTES: String(MiB), LINGERING_CLOSE_MAX_MS: '600000', LINGERING_CLOSE_IDLE_MS: '600000' });
  const { received, line } = await lingerUntilClosed(h, 'linger-bytes', Buffer.alloc(64 * 1024, 'x'), 'as-fast-as-possible');
  assert.match(received, /^HTTP\/1\.1 413 /);
  assert.equal(line.outcome, 'max_bytes');
  assert.ok((line.discarded_bytes as number) > MiB);
});

test('lingering close: a client that sends nothing more is closed after LINGERING_CLOSE_IDLE_MS', EVENT_TEST, async (t) => {
  const h = await harness(t, { BODY_LIMIT_BYTES: '1024', LINGERING_CLOSE_MAX_MS: '600000', LINGERING_CLOSE_IDLE_MS: '100' });
  const { received, line } = await lingerUntilClosed(h, 'linger-idle', undefined, 'interval');
  assert.match(received, /^HTTP\/1\.1 413 /);
  assert.equal(line.outcome, 'idle');
  assert.equal(line.discarded_bytes, 0);
});
