import assert from 'node:assert/strict';
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { test, type TestContext } from 'node:test';
import { MAX_FIRST_TOKEN_HOLD_BYTES } from '../../src/server/forward.js';
import { startHarness, type Harness } from '../support/harness.js';
import { rawRequest } from '../support/http.js';

/** Waits on events only; the timeout turns a lost event into a failure instead of a hang. */
const EVENT_TEST = { timeout: 30_000 };
const RULES = `version: 1
rules:
  - name: with-fallback
    route: { model: a/primary, fallbacks: [b/second] }
`;
const STREAM_BODY = JSON.stringify({ model: 'auto', stream: true, messages: [{ role: 'user', content: 'Say hello' }] });

async function harness(t: TestContext, env: Record<string, string>): Promise<Harness> {
  const h = await startHarness({ rules: RULES, env: { OPENROUTER_API_KEY: 'sk-or-first-token', UPSTREAM_FIRST_TOKEN_TIMEOUT_MS: '150', ...env } });
  t.after(() => h.close());
  return h;
}

function chat(h: Harness): ReturnType<typeof rawRequest> {
  return rawRequest(h.url, { method: 'POST', path: '/v1/chat/completions', headers: { 'content-type': 'application/json' }, body: STREAM_BODY });
}

async function scrape(h: Harness): Promise<string> {
  return (await fetch(`${h.url}/metrics`)).text();
}

test('a stream that yields no token in time is retried on the next model, and the client sees only the second stream', EVENT_TEST, async (t) => {
  const h = await harness(t, { RETRY_MAX_ATTEMPTS: '2' });
  h.fake.enqueue({ type: 'hang-after-headers' });
  const res = await chat(h);

  assert.equal(res.status, 200);
  assert.equal(res.headers['x-signalbox-attempts'], '2');
  assert.equal(res.headers['x-signalbox-model'], 'b/second');
  assert.equal(h.fake.received.length, 2);
  const [stalled, served] = h.fake.received;
  assert.equal(await stalled!.outcome, 'aborted', 'the stalled stream was abandoned upstream');
  assert.equal((served!.json as { model: string }).model, 'b/second');
  // Nothing of the stalled attempt (its processing comment) reached the client.
  assert.deepEqual(res.body, Buffer.concat(served!.sent));
  assert.ok(res.body.toString().endsWith('data: [DONE]\n\n'));
  const metrics = await scrape(h);
  assert.match(metrics, /^signalbox_fallbacks_total\{from="a\/primary",to="b\/second",reason="first_token_timeout"\} 1$/m);
});

test('a stream whose first token comes in time is relayed byte for byte, held bytes first', EVENT_TEST, async (t) => {
  const h = await harness(t, { RETRY_MAX_ATTEMPTS: '2' });
  h.fake.enqueue({ type: 'slow-stream', ms: 20 });
  const res = await chat(h);

  assert.equal(res.status, 200);
  assert.equal(res.headers['x-signalbox-attempts'], '1');
  assert.equal(h.fake.received.length, 1);
  assert.deepEqual(res.body, Buffer.concat(h.fake.received[0]!.sent));
  const line = await h.logs.waitFor((r) => r.msg === 'request' && r.path === '/v1/chat/completions');
  assert.equal(typeof line.ttft_ms, 'number');
  assert.equal(line.prompt_tokens, h.fake.received[0]!.usage!.prompt_tokens);
});

test('with no attempt left, a stream without a token in time is a 504 upstream_timeout', EVENT_TEST, async (t) => {
  const h = await harness(t, { RETRY_MAX_ATTEMPTS: '1' });
  h.fake.enqueue({ type: 'hang-after-headers' });
  const res = await chat(h);

  assert.equal(res.status, 504);
  const body = JSON.parse(res.body.toString('utf8')) as { error: { code: string; type: string; message: string } };
  assert.equal(body.error.code, 'upstream_timeout');
  assert.equal(body.error.type, 'timeout_error');
  assert.match(body.error.message, /first token/);
  assert.equal(h.fake.received.length, 1);
  assert.equal(await h.fake.received[0]!.outcome, 'aborted');
});

