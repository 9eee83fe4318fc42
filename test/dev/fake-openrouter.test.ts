import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { FakeOpenRouter, fakeUsage, type FakeOpenRouterOptions } from '../../src/dev/fake-openrouter.js';

const MESSAGES = [{ role: 'user', content: 'Say hello' }];
const AUTH = { authorization: 'Bearer sk-or-test' };

async function startFake(t: TestContext, options: FakeOpenRouterOptions = {}): Promise<FakeOpenRouter> {
  const fake = new FakeOpenRouter(options);
  await fake.listen();
  t.after(() => fake.close());
  return fake;
}

function chat(fake: FakeOpenRouter, body: unknown, headers: Record<string, string> = AUTH): Promise<Response> {
  return fetch(`${fake.baseUrl}/chat/completions`, {
    method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body),
  });
}

interface Chunk {
  choices: { index: number; delta: { role?: string; content?: string }; finish_reason: string | null }[];
  usage?: unknown;
}

test('a stream sends processing comments, a role chunk, content chunks, a stop chunk, a usage chunk, then [DONE]', async (t) => {
  const content = 'One two three.';
  const fake = await startFake(t, { content, processingComments: 3 });
  const res = await chat(fake, { model: 'openai/gpt-4o-mini', messages: MESSAGES, stream: true });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), 'text/event-stream');
  const text = await res.text();

  const events = text.split('\n\n');
  assert.equal(events.pop(), '', 'the stream ends with a blank line');
  assert.deepEqual(events.slice(0, 3), Array(3).fill(': OPENROUTER PROCESSING'));
  assert.equal(events[events.length - 1], 'data: [DONE]');
  const chunks = events.slice(3, -1).map((event) => {
    assert.match(event, /^data: /);
    return JSON.parse(event.slice('data: '.length)) as Chunk;
  });
  const words = ['One ', 'two ', 'three.'];
  assert.equal(chunks.length, 1 + words.length + 2);

  const [role, ...rest] = chunks;
  assert.deepEqual(role?.choices[0]?.delta, { role: 'assistant', content: '' });
  assert.equal(role?.choices[0]?.finish_reason, null);
  const contentChunks = rest.slice(0, words.length);
  assert.deepEqual(contentChunks.map((c) => c.choices[0]?.delta.content), words);
  assert.ok(contentChunks.every((c) => c.choices[0]?.finish_reason === null && c.usage === undefined));
  const [stop, usage] = rest.slice(words.length);
  assert.equal(stop?.choices[0]?.finish_reason, 'stop');
  assert.equal(stop?.usage, undefined);
  assert.equal(usage?.choices.length, 1);
  assert.equal(usage?.choices[0]?.finish_reason, null);
  assert.deepEqual(usage?.usage, fakeUsage(JSON.stringify(MESSAGES).length, words.length));
  assert.equal(Buffer.concat(fake.received[0]!.sent).toString('utf8'), text);
});

test('a non-streaming completion carries the content and the usage with cost', async (t) => {
  const fake = await startFake(t);
  const res = await chat(fake, { model: 'openai/gpt-4o', messages: MESSAGES });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('x-generation-id'), 'gen-1700000000-fake0');
  const body = (await res.json()) as { model: string; choices: { message: { content: string } }[]; usage: unknown };
  assert.equal(body.model, 'openai/gpt-4o');
  assert.equal(body.choices[0]?.message.content, fake.options.content);
  const words = fake.options.content.split(/(?<= )/).length;
  assert.deepEqual(body.usage, fakeUsage(JSON.stringify(MESSAGES).length, words));
  assert.deepEqual(fake.received[0]?.usage, body.usage);
});

test('the x-fake-fault header injects a status with an OpenRouter error body', async (t) => {
  const fake = await startFake(t);
  const res = await chat(fake, { model: 'm', messages: MESSAGES }, { ...AUTH, 'x-fake-fault': '{"type":"status","status":503}' });
  assert.equal(res.status, 503);
  assert.deepEqual(await res.json(), { error: { code: 503, message: 'No endpoints found that can handle the request' } });
  assert.deepEqual(fake.received[0]?.fault, { type: 'status', status: 503 });
});

