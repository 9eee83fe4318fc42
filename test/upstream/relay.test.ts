import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, request as httpRequest, type IncomingMessage } from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { test } from 'node:test';
import { ResponseRelay, type RelayResult, type RelaySource } from '../../src/upstream/relay.js';
import { ResponseTap } from '../../src/upstream/response-tap.js';
import { withTimeout } from '../support/timeout.js';

/** An upstream call as the relay sees it: pause, resume and abort, recorded. */
class FakeSource implements RelaySource {
  paused = false;
  aborted: Error | undefined;
  /** Called when the relay resumes the source: an upstream that has more to send sends it. */
  onResume: () => void = () => undefined;
  pause(): void {
    this.paused = true;
  }
  resume(): void {
    this.paused = false;
    this.onResume();
  }
  abort(error: Error): void {
    this.aborted = error;
  }
}

/**
 * ResponseRelay between pushed chunks (the upstream's, as undici's handler gets them) and a real
 * server response: each chunk reaches the client as its own chunk, and the tap sees every chunk
 * only after the socket has it.
 */
test('relay: chunks pass one for one, and the tap reads each only once the socket has flushed it', async (t) => {
  const tapped: { chunk: string; corked: number }[] = [];
  let settled: RelayResult | undefined;
  let relay!: ResponseRelay;
  const ready = new Promise<void>((resolve) => {
    const server = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.flushHeaders();
      // While a write is pending the socket is corked (flushed on the next tick): 0 means flushed.
      const tap = new ResponseTap(true);
      const push = tap.push.bind(tap);
      tap.push = (chunk: Buffer) => {
        tapped.push({ chunk: chunk.toString(), corked: res.socket?.writableCorked ?? -1 });
        push(chunk);
      };
      relay = new ResponseRelay(res, new FakeSource(), {
        sse: true, api: 'chat', errorEvent: () => Buffer.from('data: {}\n\n'), writeTimeoutMs: 60_000, tap, onSettled: (result) => (settled = result),
      });
      resolve();
    });
    server.listen(0, '127.0.0.1');
    t.after(() => new Promise<void>((r) => server.close(() => r())));
    void once(server, 'listening').then(() => {
      const req = httpRequest({ port: (server.address() as AddressInfo).port, host: '127.0.0.1', path: '/', agent: false });
      req.end();
      responses.push(once(req, 'response') as Promise<[IncomingMessage]>);
    });
  });
  const responses: Promise<[IncomingMessage]>[] = [];
  await withTimeout(ready, 'the request');
  const [res] = await withTimeout(responses[0]!, 'the response');
  const received: string[] = [];
  const frames = ['data: {"a":1}\n\n', 'data: {"b":2}\n\n', 'data: [DONE]\n\n'];
  for (const frame of frames) {
    relay.write(Buffer.from(frame));
    const [chunk] = (await withTimeout(once(res, 'data'), 'a body chunk')) as [Buffer];
    received.push(chunk.toString());
  }
  relay.end();
  await withTimeout(once(res, 'end'), 'the end of the body');

  assert.deepEqual(received, frames, 'each upstream chunk arrives as its own chunk, unchanged');
  assert.deepEqual(tapped.map((x) => x.chunk), frames, 'the tap sees every chunk, in order');
  assert.deepEqual(tapped.map((x) => x.corked), [0, 0, 0], 'the tap ran after each chunk was flushed to the socket');
  assert.equal(settled?.outcome, 'complete');
  assert.equal(settled?.bytesOut, frames.join('').length);
  assert.equal(settled?.facts?.done, true, 'the facts are read by the time the relay settles');
});

test('relay: a client that reads nothing for writeTimeoutMs has its response ended and the upstream call aborted', { timeout: 20_000 }, async (t) => {
  const source = new FakeSource();
  let settledWith!: (result: RelayResult) => void;
  const settled = new Promise<RelayResult>((resolve) => (settledWith = resolve));
  let relay: ResponseRelay | undefined;
  const started = new Promise<void>((resolve) => {
    const server = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.flushHeaders();
      relay = new ResponseRelay(res, source, {
        sse: true, api: 'chat', errorEvent: () => Buffer.from('data: {}\n\n'), writeTimeoutMs: 200, tap: undefined, onSettled: (result) => settledWith(result),
      });
      resolve();
    });
    server.listen(0, '127.0.0.1');
    t.after(() => server.close());
    void once(server, 'listening').then(async () => {
      const { port } = server.address() as AddressInfo;
      // A client that sends its request and then never reads a byte.
      const client = net.connect(port, '127.0.0.1');
      t.after(() => client.destroy());
      client.on('error', () => undefined);
      await once(client, 'connect');
      client.pause();
      client.write('GET / HTTP/1.1\r\nhost: x\r\n\r\n');
    });
  });
  await withTimeout(started, 'the request');
  // The upstream keeps sending while the relay accepts it (it pauses the source when the client's
  // buffer is full, and resumes it on 'drain' until the kernel's buffers are full too).
  const comment = Buffer.from(`: ${'x'.repeat(64 * 1024)}\n\n`);
  const pump = (): void => {
    while (!source.paused && source.aborted === undefined) relay!.write(comment);
  };
  source.onResume = pump;
  pump();

  const result = await withTimeout(settled, 'the write timeout');
  assert.equal(result.outcome, 'client_stalled');
  assert.equal(result.streamErrorKind, 'client_write_timeout');
  assert.equal(result.endedByProxy, true);
  assert.ok(source.aborted, 'the upstream call was aborted');
});
