import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { test, type TestContext } from 'node:test';
import { FakeOpenRouter } from '../../src/dev/fake-openrouter.js';
import { CHAT_BODY } from '../support/harness.js';
import { startMain } from '../support/main-process.js';
import { parseResponses } from '../support/raw-http.js';

/** Every wait is on an event; this only turns a lost one into a failure instead of a hang. */
const TEST_OPTIONS = { timeout: 30_000 };

async function startFake(t: TestContext): Promise<FakeOpenRouter> {
  const fake = new FakeOpenRouter();
  await fake.listen();
  t.after(() => fake.close());
  return fake;
}

/** A raw connection to `origin`, destroyed after the test; `received()` is every byte read so far. */
async function rawConnection(t: TestContext, origin: string): Promise<{ socket: Socket; received(): Buffer; closed: Promise<void> }> {
  const socket = connect(Number(new URL(origin).port), '127.0.0.1');
  t.after(() => socket.destroy());
  socket.on('error', () => {});
  const chunks: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  const closed = once(socket, 'close').then(() => undefined);
  await once(socket, 'connect');
  return { socket, received: () => Buffer.concat(chunks), closed };
}

const UPLOAD_BODY = JSON.stringify(CHAT_BODY);
/** What an upload in progress has sent of its body. */
const UPLOAD_SENT = 10;

/**
 * The real process with `graceMs`, and a chat request part of whose body it has: the head, then,
 * once 100 Continue says the proxy has the head, the first bytes of the body.
 */
async function uploadInProgress(t: TestContext, graceMs: number, requestId: string) {
  const fake = await startFake(t);
  const main = await startMain(t, fake.baseUrl, { SHUTDOWN_GRACE_MS: String(graceMs) });
  const client = await rawConnection(t, main.origin);
  client.socket.write(
    `POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\nx-request-id: ${requestId}\r\n` +
    `expect: 100-continue\r\ncontent-length: ${Buffer.byteLength(UPLOAD_BODY)}\r\n\r\n`,
  );
  let seen = '';
  while (!seen.includes('100 Continue')) seen += ((await once(client.socket, 'data')) as [Buffer])[0].toString('latin1');
  client.socket.write(UPLOAD_BODY.slice(0, UPLOAD_SENT));
  return { fake, main, client };
}

test('SIGTERM: an upload still in progress when the grace period ends gets 503 shutting_down and a log line (issue 12, defect 13)', TEST_OPTIONS, async (t) => {
  const { fake, main, client } = await uploadInProgress(t, 300, 'slow-upload');

  main.child.kill('SIGTERM');
  await client.closed;

  const raw = client.received();
  const responses = parseResponses(raw.subarray(raw.indexOf('\r\n\r\n') + 4));
  assert.equal(responses.length, 1, `one answer after 100 Continue, got: ${raw.toString('latin1')}`);
  assert.equal(responses[0]!.status, 503);
  assert.equal(responses[0]!.headers.connection, 'close');
  assert.equal((JSON.parse(responses[0]!.body.toString('utf8')) as { error: { code: string } }).error.code, 'shutting_down');
  assert.deepEqual(await main.exit, { code: 0, signal: null });
  const line = await main.logs.requestLine('slow-upload');
  assert.equal(line.status, 503);
  assert.equal(line.error_code, 'shutting_down');
  assert.equal(fake.received.length, 0);
});

test('SIGTERM: an upload in progress has the grace period to finish, and is served (issue 12, defect 13)', TEST_OPTIONS, async (t) => {
  const { main, client } = await uploadInProgress(t, 20_000, 'upload-in-grace');

  main.child.kill('SIGTERM');
  await main.waitForLog((r) => r.msg === 'shutting down');
  // Not end(): Node's server takes a half-closed connection for a client that left.
  client.socket.write(UPLOAD_BODY.slice(UPLOAD_SENT));
  // Answered, the connection is idle and the draining server closes it.
  await client.closed;

  const raw = client.received();
  const [res] = parseResponses(raw.subarray(raw.indexOf('\r\n\r\n') + 4));
  assert.equal(res?.status, 200);
  assert.deepEqual(await main.exit, { code: 0, signal: null });
  assert.equal((await main.logs.requestLine('upload-in-grace')).status, 200);
});

test('SIGTERM: a stream to a client that stopped reading is ended and keeps its log line (issue 12, defect 13)', TEST_OPTIONS, async (t) => {
  const fake = await startFake(t);
  const main = await startMain(t, fake.baseUrl, { SHUTDOWN_GRACE_MS: '300' });
  fake.enqueue({ type: 'manual' });
  const client = await rawConnection(t, main.origin);
  const body = JSON.stringify({ ...CHAT_BODY, stream: true });
  client.socket.write(
    `POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\nx-request-id: not-reading\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
  const upstream = await fake.nextManual();
  upstream.writeHead(200, { 'content-type': 'text/event-stream' });
  // The client reads nothing more: socket buffers fill up and the relay waits for a drain that never comes.
  client.socket.pause();
  // Not awaited: the proxy stops reading the upstream once its client's socket is full, and the
  // stream never ends, so it is still running when the grace period elapses.
  const comment = Buffer.from(`: ${'x'.repeat(64 * 1024 - 5)}\n\n`);
  for (let i = 0; i < 256; i++) void upstream.write(comment).catch(() => {});

  main.child.kill('SIGTERM');

  assert.deepEqual(await main.exit, { code: 0, signal: null });
  const line = await main.logs.requestLine('not-reading');
  assert.equal(line.stream, true);
  assert.equal(line.stream_error, 'shutdown');
  assert.equal((await main.logs.waitFor((r) => r.msg === 'stopped')).terminated, 1);
});