test('enqueue() applies a fault to the next request only', async (t) => {
  const fake = await startFake(t);
  fake.enqueue({ type: 'status', status: 429 });
  const first = await chat(fake, { model: 'm', messages: MESSAGES });
  assert.equal(first.status, 429);
  assert.deepEqual(await first.json(), { error: { code: 429, message: 'Rate limit exceeded: free-models-per-min' } });
  const second = await chat(fake, { model: 'm', messages: MESSAGES });
  assert.equal(second.status, 200);
  assert.equal(fake.received[1]?.fault, undefined);
});

test('requireAuth answers 401 without a bearer token', async (t) => {
  const fake = await startFake(t, { requireAuth: true });
  const res = await chat(fake, { model: 'm', messages: MESSAGES }, {});
  assert.equal(res.status, 401);
  assert.deepEqual(await res.json(), { error: { code: 401, message: 'No auth credentials found' } });
  const withKey = await chat(fake, { model: 'm', messages: MESSAGES });
  assert.equal(withKey.status, 200);
});

test('received records the method, url, headers and body of each request', async (t) => {
  const fake = await startFake(t);
  const body = JSON.stringify({ model: 'm', messages: MESSAGES });
  const res = await fetch(`${fake.baseUrl}/chat/completions?trace=1`, {
    method: 'POST', headers: { 'content-type': 'application/json', 'x-custom': 'yes', ...AUTH }, body,
  });
  await res.arrayBuffer();
  assert.equal(fake.received.length, 1);
  const rec = fake.received[0]!;
  assert.equal(rec.seq, 0);
  assert.equal(rec.method, 'POST');
  assert.equal(rec.url, '/api/v1/chat/completions?trace=1');
  assert.equal(rec.headers['x-custom'], 'yes');
  assert.equal(rec.headers.authorization, 'Bearer sk-or-test');
  assert.equal(rec.body.toString('utf8'), body);
  assert.deepEqual(rec.json, JSON.parse(body));
  assert.equal(await rec.outcome, 'complete');
});

test('close() resolves while a request hangs, and the hanging exchange is recorded as aborted', { timeout: 10_000 }, async () => {
  const fake = new FakeOpenRouter();
  await fake.listen();
  fake.enqueue({ type: 'hang' });
  const arrived = fake.nextRequest();
  const hanging = chat(fake, { model: 'm', messages: MESSAGES });
  hanging.catch(() => {});
  const rec = await arrived;

  await fake.close();

  assert.equal(await rec.outcome, 'aborted');
  await assert.rejects(hanging);
});

test('a stamped slow stream carries an increasing x_sent_ns on every data event but [DONE]; an unstamped one carries none', async (t) => {
  const fake = await startFake(t, { content: 'One two three.' });
  const dataEvents = async (fault: unknown): Promise<string[]> => {
    const res = await chat(fake, { model: 'm', messages: MESSAGES, stream: true }, { ...AUTH, 'x-fake-fault': JSON.stringify(fault) });
    assert.equal(res.status, 200);
    const events = (await res.text()).split('\n\n').filter((e) => e.startsWith('data: '));
    assert.equal(events.pop(), 'data: [DONE]');
    return events.map((e) => e.slice('data: '.length));
  };

  const before = process.hrtime.bigint();
  const stamped = (await dataEvents({ type: 'slow-stream', ms: 2, stamp: true })).map((d) => JSON.parse(d) as Chunk & { x_sent_ns?: unknown });
  const after = process.hrtime.bigint();
  assert.equal(stamped.length, 1 + 3 + 2, 'role, three words, stop, usage');
  let previous = before;
  for (const chunk of stamped) {
    assert.equal(typeof chunk.x_sent_ns, 'string');
    assert.match(chunk.x_sent_ns as string, /^\d+$/);
    const sent = BigInt(chunk.x_sent_ns as string);
    // The same clock in the same process here: each stamp is later than the one before, by at least the gap.
    assert.ok(sent > previous, `${sent} > ${previous}`);
    assert.ok(sent < after);
    previous = sent;
    assert.ok(Array.isArray(chunk.choices), 'the rest of the chunk is intact');
  }
  assert.deepEqual(stamped.slice(1, 4).map((c) => c.choices[0]?.delta.content), ['One ', 'two ', 'three.']);

  for (const fault of [{ type: 'slow-stream', ms: 1 }, { type: 'slow-stream', ms: 1, stamp: false }]) {
    const plain = await dataEvents(fault);
    assert.equal(plain.length, 6);
    assert.ok(plain.every((d) => !d.includes('x_sent_ns')));
  }
});
