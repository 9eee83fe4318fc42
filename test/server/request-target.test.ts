import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { test, type TestContext } from 'node:test';
import { startHarness, type Harness } from '../support/harness.js';
import { jsonOf, rawRequest } from '../support/http.js';
import { parseResponses, type ClientResponse } from '../support/raw-http.js';

/** Issue 12, defects 9 and 10: no spelling of a request target reaches the upstream unrouted. */

const SERVER_KEY = 'sk-or-v1-server-key-request-target';
const RULES = `
version: 1
rules:
  - name: no-chat
    route: { reject: { status: 403, message: chat is closed } }
`;
const CHAT_BODY = JSON.stringify({ model: 'openai/gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] });

async function harness(t: TestContext): Promise<Harness> {
  const h = await startHarness({ env: { OPENROUTER_API_KEY: SERVER_KEY }, rules: RULES });
  t.after(() => h.close());
  return h;
}

/** Writes `head` and `body` as they are on a fresh connection; resolves with every byte once the server closes it. */
function rawExchange(h: Harness, head: string, body = ''): Promise<ClientResponse[]> {
  const { port } = new URL(h.url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), '127.0.0.1', () => socket.end(`${head}\r\nhost: x\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`));
    const chunks: Buffer[] = [];
    socket.setTimeout(10_000, () => socket.destroy(new Error('no answer within 10 s')));
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.once('error', reject);
    socket.once('close', () => resolve(parseResponses(Buffer.concat(chunks))));
  });
}

function assertRefused(responses: ClientResponse[], code: string): void {
  assert.equal(responses.length, 1, 'one answer');
  const res = responses[0]!;
  const text = res.body.toString('utf8');
  assert.equal(res.status, 400, text);
  const parsed = JSON.parse(text) as { error: { code: string; type: string } };
  assert.equal(parsed.error.code, code);
  assert.equal(parsed.error.type, 'invalid_request_error');
}

for (const target of ['http://evil.example/v1/models', 'https://127.0.0.1/v1/chat/completions', '*']) {
  test(`an ${target === '*' ? 'asterisk' : 'absolute'}-form target (${target}) is refused with 400 before anything goes upstream`, async (t) => {
    const h = await harness(t);
    const method = target === '*' ? 'OPTIONS' : 'GET';
    assertRefused(await rawExchange(h, `${method} ${target} HTTP/1.1`), 'invalid_request_target');
    assert.equal(h.fake.received.length, 0, 'nothing forwarded');
  });
}

test('an authority-form target (CONNECT host:port) gets a 400 in the envelope, and the connection closes', async (t) => {
  const h = await harness(t);
  assertRefused(await rawExchange(h, 'CONNECT evil.example:443 HTTP/1.1'), 'invalid_request_target');
  assert.equal(h.fake.received.length, 0);
  // The server still serves.
  assert.equal((await rawRequest(h.url, { path: '/v1/models' })).status, 200);
});

const VARIANTS = [
  '/v1/chat/completions/',
  '/v1//chat/completions',
  '/v1/chat//completions',
  '/v1/chat/completions;x',
  '/v1/chat;x/completions',
  '/v1/chat%2Fcompletions',
  '/v1/chat%252Fcompletions',
  '/v1/chat/completions%2F',
  '/v1/chat/completions%20',
  '/v1/Chat/Completions',
  '/v1/chat\\completions',
  '/v1/routing/explain/',
];

for (const path of VARIANTS) {
  test(`POST ${path} is refused (400 invalid_path), never forwarded around the rules`, async (t) => {
    const h = await harness(t);
    const res = await rawRequest(h.url, { method: 'POST', path, body: CHAT_BODY, headers: { 'content-type': 'application/json' } });
    assert.equal(res.status, 400, res.body.toString('utf8'));
    assert.equal(jsonOf<{ error: { code: string } }>(res).error.code, 'invalid_path');
    assert.equal(h.fake.received.length, 0, 'nothing forwarded');
  });
}

test('the canonical chat path is routed (the reject rule answers), and GET on it is not forwarded either', async (t) => {
  const h = await harness(t);
  const post = await rawRequest(h.url, { method: 'POST', path: '/v1/chat/completions', body: CHAT_BODY, headers: { 'content-type': 'application/json' } });
  assert.equal(post.status, 403);
  assert.equal(jsonOf<{ error: { code: string } }>(post).error.code, 'rejected_by_rule');
  const get = await rawRequest(h.url, { path: '/v1/chat/completions' });
  assert.equal(get.status, 400);
  assert.equal(h.fake.received.length, 0);
  // Other endpoints still pass through, trailing slash and all.
  assert.equal((await rawRequest(h.url, { path: '/v1/models' })).status, 200);
  assert.equal(h.fake.received.length, 1);
});
