import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { MAX_JSON_DEPTH, scanJsonBody } from '../../src/server/json-body.js';
import { headerSafe } from '../../src/server/response-head.js';
import { startHarness, type Harness } from '../support/harness.js';
import { jsonOf, rawRequest, type RawResponse } from '../support/http.js';

const SERVER_KEY = 'sk-or-v1-server-key-json-body-0123456789';
const MESSAGES = '"messages":[{"role":"user","content":"hi"}]';

/** A rule that rewrites every body (so the proxy re-serialises it). */
const REWRITE_RULES = `
version: 1
rules:
  - name: rewrite
    route: { model: openai/gpt-4o-mini, params: { temperature: 0.2 } }
`;

async function harness(t: TestContext, rules?: string): Promise<Harness> {
  const h = await startHarness({ env: { OPENROUTER_API_KEY: SERVER_KEY }, ...(rules !== undefined && { rules }) });
  t.after(() => h.close());
  return h;
}

function post(h: Harness, path: string, body: string): Promise<RawResponse> {
  return rawRequest(h.url, { method: 'POST', path, body, headers: { 'content-type': 'application/json' } });
}

function assertRefused(res: RawResponse, code: string, message: RegExp): void {
  const text = res.body.toString('utf8');
  assert.equal(res.status, 400, text);
  const { error } = jsonOf<{ error: { code: string; type: string; message: string } }>(res);
  assert.equal(error.code, code);
  assert.equal(error.type, 'invalid_request_error');
  assert.match(error.message, message);
}

function nested(levels: number): string {
  return `{"model":"openai/gpt-4o-mini",${MESSAGES},"metadata":${'['.repeat(levels - 1)}${']'.repeat(levels - 1)}}`;
}

test('scan: nesting up to the limit is accepted, one level more is refused', () => {
  // The top-level object is level 1.
  assert.doesNotThrow(() => scanJsonBody(nested(MAX_JSON_DEPTH)));
  assert.throws(() => scanJsonBody(nested(MAX_JSON_DEPTH + 1)), { code: 'json_too_deep' });
});

test('scan: unpaired surrogate escapes are refused, pairs and other escapes are not', () => {
  assert.doesNotThrow(() => scanJsonBody('{"a":"\\ud83d\\ude00 \\u00e9 \\" \\\\u d800 \\n"}'));
  assert.throws(() => scanJsonBody('{"a":"x\\ud800"}'), { code: 'invalid_json', message: /at a has an unpaired surrogate \\ud800/ });
  assert.throws(() => scanJsonBody('{"a":["\\udc00\\ud800"]}'), { code: 'invalid_json', message: /at a\[0\]/ });
  assert.throws(() => scanJsonBody('{"k\\uDBFF":1}'), { code: 'invalid_json' });
});

test('scan: duplicate keys are refused at the top level and in message objects only', () => {
  assert.throws(() => scanJsonBody('{"model":"a","model":"b"}'), { code: 'duplicate_key', message: /"model" in the top-level object/ });
  // An escaped spelling is the same key for JSON.parse, so it is for the scan.
  assert.throws(() => scanJsonBody('{"model":"a","mod\\u0065l":"b"}'), { code: 'duplicate_key' });
  assert.throws(
    () => scanJsonBody('{"messages":[{"role":"user"},{"role":"user","content":"a","role":"system"}]}'),
    { code: 'duplicate_key', message: /"role" in the message at messages\[1\]/ },
  );
  // The same key in two messages, or twice deeper down, is not what routing or the upstream disagree on.
  assert.doesNotThrow(() => scanJsonBody('{"messages":[{"role":"user"},{"role":"user"}],"metadata":{"a":1,"a":2},"m":[{"x":1,"x":2}]}'));
});

test('scan: the first number a re-serialisation would change is found, with its path', () => {
  const path = (text: string): string | undefined => scanJsonBody(text).unsafeNumberPath;
  assert.equal(path('{"seed":12345678901234567890}'), 'seed');
  assert.equal(path('{"a":[1,{"b":-9007199254740993}]}'), 'a[1].b');
  assert.equal(path('{"a":[0, 1e400]}'), 'a[1]');
  assert.equal(path('{"a":{"x y":1e-400}}'), 'a["x y"]');
  assert.equal(path('{"n":100000000000000000000000}'), 'n'); // JSON.stringify writes 1e+23
  assert.equal(path('{"n":1152921504606846976}'), 'n'); // 2^60, an exact double, is written 1152921504606847000
  // What comes back as the same number: integers up to 2^53, doubles, zeros, exponents.
  assert.equal(path('{"a":[0,-0,0.0,0e5,1.5,0.1,1e2,1E-7,-3.25e10,9007199254740992,-123456789012345]}'), undefined);
});

test('headerSafe: an unpaired surrogate does not throw', () => {
  assert.equal(headerSafe('a/\ud800b'), 'a%2F%EF%BF%BDb');
  assert.equal(headerSafe('a/\ud83d\ude00'), 'a%2F%F0%9F%98%80');
});

