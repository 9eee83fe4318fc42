import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { test, type TestContext } from 'node:test';
import type { ReceivedRequest } from '../../src/dev/fake-openrouter.js';
import { CHAT_BODY, startHarness, type Harness } from '../support/harness.js';

/** A chat request whose body bytes can be watched as they arrive, and which the test can abandon. */
interface WatchedRequest {
  /** Every body byte received so far. */
  received(): Buffer;
  /** Resolves once `predicate` holds for the body received so far. */
  waitForBody(predicate: (body: Buffer) => boolean): Promise<void>;
  /** Leaves: destroys the request and its socket. */
  leave(): void;
}

function postChat(h: Harness, body: unknown, requestId: string): WatchedRequest {
  const chunks: Buffer[] = [];
  const progress = new EventEmitter();
  const req = httpRequest(`${h.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-request-id': requestId },
  });
  // The test destroys the request on purpose; the resulting socket error is expected.
  req.on('error', () => {});
  req.on('response', (res) => {
    res.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      progress.emit('data');
    });
    res.on('error', () => {});
  });
  req.end(JSON.stringify(body));
  const received = (): Buffer => Buffer.concat(chunks);
  return {
    received,
    waitForBody(predicate) {
      if (predicate(received())) return Promise.resolve();
      return new Promise((resolve) => {
        const check = (): void => {
          if (!predicate(received())) return;
          progress.off('data', check);
          resolve();
        };
        progress.on('data', check);
      });
    },
    leave() {
      req.destroy();
    },
  };
}

async function harness(t: TestContext): Promise<Harness> {
  const h = await startHarness({ env: { OPENROUTER_API_KEY: 'sk-or-server' } });
  t.after(() => h.close());
  return h;
}

/** One SSE data event in OpenRouter's chunk shape. */
function chunkEvent(content: string): string {
  return `data: ${JSON.stringify({
    id: 'gen-1', object: 'chat.completion.chunk', created: 1_700_000_000, model: CHAT_BODY.model,
    choices: [{ index: 0, delta: { role: 'assistant', content }, finish_reason: null }],
  })}\n\n`;
}

const STREAM_BODY = { ...CHAT_BODY, stream: true };

test('a client that leaves before upstream headers aborts the upstream request and is logged as 499', async (t) => {
  const h = await harness(t);
  h.fake.enqueue({ type: 'hang' });
  const upstreamArrived = h.fake.nextRequest();
  const client = postChat(h, CHAT_BODY, 'leave-before-headers');
  const rec = await upstreamArrived;

  client.leave();

  assert.equal(await rec.outcome, 'aborted');
  const line = await h.logs.requestLine('leave-before-headers');
  assert.equal(line.status, 499);
  assert.equal(line.client_closed, true);
  assert.equal(line.upstream_status, undefined);
  assert.equal(line.bytes_out, 0);
});

test('the proxy serves the next request after a client left before upstream headers', async (t) => {
  const h = await harness(t);
  h.fake.enqueue({ type: 'hang' });
  const upstreamArrived = h.fake.nextRequest();
  const client = postChat(h, CHAT_BODY, 'leave-then-next');
  const rec = await upstreamArrived;
  client.leave();
  assert.equal(await rec.outcome, 'aborted');

  const res = await fetch(`${h.url}/v1/chat/completions`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(CHAT_BODY),
  });
  assert.equal(res.status, 200);
  const body = (await res.json()) as { choices: { message: { content: string } }[] };
  assert.equal(body.choices[0]?.message.content, h.fake.options.content);
  assert.equal(h.fake.received.length, 2);
});

test('a client that leaves mid-stream aborts the upstream stream; the log line has 499 and the bytes it got', async (t) => {
  const h = await harness(t);
  h.fake.enqueue({ type: 'manual' });
  const client = postChat(h, STREAM_BODY, 'leave-mid-stream');
  const upstream = await h.fake.nextManual();
  upstream.writeHead(200, { 'content-type': 'text/event-stream' });
  const sent = [': OPENROUTER PROCESSING\n\n', chunkEvent(''), chunkEvent('Hello')];
  for (const event of sent) await upstream.write(event);
  const expected = Buffer.from(sent.join(''));
  await client.waitForBody((body) => body.length >= expected.length);
  assert.deepEqual(client.received(), expected);

  client.leave();

  assert.equal(await upstream.request.outcome, 'aborted');
  const line = await h.logs.requestLine('leave-mid-stream');
  assert.equal(line.status, 499);
  assert.equal(line.client_closed, true);
  assert.equal(line.stream, true);
  assert.equal(line.upstream_status, 200);
  assert.equal(line.bytes_out, expected.length);
});

test('a client that leaves a slow stream after its first bytes aborts the upstream before [DONE]', async (t) => {
  const h = await harness(t);
  h.fake.enqueue({ type: 'slow-stream', ms: 50 });
  const upstreamArrived = h.fake.nextRequest();
  const client = postChat(h, STREAM_BODY, 'leave-slow-stream');
  const rec = await upstreamArrived;
  await client.waitForBody((body) => body.length > 0);

  client.leave();

  assert.equal(await rec.outcome, 'aborted');
  assert.equal(rec.aborted, true);
  assert.doesNotMatch(Buffer.concat(rec.sent).toString('utf8'), /\[DONE\]/);
  const line = await h.logs.requestLine('leave-slow-stream');
  assert.equal(line.status, 499);
  assert.equal(line.client_closed, true);
  assert.equal(line.stream, true);
});

test('pipelined requests whose client leaves are all aborted upstream, logged as 499 and counted (issue 12, defect 8)', { timeout: 30_000 }, async (t) => {
  const h = await harness(t);
  // Both streams stay open after their headers, as a long generation does.
  h.fake.enqueue({ type: 'hang-after-headers' }, { type: 'hang-after-headers' });
  const upstream: Promise<ReceivedRequest[]> = new Promise((resolve) => {
    const seen: ReceivedRequest[] = [];
    const onRequest = (rec: ReceivedRequest): void => {
      seen.push(rec);
      if (seen.length < 2) return;
      h.fake.off('request', onRequest);
      resolve(seen);
    };
    h.fake.on('request', onRequest);
  });
  const socket = connect(Number(new URL(h.url).port), '127.0.0.1');
  t.after(() => socket.destroy());
  socket.on('error', () => {});
  const body = JSON.stringify(STREAM_BODY);
  const head = (id: string): string =>
    `POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\nx-request-id: ${id}\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n`;
  // Both requests in one write: the second waits behind the first's response (HTTP/1.1 pipelining).
  socket.write(head('pipelined-1') + body + head('pipelined-2') + body);
  const [first, second] = await upstream;

  socket.destroy();

  assert.equal(await first!.outcome, 'aborted');
  assert.equal(await second!.outcome, 'aborted', 'the queued request\'s upstream stream is aborted too');
  for (const id of ['pipelined-1', 'pipelined-2']) {
    const line = await h.logs.requestLine(id);
    assert.equal(line.status, 499, id);
    assert.equal(line.client_closed, true, id);
  }
  const metrics = await (await fetch(`${h.url}/metrics`)).text();
  assert.match(metrics, /^signalbox_client_disconnects_total 2$/m);
});
