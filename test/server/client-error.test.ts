import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { test, type TestContext } from 'node:test';
import { startHarness, type Harness } from '../support/harness.js';
import { parseResponses, type ClientResponse } from '../support/raw-http.js';
import { withTimeout } from '../support/timeout.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

async function harness(t: TestContext, env: Record<string, string> = {}): Promise<Harness> {
  const h = await startHarness({ env });
  t.after(() => h.close());
  return h;
}

/** Writes `raw` on a fresh connection and reads everything until the server closes it. */
async function exchangeRaw(h: Harness, raw: string): Promise<ClientResponse> {
  const { port } = new URL(h.url);
  const socket = connect(Number(port), '127.0.0.1');
  const chunks: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  const closed = new Promise<void>((resolve, reject) => {
    socket.once('close', () => resolve());
    socket.once('error', reject);
  });
  socket.write(raw);
  try {
    await withTimeout(closed, 'the server to close the connection');
  } finally {
    socket.destroy();
  }
  const responses = parseResponses(Buffer.concat(chunks));
  assert.equal(responses.length, 1, 'one response');
  return responses[0]!;
}

function assertEnvelope(res: ClientResponse, status: number, code: string): void {
  assert.equal(res.status, status, res.body.toString());
  assert.match(String(res.headers['content-type']), /^application\/json/);
  assert.match(String(res.headers['x-request-id']), UUID);
  assert.equal(res.headers['x-should-retry'], 'false');
  const body = JSON.parse(res.body.toString()) as { error: { code: string; type: string; message: string } };
  assert.equal(body.error.code, code);
  assert.equal(body.error.type, 'invalid_request_error');
  assert.equal(typeof body.error.message, 'string');
}

async function requestsCounted(h: Harness, endpoint: string, status: number): Promise<number> {
  const text = await (await fetch(`${h.url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith('signalbox_requests_total{')
    && l.includes(`endpoint="${endpoint}"`) && l.includes('rule="unrouted"') && l.includes(`status="${status}"`));
  return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(' ') + 1));
}

/** The refusal has its request line in the log and is counted as an unrouted response to /v1. */
async function assertLoggedAndCounted(h: Harness, reqId: string, status: number, code: string): Promise<void> {
  const line = await h.logs.requestLine(reqId);
  assert.equal(line.status, status);
  assert.equal(line.error_code, code);
  assert.equal(await requestsCounted(h, 'other', status), 1);
}

test('a malformed request line gets 400 bad_request in the envelope, logged and counted', async (t) => {
  const h = await harness(t);
  const res = await exchangeRaw(h, 'GARBAGE\r\n\r\n');
  assertEnvelope(res, 400, 'bad_request');
  assert.equal(res.headers.connection, 'close');
  await assertLoggedAndCounted(h, String(res.headers['x-request-id']), 400, 'bad_request');
});

test('headers over MAX_HEADER_BYTES get 431 headers_too_large in the envelope, logged and counted', async (t) => {
  const h = await harness(t, { MAX_HEADER_BYTES: '2048' });
  const res = await exchangeRaw(h, `GET /v1/models HTTP/1.1\r\nhost: x\r\nx-big: ${'a'.repeat(4096)}\r\n\r\n`);
  assertEnvelope(res, 431, 'headers_too_large');
  assert.match(JSON.parse(res.body.toString()).error.message, /2048 bytes/);
  await assertLoggedAndCounted(h, String(res.headers['x-request-id']), 431, 'headers_too_large');
});

test('headers just under MAX_HEADER_BYTES are served', async (t) => {
  const h = await harness(t, { MAX_HEADER_BYTES: '2048' });
  const res = await fetch(`${h.url}/healthz`, { headers: { 'x-big': 'a'.repeat(1500) } });
  assert.equal(res.status, 200);
});

test('a path that is not valid percent-encoding gets 400 invalid_url in the envelope (FST_ERR_BAD_URL), logged and counted', async (t) => {
  const h = await harness(t);
  const res = await exchangeRaw(h, 'GET /v1/%% HTTP/1.1\r\nhost: x\r\nx-request-id: bad-url-1\r\nconnection: close\r\n\r\n');
  assert.equal(res.status, 400, res.body.toString());
  assert.equal(res.headers['x-request-id'], 'bad-url-1');
  assert.equal(res.headers['x-should-retry'], 'false');
  assert.ok(res.headers['x-signalbox-overhead-ms'] !== undefined);
  const body = JSON.parse(res.body.toString()) as { error: { code: string; type: string } };
  assert.deepEqual([body.error.code, body.error.type], ['invalid_url', 'invalid_request_error']);
  await assertLoggedAndCounted(h, 'bad-url-1', 400, 'invalid_url');
});
