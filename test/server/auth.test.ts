import assert from 'node:assert/strict';
import type { OutgoingHttpHeaders } from 'node:http';
import { test, type TestContext } from 'node:test';
import type { ReceivedRequest } from '../../src/dev/fake-openrouter.js';
import { CHAT_BODY, startHarness, type Harness, type HarnessOptions } from '../support/harness.js';
import { jsonOf, rawRequest, type RawResponse } from '../support/http.js';

const SERVER_KEY = 'sk-or-server-0123456789abcdef';
const CLIENT_TOKEN = 'sk-client-secret';

/** One request with node:http, so that any header (Connection, Cookie) goes out exactly as written. */
function send(h: Harness, method: string, path: string, headers: OutgoingHttpHeaders, body?: string): Promise<RawResponse> {
  return rawRequest(h.url, { method, path, headers, body });
}

function chat(h: Harness, headers: OutgoingHttpHeaders = {}): Promise<RawResponse> {
  return send(h, 'POST', '/v1/chat/completions', { 'content-type': 'application/json', ...headers }, JSON.stringify(CHAT_BODY));
}

function models(h: Harness, headers: OutgoingHttpHeaders = {}): Promise<RawResponse> {
  return send(h, 'GET', '/v1/models', headers);
}

async function harness(t: TestContext, options: HarnessOptions): Promise<Harness> {
  const h = await startHarness(options);
  t.after(() => h.close());
  return h;
}

function onlyReceived(h: Harness): ReceivedRequest {
  assert.equal(h.fake.received.length, 1, 'exactly one request reaches upstream');
  return h.fake.received[0]!;
}

/** Fails when `secret` appears in any header value or in the body upstream received. */
function assertNeverSent(rec: ReceivedRequest, secret: string): void {
  for (const [name, value] of Object.entries(rec.headers)) {
    const values = Array.isArray(value) ? value : [value ?? ''];
    for (const v of values) assert.equal(v.includes(secret), false, `upstream header ${name} carries the secret: ${v}`);
  }
  assert.equal(rec.body.toString('latin1').includes(secret), false, 'upstream body carries the secret');
}

const INVALID_API_KEY = {
  error: { message: 'Missing or invalid API key for this Signalbox proxy', type: 'authentication_error', code: 'invalid_api_key' },
};

test('server key: upstream gets the server key and never the client token on chat completions', async (t) => {
  const h = await harness(t, { env: { OPENROUTER_API_KEY: SERVER_KEY } });
  const res = await chat(h, { authorization: `Bearer ${CLIENT_TOKEN}` });
  assert.equal(res.status, 200);
  const rec = onlyReceived(h);
  assert.equal(rec.headers.authorization, `Bearer ${SERVER_KEY}`);
  assertNeverSent(rec, CLIENT_TOKEN);
});

test('server key: upstream gets the server key and never the client token on /v1/models', async (t) => {
  const h = await harness(t, { env: { OPENROUTER_API_KEY: SERVER_KEY } });
  const res = await models(h, { authorization: `Bearer ${CLIENT_TOKEN}` });
  assert.equal(res.status, 200);
  const rec = onlyReceived(h);
  assert.equal(rec.url, '/api/v1/models');
  assert.equal(rec.headers.authorization, `Bearer ${SERVER_KEY}`);
  assertNeverSent(rec, CLIENT_TOKEN);
});

test('pass-through: the client Authorization reaches upstream unchanged', async (t) => {
  const h = await harness(t, {});
  const res = await chat(h, { authorization: `Bearer ${CLIENT_TOKEN}` });
  assert.equal(res.status, 200);
  assert.equal(onlyReceived(h).headers.authorization, `Bearer ${CLIENT_TOKEN}`);
});

test("pass-through: without Authorization the client gets upstream's 401 and body", async (t) => {
  const h = await harness(t, {});
  const res = await chat(h);
  assert.equal(res.status, 401);
  assert.deepEqual(jsonOf(res), { error: { code: 401, message: 'No auth credentials found' } });
  assert.equal(onlyReceived(h).headers.authorization, undefined);
});

const CLIENT_AUTH_ENV = { OPENROUTER_API_KEY: SERVER_KEY, SIGNALBOX_API_KEYS: 'sy-key-1,sy-key-2' };

