import assert from 'node:assert/strict';
import type { IncomingMessage, Server } from 'node:http';
import { connect, type Socket } from 'node:net';
import { test, type TestContext } from 'node:test';
import { FakeOpenRouter, type Fault, type ManualResponse } from '../../src/dev/fake-openrouter.js';
import { gracefulShutdown } from '../../src/server/shutdown.js';
import { CHAT_BODY, startHarness } from '../support/harness.js';
import { startMain } from '../support/main-process.js';
import { parseResponses, type ClientResponse } from '../support/raw-http.js';
import { withTimeout } from '../support/timeout.js';

/**
 * Graceful shutdown with STREAMS streams open at once: the half that the upstream finishes during
 * the grace period reach their clients untouched, the other half end with the `shutting_down`
 * error event when it elapses, in process (gracefulShutdown) and in the real process (SIGTERM).
 * Which streams finish is chosen by the test (even indices), never left to timing.
 */
const STREAMS = 50;
/** Generous: finishing the chosen streams must never race the grace period on a loaded machine. */
const GRACE_MS = 3000;
const TEST_OPTIONS = { timeout: 30_000 };

const SHUTTING_DOWN = {
  error: { message: 'Signalbox is shutting down; retry on another instance', type: 'server_error', code: 'shutting_down' },
};

/** One SSE data event in OpenRouter's chunk shape; `i` makes every stream's bytes its own. */
function chunkEvent(i: number, content: string): string {
  return `data: ${JSON.stringify({
    id: `gen-load-${i}`, object: 'chat.completion.chunk', created: 1_700_000_000, model: CHAT_BODY.model,
    choices: [{ index: 0, delta: { role: 'assistant', content }, finish_reason: null }],
  })}\n\n`;
}

const firstEvents = (i: number): string[] => [': OPENROUTER PROCESSING\n\n', chunkEvent(i, `Stream ${i} says`)];
const lastEvents = (i: number): string[] => [chunkEvent(i, ' goodbye.'), 'data: [DONE]\n\n'];

/** Stream `i`'s chat request as raw HTTP/1.1 (keep-alive, HTTP/1.1's default); its x-request-id says which stream it is. */
function chatRequest(id: string, i: number): string {
  const body = JSON.stringify({ ...CHAT_BODY, stream: true, messages: [{ role: 'user', content: `stream ${i}` }] });
  return `POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\nx-request-id: ${id}\r\n`
    + `content-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
}

/** Every byte a raw client socket receives. */
interface SocketReader {
  /** Resolves once the bytes received so far contain `text`. */
  waitFor(text: string): Promise<void>;
  /** Resolves with all the bytes once the server has closed the connection. */
  readonly bytes: Promise<Buffer>;
}

function readSocket(socket: Socket): SocketReader {
  const chunks: Buffer[] = [];
  let waiters: { text: string; resolve: () => void }[] = [];
  const seen = (text: string): boolean => Buffer.concat(chunks).includes(text);
  socket.on('data', (chunk: Buffer) => {
    chunks.push(chunk);
    const ready = waiters.filter((w) => seen(w.text));
    waiters = waiters.filter((w) => !ready.includes(w));
    for (const w of ready) w.resolve();
  });
  const bytes = new Promise<Buffer>((resolve, reject) => {
    socket.once('error', reject);
    socket.once('close', () => resolve(Buffer.concat(chunks)));
  });
  bytes.catch(() => {});
  return {
    bytes,
    waitFor(text) {
      if (seen(text)) return Promise.resolve();
      return withTimeout(new Promise((resolve) => waiters.push({ text, resolve })), JSON.stringify(text));
    },
  };
}


/** A stream in flight: the client has received its head and first events. */
interface OpenStream {
  readonly index: number;
  readonly socket: Socket;
  readonly client: SocketReader;
  readonly upstream: ManualResponse;
  /** What the client has been sent so far. */
  readonly first: Buffer;
}

/** Opens `count` streaming requests to `origin`, each on a raw keep-alive socket of its own, with a manual upstream answer. */
async function openStreams(t: TestContext, fake: FakeOpenRouter, origin: string, count: number): Promise<OpenStream[]> {
  fake.enqueue(...Array.from({ length: count }, (): Fault => ({ type: 'manual' })));
  const port = Number(new URL(origin).port);
  const clients = Array.from({ length: count }, (_, i) => {
    const socket = connect(port, '127.0.0.1');
    t.after(() => socket.destroy());
    const client = readSocket(socket);
    socket.write(chatRequest(`stream-${i}`, i));
    return { socket, client };
  });
  // Upstream requests arrive in any order: the forwarded x-request-id says whose each one is.
  const upstreams = new Map<string, ManualResponse>();
  for (let n = 0; n < count; n++) {
    const upstream = await fake.nextManual();
    upstreams.set(String(upstream.request.headers['x-request-id']), upstream);
  }
  return Promise.all(clients.map(async ({ socket, client }, index) => {
    const upstream = upstreams.get(`stream-${index}`);
    assert.ok(upstream, `no upstream request for stream ${index}`);
    upstream.writeHead(200, { 'content-type': 'text/event-stream' });
    const events = firstEvents(index);
    for (const event of events) await upstream.write(event);
    await client.waitFor(events[events.length - 1]!);
    return { index, socket, client, upstream, first: Buffer.from(events.join('')) };
  }));
}

async function finishUpstream(stream: OpenStream): Promise<void> {
  for (const event of lastEvents(stream.index)) await stream.upstream.write(event);
  await stream.upstream.end();
}

/** Which streams the upstream finishes during the grace period, and which it leaves open. */
function split(streams: OpenStream[]): { finished: OpenStream[]; open: OpenStream[] } {
  return { finished: streams.filter((s) => s.index % 2 === 0), open: streams.filter((s) => s.index % 2 === 1) };
}

/** A finished stream's response: 200, and exactly the bytes the upstream wrote. */
function assertUntouched(stream: OpenStream, res: ClientResponse | undefined): void {
  assert.equal(res?.status, 200, `stream ${stream.index}`);
  assert.equal(res.headers['content-type'], 'text/event-stream');
  const whole = Buffer.from([...firstEvents(stream.index), ...lastEvents(stream.index)].join(''));
  assert.deepEqual(Buffer.concat(stream.upstream.request.sent), whole);
  assert.equal(res.body.toString('utf8'), whole.toString('utf8'), `stream ${stream.index} reached its client untouched`);
}

interface SseError {
  error: { code: string; message: string };
  model: string;
  choices: { finish_reason: string }[];
}

/**
 * An open stream: its client got one response, 200, its first events, then exactly one final
 * shutting_down error event; its upstream request was aborted.
 */
async function assertEndedByShutdown(stream: OpenStream): Promise<void> {
  const [res, ...more] = parseResponses(await stream.client.bytes);
  assert.equal(more.length, 0);
  assert.equal(await stream.upstream.request.outcome, 'aborted', `stream ${stream.index}'s upstream request was aborted`);
  assert.equal(res?.status, 200, `stream ${stream.index}`);
  assert.equal(res.body.subarray(0, stream.first.length).toString('utf8'), stream.first.toString('utf8'));
  const rest = res.body.subarray(stream.first.length).toString('utf8');
  assert.match(rest, /^data: [^\n]*\n\n$/, `stream ${stream.index} ends with one error event: ${rest}`);
  const event = JSON.parse(rest.slice('data: '.length)) as SseError;
  assert.deepEqual(event.error, { code: 'shutting_down', message: SHUTTING_DOWN.error.message });
  assert.equal(event.choices[0]?.finish_reason, 'error');
  assert.equal(event.model, CHAT_BODY.model);
}