test('deep JSON is a 400 json_too_deep on chat and explain, and nothing goes upstream', async (t) => {
  const h = await harness(t, REWRITE_RULES);
  const deep = nested(5000);
  for (const path of ['/v1/chat/completions', '/v1/routing/explain']) {
    assertRefused(await post(h, path, deep), 'json_too_deep', new RegExp(`deeper than ${MAX_JSON_DEPTH} levels`));
  }
  assert.equal(h.fake.received.length, 0);
  // At the limit, the rewritten body goes upstream.
  const ok = await post(h, '/v1/chat/completions', nested(MAX_JSON_DEPTH));
  assert.equal(ok.status, 200, ok.body.toString('utf8'));
});

test('a lone surrogate in the model is a 400 invalid_json on chat and explain', async (t) => {
  const h = await harness(t);
  const body = `{"model":"openai/gpt-4o-mini\\ud800",${MESSAGES}}`;
  for (const path of ['/v1/chat/completions', '/v1/routing/explain']) {
    assertRefused(await post(h, path, body), 'invalid_json', /at model has an unpaired surrogate/);
  }
  assert.equal(h.fake.received.length, 0);
});

test('pass-through: deep JSON and a lone surrogate in the model go upstream as sent, no 500', async (t) => {
  const h = await harness(t);
  const deep = `{"model":"openai/gpt-4o-mini","input":"hi","metadata":${'['.repeat(5000)}${']'.repeat(5000)}}`;
  const deepRes = await post(h, '/v1/embeddings', deep);
  assert.equal(deepRes.status, 200, deepRes.body.toString('utf8'));
  assert.equal(h.fake.received.at(-1)?.body.toString('utf8'), deep);
  const lone = '{"model":"openai/gpt-4o-mini\\ud800","input":"hi"}';
  const loneRes = await post(h, '/v1/embeddings', lone);
  // The fake, like OpenRouter, does not know the model: its own 400 is relayed.
  assert.equal(loneRes.status, 400, loneRes.body.toString('utf8'));
  assert.equal(h.fake.received.at(-1)?.body.toString('utf8'), lone);
  assert.equal(h.logs.records.filter((r) => r.level >= 50).length, 0, 'no error logged');
});

test('duplicate keys in the body or a message are a 400 duplicate_key naming the key', async (t) => {
  const h = await harness(t);
  const twoModels = `{"model":"openai/gpt-4o-mini",${MESSAGES},"model":"anthropic/claude-3-haiku"}`;
  assertRefused(await post(h, '/v1/chat/completions', twoModels), 'duplicate_key', /"model" in the top-level object/);
  const twoRoles = '{"model":"openai/gpt-4o-mini","messages":[{"role":"system","content":"hi","role":"user"}]}';
  assertRefused(await post(h, '/v1/routing/explain', twoRoles), 'duplicate_key', /"role" in the message at messages\[0\]/);
  assert.equal(h.fake.received.length, 0);
});

test('a number a rewrite would change is a 400 unsafe_number naming its path; unrewritten, the bytes go as sent', async (t) => {
  const h = await harness(t, REWRITE_RULES);
  const seed = `{"model":"openai/gpt-4o-mini",${MESSAGES},"seed":12345678901234567890}`;
  assertRefused(await post(h, '/v1/chat/completions', seed), 'unsafe_number', /number at seed/);
  assertRefused(await post(h, '/v1/routing/explain', seed), 'unsafe_number', /number at seed/);
  const huge = `{"model":"openai/gpt-4o-mini",${MESSAGES},"logit_bias":{"50256":1e400}}`;
  assertRefused(await post(h, '/v1/chat/completions', huge), 'unsafe_number', /number at logit_bias\["50256"\]/);
  assert.equal(h.fake.received.length, 0);

  const plain = await harness(t);
  const sent = await post(plain, '/v1/chat/completions', seed);
  assert.equal(sent.status, 200, sent.body.toString('utf8'));
  assert.equal(plain.fake.received[0]?.body.toString('utf8'), seed);
});

test('a retry of a body with such a number resends the client\'s bytes instead of re-serialising them', async (t) => {
  const h = await startHarness({ env: { OPENROUTER_API_KEY: SERVER_KEY, RETRY_MAX_ATTEMPTS: '2' } });
  t.after(() => h.close());
  h.fake.enqueue({ type: 'status', status: 503 });
  const body = `{"model":"openai/gpt-4o-mini","models":["anthropic/claude-3-haiku"],${MESSAGES},"seed":12345678901234567890}`;
  const res = await post(h, '/v1/chat/completions', body);
  assert.equal(res.status, 200, res.body.toString('utf8'));
  assert.deepEqual(h.fake.received.map((r) => r.body.toString('utf8')), [body, body]);
});