test('client auth: no Authorization is a 401 invalid_api_key and nothing reaches upstream', async (t) => {
  const h = await harness(t, { env: CLIENT_AUTH_ENV });
  for (const res of [await chat(h), await models(h)]) {
    assert.equal(res.status, 401);
    assert.deepEqual(jsonOf(res), INVALID_API_KEY);
  }
  assert.equal(h.fake.received.length, 0);
});

test('client auth: a wrong key is a 401 and nothing reaches upstream', async (t) => {
  const h = await harness(t, { env: CLIENT_AUTH_ENV });
  for (const authorization of ['Bearer sy-key-3', 'Bearer sy-key-1x', `Bearer ${SERVER_KEY}`, 'sy-key-1', 'Basic sy-key-1']) {
    const res = await chat(h, { authorization });
    assert.equal(res.status, 401, authorization);
    assert.deepEqual(jsonOf(res), INVALID_API_KEY);
  }
  assert.equal(h.fake.received.length, 0);
});

test('client auth: a valid key is admitted and upstream gets the server key, never the client key', async (t) => {
  const h = await harness(t, { env: CLIENT_AUTH_ENV });
  const res = await chat(h, { authorization: 'Bearer sy-key-2' });
  assert.equal(res.status, 200);
  const rec = onlyReceived(h);
  assert.equal(rec.headers.authorization, `Bearer ${SERVER_KEY}`);
  assertNeverSent(rec, 'sy-key-2');
});

test('client auth: /healthz needs no key', async (t) => {
  const h = await harness(t, { env: CLIENT_AUTH_ENV });
  const res = await send(h, 'GET', '/healthz', {});
  assert.equal(res.status, 200);
  assert.deepEqual(jsonOf(res), { status: 'ok' });
});

const CLIENT_ATTRIBUTION = { 'http-referer': 'https://client.example', 'x-title': 'Client App' };

test('attribution: configured referer and title override the client ones', async (t) => {
  const h = await harness(t, {
    env: { OPENROUTER_API_KEY: SERVER_KEY, OPENROUTER_HTTP_REFERER: 'https://signalbox.example', OPENROUTER_APP_TITLE: 'Signalbox Test' },
  });
  assert.equal((await chat(h, CLIENT_ATTRIBUTION)).status, 200);
  const { headers } = onlyReceived(h);
  assert.equal(headers['http-referer'], 'https://signalbox.example');
  assert.equal(headers['x-title'], 'Signalbox Test');
  assert.equal(headers['x-openrouter-title'], 'Signalbox Test');
});

test('attribution: without config the client referer and title are forwarded', async (t) => {
  const h = await harness(t, { env: { OPENROUTER_API_KEY: SERVER_KEY } });
  assert.equal((await chat(h, CLIENT_ATTRIBUTION)).status, 200);
  const { headers } = onlyReceived(h);
  assert.equal(headers['http-referer'], 'https://client.example');
  assert.equal(headers['x-title'], 'Client App');
});

test('header hygiene: cookie, Connection-listed headers and compression never reach upstream', async (t) => {
  const h = await harness(t, { env: { OPENROUTER_API_KEY: SERVER_KEY } });
  const res = await chat(h, { cookie: 'session=abc', connection: 'x-hop', 'x-hop': '1', 'accept-encoding': 'gzip', 'x-foo': 'kept' });
  assert.equal(res.status, 200);
  const { headers } = onlyReceived(h);
  assert.equal(headers.cookie, undefined);
  assert.equal(headers['x-hop'], undefined);
  assert.equal(headers['accept-encoding'], 'identity');
  assert.equal(headers['x-foo'], 'kept');
  assert.equal(res.headers['content-encoding'], undefined);
});

test('header hygiene: an upstream set-cookie never reaches the client', async (t) => {
  const h = await harness(t, { env: { OPENROUTER_API_KEY: SERVER_KEY } });
  h.fake.enqueue({ type: 'status', status: 200, body: { ok: true }, headers: { 'set-cookie': 'a=b', 'x-foo': 'kept' } });
  const res = await chat(h);
  assert.equal(res.status, 200);
  assert.deepEqual(jsonOf(res), { ok: true });
  assert.equal(res.headers['set-cookie'], undefined);
  assert.equal(res.headers['x-foo'], 'kept');
});