/** Resolves once `server` has received a request with each of these x-request-ids. */
function requestsSeen(server: Server, ids: readonly string[]): Promise<void> {
  const waiting = new Set(ids);
  return new Promise((resolve) => {
    const onRequest = (req: IncomingMessage): void => {
      waiting.delete(String(req.headers['x-request-id']));
      if (waiting.size === 0) {
        server.off('request', onRequest);
        resolve();
      }
    };
    server.on('request', onRequest);
  });
}

test(`gracefulShutdown with ${STREAMS} open streams: those that finish in the grace period are untouched, the rest end with shutting_down`, TEST_OPTIONS, async (t) => {
  const h = await startHarness({ env: { OPENROUTER_API_KEY: 'sk-or-server' } });
  t.after(() => h.close());
  const streams = await openStreams(t, h.fake, h.url, STREAMS);
  assert.equal(h.lifecycle.inflightCount, STREAMS);
  const { finished, open } = split(streams);

  const shutdown = gracefulShutdown(h.app, h.lifecycle, GRACE_MS);
  // On the kept-alive connection of every stream that will finish, the next request arrives while draining.
  const drainIds = finished.map((s) => `drain-${s.index}`);
  const seen = requestsSeen(h.app.server, drainIds);
  for (const s of finished) s.socket.write(chatRequest(`drain-${s.index}`, s.index));
  await seen;
  await Promise.all(finished.map(finishUpstream));

  assert.deepEqual(await shutdown, { terminated: open.length });

  for (const s of finished) {
    const [stream, refused, ...more] = parseResponses(await s.client.bytes);
    assertUntouched(s, stream);
    assert.equal(refused?.status, 503, `drain-${s.index}`);
    assert.equal(refused.headers.connection, 'close');
    assert.deepEqual(JSON.parse(refused.body.toString('utf8')), SHUTTING_DOWN);
    assert.equal(more.length, 0);
    assert.equal(await s.upstream.request.outcome, 'complete');
  }
  for (const s of open) await assertEndedByShutdown(s);
  assert.equal(h.fake.received.length, STREAMS, 'no request refused while draining reached upstream');
  const line = await h.logs.requestLine(drainIds[0]!);
  assert.equal(line.status, 503);
  assert.equal(line.error_code, 'shutting_down');
});

// ---- The real process: dist/src/main.js stopped with SIGTERM ----

test(`SIGTERM with ${STREAMS} open streams: the process finishes half untouched, ends the rest with shutting_down, and exits 0`, TEST_OPTIONS, async (t) => {
  const fake = new FakeOpenRouter();
  await fake.listen();
  t.after(() => fake.close());
  const main = await startMain(t, fake.baseUrl, { SHUTDOWN_GRACE_MS: String(GRACE_MS) });
  const streams = await openStreams(t, fake, main.origin, STREAMS);
  const { finished, open } = split(streams);

  main.child.kill('SIGTERM');
  const shuttingDown = await main.waitForLog((r) => r.msg === 'shutting down');
  assert.equal(shuttingDown.signal, 'SIGTERM');
  assert.equal(shuttingDown.inflight, STREAMS);
  await Promise.all(finished.map(finishUpstream));

  assert.deepEqual(await main.exit, { code: 0, signal: null });
  assert.equal((await main.waitForLog((r) => r.msg === 'stopped')).terminated, open.length);
  for (const s of finished) {
    const [stream, ...more] = parseResponses(await s.client.bytes);
    assertUntouched(s, stream);
    assert.equal(more.length, 0);
    assert.equal(await s.upstream.request.outcome, 'complete');
  }
  for (const s of open) await assertEndedByShutdown(s);
});