test('an in-band error before any token ends the wait and is relayed as it is', EVENT_TEST, async (t) => {
  const h = await harness(t, { RETRY_MAX_ATTEMPTS: '2' });
  h.fake.enqueue({ type: 'error-mid-stream', afterEvents: 1 });
  const res = await chat(h);

  assert.equal(res.status, 200);
  assert.equal(h.fake.received.length, 1, 'an answer (even an error event) is not retried once it is a stream');
  assert.deepEqual(res.body, Buffer.concat(h.fake.received[0]!.sent));
  assert.match(res.body.toString(), /"finish_reason":"error"/);
});

test('non-streaming requests are not held: the first-token timeout applies to streams only', EVENT_TEST, async (t) => {
  const h = await harness(t, { RETRY_MAX_ATTEMPTS: '2' });
  h.fake.enqueue({ type: 'latency', ms: 300 });
  const res = await rawRequest(h.url, {
    method: 'POST', path: '/v1/chat/completions', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'auto', messages: [{ role: 'user', content: 'Say hello' }] }),
  });
  assert.equal(res.status, 200);
  assert.equal(res.headers['x-signalbox-attempts'], '1');
  assert.equal(h.fake.received.length, 1);
});

test('a flood of comments before the first token is held up to 1 MiB, then relayed as a plain stream', EVENT_TEST, async (t) => {
  // A tiny upstream of its own: 2 MiB of SSE comments, then nothing until the client has seen them
  // (with an unbounded hold the proxy would keep them all back until the first-token timeout).
  const FLOOD_BYTES = 2 * MAX_FIRST_TOKEN_HOLD_BYTES;
  const comment = Buffer.from(`: ${'x'.repeat(1021)}\n\n`);
  let releaseToken!: () => void;
  const tokenReleased = new Promise<void>((resolve) => (releaseToken = resolve));
  const upstream = http.createServer((req, res) => {
    req.resume();
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    let sent = 0;
    const flood = (): void => {
      while (sent < FLOOD_BYTES) {
        sent += comment.length;
        if (!res.write(comment)) {
          res.once('drain', flood);
          return;
        }
      }
      void tokenReleased.then(() => {
        res.end('data: {"id":"gen-1","model":"a/primary","choices":[{"index":0,"delta":{"content":"hi"}}]}\n\ndata: [DONE]\n\n');
      });
    };
    flood();
  });
  upstream.listen(0, '127.0.0.1');
  await once(upstream, 'listening');
  t.after(() => new Promise<void>((resolve) => upstream.close(() => resolve())));
  const { port } = upstream.address() as AddressInfo;
  const h = await harness(t, { OPENROUTER_BASE_URL: `http://127.0.0.1:${port}/api/v1`, UPSTREAM_FIRST_TOKEN_TIMEOUT_MS: '20000' });

  const req = http.request(`${h.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' } });
  req.end(STREAM_BODY);
  const [res] = (await once(req, 'response')) as [http.IncomingMessage];
  assert.equal(res.statusCode, 200, 'the head came before any token: the hold gave up');
  const chunks: Buffer[] = [];
  let received = 0;
  res.on('data', (chunk: Buffer) => {
    chunks.push(chunk);
    received += chunk.length;
    if (received >= FLOOD_BYTES) releaseToken();
  });
  await once(res, 'end');
  const body = Buffer.concat(chunks).toString('utf8');
  assert.ok(body.length > FLOOD_BYTES);
  assert.ok(body.startsWith(': xxx'), 'held comments are relayed first');
  assert.ok(body.endsWith('data: [DONE]\n\n'));
  assert.equal(res.headers['x-signalbox-attempts'], '1');
});
