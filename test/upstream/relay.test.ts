import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, request as httpRequest, type IncomingMessage } from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { PassThrough } from 'node:stream';
import { test } from 'node:test';
import { UpstreamUnreachableError } from '../../src/errors.js';
import { relayBody, type RelayOutcome } from '../../src/upstream/relay.js';
import { withTimeout } from '../support/timeout.js';

/**
 * relayBody between a PassThrough (the upstream body) and a real server response: each chunk
 * reaches the client as its own chunk, and the tap sees every chunk only after the socket has it.
 */
test('relay: chunks pass one for one, and the tap reads each only once the socket has flushed it', async (t) => {
  const upstream = new PassThrough();
  const tapped: { chunk: string; corked: number }[] = [];
  let settled: RelayOutcome | undefined;
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.flushHeaders();
    relayBody(res, upstream, {
      sse: true, eventId: 'gen-1', model: undefined, writeTimeoutMs: 60_000,
      mapError: (err) => new UpstreamUnreachableError(String(err)),
      // While a write is pending the socket is corked (flushed on the next tick): 0 means flushed.
      onChunk: (chunk) => tapped.push({ chunk: chunk.toString(), corked: res.socket?.writableCorked ?? -1 }),
      onSettled: (outcome) => (settled = outcome),
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => new Promise<void>((r) => server.close(() => r())));

  const req = httpRequest({ port: (server.address() as AddressInfo).port, host: '127.0.0.1', path: '/', agent: false });
  req.end();
  const [res] = (await withTimeout(once(req, 'response'), 'the response')) as [IncomingMessage];
  const received: string[] = [];
  const frames = ['data: {"a":1}\n\n', 'data: {"b":2}\n\n', 'data: [DONE]\n\n'];
  for (const frame of frames) {
    upstream.write(frame);
    const [chunk] = (await withTimeout(once(res, 'data'), 'a body chunk')) as [Buffer];
    received.push(chunk.toString());
  }
  upstream.end();
  await withTimeout(once(res, 'end'), 'the end of the body');

  assert.deepEqual(received, frames, 'each upstream chunk arrives as its own chunk, unchanged');
  assert.deepEqual(tapped.map((x) => x.chunk), frames, 'the tap sees every chunk, in order');
  assert.deepEqual(tapped.map((x) => x.corked), [0, 0, 0], 'the tap ran after each chunk was flushed to the socket');
  assert.equal(settled, 'complete');
});

test('relay: a client that reads nothing for writeTimeoutMs has its response ended and the upstream body destroyed', { timeout: 20_000 }, async (t) => {
  const upstream = new PassThrough();
  let settledWith!: (outcome: RelayOutcome) => void;
  const settled = new Promise<RelayOutcome>((resolve) => (settledWith = resolve));
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.flushHeaders();
    relayBody(res, upstream, {
      sse: true, eventId: 'gen-1', model: undefined, writeTimeoutMs: 200,
      mapError: (err) => new UpstreamUnreachableError(String(err)),
      onChunk: () => undefined,
      onSettled: (outcome) => settledWith(outcome),
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => server.close());
  const { port } = server.address() as AddressInfo;
  // A client that sends its request and then never reads a byte.
  const client = net.connect(port, '127.0.0.1');
  t.after(() => client.destroy());
  client.on('error', () => undefined);
  await once(client, 'connect');
  client.pause();
  client.write('GET / HTTP/1.1\r\nhost: x\r\n\r\n');
  // The upstream keeps sending while the relay accepts it (it pauses the body when the client's buffer is full).
  const comment = Buffer.from(`: ${'x'.repeat(64 * 1024)}\n\n`);
  const pump = (): void => {
    while (!upstream.destroyed && upstream.write(comment));
    if (!upstream.destroyed) upstream.once('drain', pump);
  };
  pump();

  assert.equal(await settled, 'client_stalled');
  assert.ok(upstream.destroyed, 'the upstream body was destroyed (its request aborted)');
});
