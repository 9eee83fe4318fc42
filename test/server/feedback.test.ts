import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { FeedbackTokens, issueToken } from '../../src/experiments/feedback.js';
import { CHAT_BODY, startHarness, type Harness } from '../support/harness.js';
import { jsonOf, rawRequest, type RawResponse } from '../support/http.js';

const SERVER_KEY = 'sk-or-v1-feedback-test-server-key';
const CLIENT_KEY = 'sk-sb-feedback-test-client-key';
const SECRET = 'feedback-test-secret-0123456789abcdef';
const TOKEN_HEADER = 'x-signalbox-feedback-token';

const RULES = `version: 1
rules:
  - name: blocked
    when: { header.x-block: "yes" }
    route: { reject: { status: 403, message: "blocked by policy" } }
  - name: cheap
    when: { model: cheap }
    route: { model: openai/gpt-4o-mini }
`;

async function harness(t: TestContext, env: Record<string, string> = { FEEDBACK_SECRET: SECRET }): Promise<Harness> {
  const h = await startHarness({ rules: RULES, env: { OPENROUTER_API_KEY: SERVER_KEY, SIGNALBOX_API_KEYS: CLIENT_KEY, FEEDBACK_LABELS: 'good,bad,meh', ...env } });
  t.after(() => h.close());
  return h;
}

function post(h: Harness, path: string, body: unknown, headers: Record<string, string> = {}): Promise<RawResponse> {
  return rawRequest(h.url, {
    method: 'POST', path, body: JSON.stringify(body),
    headers: { authorization: `Bearer ${CLIENT_KEY}`, 'content-type': 'application/json', ...headers },
  });
}

function chat(h: Harness, body: object = { ...CHAT_BODY, model: 'cheap' }, headers: Record<string, string> = {}): Promise<RawResponse> {
  return post(h, '/v1/chat/completions', body, headers);
}

const verifier = new FeedbackTokens(SECRET, 60_000);

test('a routed answer carries a feedback token naming its rule and the model of the attempt that answered, streaming or not', async (t) => {
  const h = await harness(t);
  for (const stream of [false, true]) {
    const res = await chat(h, { ...CHAT_BODY, model: 'cheap', stream });
    assert.equal(res.status, 200);
    if (stream) assert.match(String(res.headers['content-type']), /^text\/event-stream/);
    const token = res.headers[TOKEN_HEADER];
    assert.equal(typeof token, 'string', `stream=${stream}`);
    const verdict = verifier.verify(token);
    assert.ok(verdict.ok, `stream=${stream}`);
    // No split in these rules: no variant.
    assert.deepEqual({ ...verdict.claims, issuedAt: 0 }, { rule: 'cheap', variant: undefined, model: 'openai/gpt-4o-mini', issuedAt: 0 });
  }
  // A request no rule matched is routed too (rule none, the client's model).
  const unmatched = verifier.verify((await chat(h, CHAT_BODY)).headers[TOKEN_HEADER]);
  assert.ok(unmatched.ok);
  assert.equal(unmatched.claims.rule, 'none');
  assert.equal(unmatched.claims.model, CHAT_BODY.model);
});

test('no feedback token on the proxy\'s own errors, on pass-through answers, or without FEEDBACK_SECRET', async (t) => {
  const h = await harness(t);
  const refused = await chat(h, undefined, { 'x-block': 'yes' });
  assert.equal(refused.status, 403);
  assert.equal(refused.headers[TOKEN_HEADER], undefined);
  const invalid = await chat(h, { model: 'cheap' });
  assert.equal(invalid.status, 400);
  assert.equal(invalid.headers[TOKEN_HEADER], undefined);
  const models = await rawRequest(h.url, { path: '/v1/models', headers: { authorization: `Bearer ${CLIENT_KEY}` } });
  assert.equal(models.status, 200);
  assert.equal(models.headers[TOKEN_HEADER], undefined);

  const off = await harness(t, {});
  const res = await chat(off);
  assert.equal(res.status, 200);
  assert.equal(res.headers[TOKEN_HEADER], undefined);
  const feedback = await post(off, '/v1/feedback', { token: 'x.y', label: 'good' });
  assert.equal(feedback.status, 404);
  assert.equal(jsonOf<{ error: { code: string } }>(feedback).error.code, 'feedback_disabled');
});

