import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { test, type TestContext } from 'node:test';
import { startHarness, type Harness } from '../support/harness.js';
import { parseResponses } from '../support/raw-http.js';

/** Waits on events only; the timeout turns a connection that is never closed into a failure. */
const EVENT_TEST = { timeout: 20_000 };
const REQUEST_TIMEOUT_MS = 1000;

async function harness(t: TestContext, env: Record<string, string> = {}): Promise<Harness> {
  const h = await startHarness({ env: { OPENROUTER_API_KEY: 'sk-or-request-timeout', REQUEST_TIMEOUT_MS: String(REQUEST_TIMEOUT_MS), ...env } });
  t.after(() => h.close());
  return h;
}

/** A raw connection to Signalbox and every byte it receives until the proxy ends or resets it. */
async function connect(t: TestContext, h: Harness): Promise<{ socket: net.Socket; closed: Promise<Buffer> }> {
  // Half-open: a client that goes on sending after the proxy's FIN (lingering close) as a hostile one would.
  const socket = net.connect({ port: Number(new URL(h.url).port), host: '127.0.0.1', allowHalfOpen: true });
  t.after(() => socket.destroy());
  const chunks: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  // The proxy is done with the connection at its FIN ('end') or reset ('error').
  const closed = new Promise<Buffer>((resolve) => {
    const done = (): void => resolve(Buffer.concat(chunks));
    socket.once('end', done);
    socket.once('close', done);
    socket.on('error', done);
  });
  await once(socket, 'connect');
  return { socket, closed };
}

const HEAD = (extra = ''): string =>
  `POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n${extra}\r\n`;

test('a body that does not arrive within REQUEST_TIMEOUT_MS gets a 408 in the OpenAI envelope and its connection closed', EVENT_TEST, async (t) => {
  const h = await harness(t);
  const { socket, closed } = await connect(t, h);
  const started = Date.now();
  socket.write(`${HEAD()}{"model":"openai/gpt-4o-mini",`);

  const [res, ...more] = parseResponses(await closed);
  assert.equal(more.length, 0);
  assert.equal(res!.status, 408);
  assert.equal(res!.headers.connection, 'close');
  assert.equal(res!.headers['x-should-retry'], 'false');
  assert.deepEqual(JSON.parse(res!.body.toString('utf8')), {
    error: { message: `Request timeout: the request was not received within ${REQUEST_TIMEOUT_MS} ms`, type: 'timeout_error', code: 'request_timeout' },
  });
  assert.ok(Date.now() - started >= REQUEST_TIMEOUT_MS, 'not before the timeout');
  assert.equal(h.fake.received.length, 0);
  const line = await h.logs.waitFor((r) => r.msg === 'request' && r.error_code === 'request_timeout');
  assert.equal(line.status, 408);
});

test('a client still trickling its body after its 401 is cut at REQUEST_TIMEOUT_MS, with nothing written after the 401', EVENT_TEST, async (t) => {
  // Lingering close alone would keep reading a steady trickle for a minute.
  const h = await harness(t, { SIGNALBOX_API_KEYS: 'sk-client-key', LINGERING_CLOSE_MAX_MS: '60000', LINGERING_CLOSE_IDLE_MS: '60000' });
  const { socket, closed } = await connect(t, h);
  socket.write(`${HEAD()}{`);
  // The 401's FIN comes first: the connection is over for the proxy only when it is destroyed.
  const destroyed = new Promise<void>((resolve) => {
    socket.on('error', () => resolve());
    socket.once('close', () => resolve());
  });
  const trickle = setInterval(() => socket.write(' '), 50);
  t.after(() => clearInterval(trickle));

  const [res, ...more] = parseResponses(await closed);
  await destroyed;
  clearInterval(trickle);
  assert.equal(more.length, 0, 'no 408 after the 401');
  assert.equal(res!.status, 401);
  await h.logs.waitFor((r) => r.code === 'request_timeout' && r.msg === 'request timeout after the answer: connection closed');
});

test('a response that outlasts REQUEST_TIMEOUT_MS is not cut: the timeout ends when the request has arrived', EVENT_TEST, async (t) => {
  const h = await harness(t);
  h.fake.enqueue({ type: 'slow-stream', ms: 200 });
  const { socket, closed } = await connect(t, h);
  const body = JSON.stringify({ model: 'openai/gpt-4o-mini', stream: true, messages: [{ role: 'user', content: 'Say hello in many words' }] });
  const started = Date.now();
  socket.write(`POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\nconnection: close\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);

  const [res] = parseResponses(await closed);
  assert.equal(res!.status, 200);
  assert.ok(res!.body.toString('utf8').endsWith('data: [DONE]\n\n'));
  assert.ok(Date.now() - started > REQUEST_TIMEOUT_MS * 1.25, 'the stream lasted longer than the request timeout');
});