test('POST /v1/feedback takes a token back with a configured label and a score: 200, counted and logged without the token', async (t) => {
  const h = await harness(t);
  const token = (await chat(h)).headers[TOKEN_HEADER] as string;
  const res = await post(h, '/v1/feedback', { token, label: 'good', score: 0.75 });
  assert.equal(res.status, 200);
  assert.deepEqual(jsonOf(res), { ok: true });
  assert.equal((await post(h, '/v1/feedback', { token, label: 'meh' })).status, 200);
  const line = await h.logs.waitFor((r) => r.msg === 'feedback' && r.label === 'good');
  assert.equal(line.level, 30);
  assert.deepEqual({ rule: line.rule, variant: line.variant, model: line.model, label: line.label, score: line.score }, { rule: 'cheap', variant: 'none', model: 'openai/gpt-4o-mini', label: 'good', score: 0.75 });
  await h.logs.waitFor((r) => r.msg === 'request' && r.path === '/v1/feedback');
  assert.equal(h.logs.text.includes(token), false, 'the token is never logged');
  const metrics = (await rawRequest(h.url, { path: '/metrics' })).body.toString('utf8');
  assert.match(metrics, /^signalbox_feedback_total\{rule="cheap",variant="none",model="openai\/gpt-4o-mini",label="good"\} 1$/m);
  assert.match(metrics, /^signalbox_feedback_total\{rule="cheap",variant="none",model="openai\/gpt-4o-mini",label="meh"\} 1$/m);
});

test('POST /v1/feedback answers 400 to an unknown label, a bad score, and a forged, malformed, expired, future or oversized token', async (t) => {
  const h = await harness(t);
  const token = (await chat(h)).headers[TOKEN_HEADER] as string;
  const key = Buffer.from(SECRET);
  const old = issueToken(key, { rule: 'cheap', variant: undefined, model: undefined, issuedAt: Date.now() - 8 * 86_400_000 })!;
  const future = issueToken(key, { rule: 'cheap', variant: undefined, model: undefined, issuedAt: Date.now() + 3_600_000 })!;
  const forged = issueToken(Buffer.from('another-secret-0123456789abcdef-xyz'), { rule: 'cheap', variant: undefined, model: undefined, issuedAt: Date.now() })!;
  const cases: [unknown, string, RegExp][] = [
    [{ token, label: 'excellent' }, 'invalid_feedback', /label must be one of good, bad, meh/],
    [{ token }, 'invalid_feedback', /label/],
    [{ token, label: 'good', score: 1.5 }, 'invalid_feedback', /score/],
    [{ token, label: 'good', score: -0.1 }, 'invalid_feedback', /score/],
    [{ token, label: 'good', score: '1' }, 'invalid_feedback', /score/],
    [[token, 'good'], 'invalid_feedback', /JSON object/],
    [{ token: forged, label: 'good' }, 'invalid_feedback_token', /not signed by this proxy/],
    [{ token: `${token.slice(0, -2)}AA`, label: 'good' }, 'invalid_feedback_token', /not signed by this proxy/],
    [{ token: 'not-a-token', label: 'good' }, 'invalid_feedback_token', /not a feedback token/],
    [{ label: 'good' }, 'invalid_feedback_token', /not a feedback token/],
    [{ token: old, label: 'good' }, 'invalid_feedback_token', /expired/],
    [{ token: future, label: 'good' }, 'invalid_feedback_token', /future/],
    [{ token: token + 'A'.repeat(4096), label: 'good' }, 'invalid_feedback_token', /longer/],
  ];
  for (const [body, code, message] of cases) {
    const res = await post(h, '/v1/feedback', body);
    const what = JSON.stringify(body).slice(0, 80);
    assert.equal(res.status, 400, what);
    const error = jsonOf<{ error: { code: string; type: string; message: string } }>(res).error;
    assert.equal(error.code, code, what);
    assert.equal(error.type, 'invalid_request_error', what);
    assert.match(error.message, message, what);
  }
  assert.equal(h.logs.records.some((r) => r.msg === 'feedback'), false);
});

test('POST /v1/feedback is behind the client authentication of /v1', async (t) => {
  const h = await harness(t);
  const token = (await chat(h)).headers[TOKEN_HEADER] as string;
  const res = await rawRequest(h.url, { method: 'POST', path: '/v1/feedback', body: JSON.stringify({ token, label: 'good' }), headers: { 'content-type': 'application/json' } });
  assert.equal(res.status, 401);
  assert.equal(jsonOf<{ error: { code: string } }>(res).error.code, 'invalid_api_key');
});
