import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { openRouterErrorBody } from '../../src/dev/fake-openrouter.js';
import { request as httpRequest } from 'node:http';
import { startHarness, type Harness } from '../support/harness.js';
import { jsonOf, rawRequest } from '../support/http.js';

const EVENT_TEST = { timeout: 30_000 };
const RULES = `version: 1
rules:
  - name: with-fallback
    route: { model: a/primary, fallbacks: [b/second] }
`;
const BODY = JSON.stringify({ model: 'auto', messages: [{ role: 'user', content: 'Say hello' }] });
const FAIL = { type: 'status', status: 503, body: openRouterErrorBody(503) } as const;

async function harness(t: TestContext, durationMs: number, { rules = RULES, attempts = 2, failures = 2 } = {}): Promise<Harness> {
  const h = await startHarness({
    rules,
    env: {
      OPENROUTER_API_KEY: 'sk-or-cooldown', RETRY_MAX_ATTEMPTS: String(attempts), COOLDOWN_FAILURES: String(failures),
      COOLDOWN_WINDOW_MS: '60000', COOLDOWN_DURATION_MS: String(durationMs),
    },
  });
  t.after(() => h.close());
  return h;
}

function chat(h: Harness, headers: Record<string, string> = {}): ReturnType<typeof rawRequest> {
  return rawRequest(h.url, { method: 'POST', path: '/v1/chat/completions', headers: { 'content-type': 'application/json', ...headers }, body: BODY });
}

async function cooling(h: Harness, headers: Record<string, string> = {}): Promise<string[]> {
  const res = await rawRequest(h.url, { method: 'POST', path: '/v1/routing/explain', headers: { 'content-type': 'application/json', ...headers }, body: BODY });
  return jsonOf<{ cooling_models: { model: string }[] }>(res).cooling_models.map((c) => c.model);
}

function metric(scrape: string, line: RegExp): boolean {
  return line.test(scrape);
}

/** Two requests whose first attempt (a/primary) fails with 503 and whose retry (b/second) succeeds. */
async function failPrimaryTwice(h: Harness): Promise<void> {
  for (let i = 0; i < 2; i++) {
    h.fake.enqueue(FAIL);
    const res = await chat(h);
    assert.equal(res.status, 200);
    assert.equal(res.headers['x-signalbox-model'], 'b/second');
  }
}

test('a model that failed COOLDOWN_FAILURES times is skipped: the next request goes straight to the fallback', EVENT_TEST, async (t) => {
  const h = await harness(t, 60_000);
  await failPrimaryTwice(h);
  assert.deepEqual(await cooling(h), ['a/primary']);

  const res = await chat(h);
  assert.equal(res.status, 200);
  assert.equal(res.headers['x-signalbox-attempts'], '1');
  assert.equal(res.headers['x-signalbox-model'], 'b/second');
  const last = h.fake.received.at(-1)!.json as { model: string; models?: string[] };
  assert.equal(last.model, 'b/second');
  assert.equal(last.models, undefined, 'the cooling model is left out of OpenRouter\'s list too');
  assert.equal(h.fake.received.length, 5, '2 x (a fails, b answers) + 1 straight to b');

  const scrape = await (await fetch(`${h.url}/metrics`)).text();
  assert.ok(metric(scrape, /^signalbox_model_cooldowns_total\{model="a\/primary"\} 1$/m), scrape);
  assert.ok(metric(scrape, /^signalbox_models_in_cooldown 1$/m));
});

test('after the cooldown one request probes the model, and its success brings the model back', EVENT_TEST, async (t) => {
  const h = await harness(t, 300);
  await failPrimaryTwice(h);
  assert.deepEqual(await cooling(h), ['a/primary']);
  // The cooldown is 300 ms; the explain output says when it is over.
  while ((await cooling(h)).length > 0) await delay(50);

  const probe = await chat(h);
  assert.equal(probe.status, 200);
  assert.equal(probe.headers['x-signalbox-model'], 'a/primary');
  assert.equal((h.fake.received.at(-1)!.json as { model: string }).model, 'a/primary');
  const scrape = await (await fetch(`${h.url}/metrics`)).text();
  assert.ok(metric(scrape, /^signalbox_models_in_cooldown 0$/m));
  assert.deepEqual(await cooling(h), []);
});

test('a failed probe starts another cooldown at once', EVENT_TEST, async (t) => {
  const h = await harness(t, 300);
  await failPrimaryTwice(h);
  while ((await cooling(h)).length > 0) await delay(50);

  h.fake.enqueue(FAIL);
  const res = await chat(h);
  assert.equal(res.status, 200, 'the probe failed, the fallback answered');
  assert.equal(res.headers['x-signalbox-model'], 'b/second');
  assert.deepEqual(await cooling(h), ['a/primary']);
  const scrape = await (await fetch(`${h.url}/metrics`)).text();
  assert.ok(metric(scrape, /^signalbox_model_cooldowns_total\{model="a\/primary"\} 2$/m));
});

test('when every model of the route is cooling down, the list is tried as it is', EVENT_TEST, async (t) => {
  const h = await startHarness({
    rules: `version: 1\nrules:\n  - name: single\n    route: { model: a/primary }\n`,
    env: { OPENROUTER_API_KEY: 'sk-or-cooldown', RETRY_MAX_ATTEMPTS: '1', COOLDOWN_FAILURES: '1', COOLDOWN_DURATION_MS: '60000' },
  });
  t.after(() => h.close());
  h.fake.enqueue(FAIL);
  assert.equal((await chat(h)).status, 503);
  assert.deepEqual(await cooling(h), ['a/primary']);
  const res = await chat(h);
  assert.equal(res.status, 200, 'an answer beats a refusal');
  assert.equal((h.fake.received.at(-1)!.json as { model: string }).model, 'a/primary');
});

// A route whose models can be cooled one at a time: `x-route` sends a single attempt to one of them.
const TWO_ROUTES = `version: 1
rules:
  - name: only-primary
    when: { header.x-route: primary }
    route: { model: a/primary, retry: { max_attempts: 1 } }
  - name: only-second
    when: { header.x-route: second }
    route: { model: b/second, retry: { max_attempts: 1 } }
  - name: with-fallback
    route: { model: a/primary, fallbacks: [b/second] }
`;

function twoRoutes(t: TestContext, durationMs: number): Promise<Harness> {
  return harness(t, durationMs, { rules: TWO_ROUTES, attempts: 3, failures: 3 });
}

/** Three single-attempt requests to `model` that fail: it starts cooling (no retry, so no fallback is counted). */
async function coolDown(h: Harness, route: 'primary' | 'second'): Promise<void> {
  for (let i = 0; i < 3; i++) {
    h.fake.enqueue(FAIL);
    const res = await rawRequest(h.url, { method: 'POST', path: '/v1/chat/completions', headers: { 'content-type': 'application/json', 'x-route': route }, body: BODY });
    assert.equal(res.status, 503);
  }
}

function explain(h: Harness): Promise<{ body: { model: string; models?: string[] }; model: string; body_changed: boolean; cooling_models: { model: string }[] }> {
  return rawRequest(h.url, { method: 'POST', path: '/v1/routing/explain', headers: { 'content-type': 'application/json' }, body: BODY }).then((res) => jsonOf(res));
}

test('a healthy primary that fails retryably while its fallback cools is retried itself: primary, primary, primary', EVENT_TEST, async (t) => {
  const h = await twoRoutes(t, 60_000);
  await coolDown(h, 'second');
  assert.deepEqual(await cooling(h), ['b/second']);
  const before = h.fake.received.length;

  h.fake.enqueue(FAIL, FAIL);
  const res = await chat(h);
  assert.equal(res.status, 200);
  assert.equal(res.headers['x-signalbox-attempts'], '3');
  assert.equal(res.headers['x-signalbox-model'], 'a/primary');
  const sent = h.fake.received.slice(before).map((r) => r.json as { model: string; models?: string[] });
  assert.deepEqual(sent, [{ ...JSON.parse(BODY), model: 'a/primary' }, { ...JSON.parse(BODY), model: 'a/primary' }, { ...JSON.parse(BODY), model: 'a/primary' }],
    'every attempt to the primary alone: the cooling fallback is neither tried nor listed');

  const scrape = await (await fetch(`${h.url}/metrics`)).text();
  const fallbacks = scrape.split('\n').filter((l) => l.startsWith('signalbox_fallbacks_total{'));
  assert.deepEqual(fallbacks, ['signalbox_fallbacks_total{from="a/primary",to="a/primary",reason="503"} 2'], scrape);
});

test('explain shows the body the first attempt sends, cooling models left out, and never takes the probe', EVENT_TEST, async (t) => {
  const h = await twoRoutes(t, 300);
  const healthy = await explain(h);
  assert.deepEqual([healthy.body.model, healthy.body.models], ['a/primary', ['a/primary', 'b/second']]);

  await coolDown(h, 'primary');
  const cooled = await explain(h);
  assert.deepEqual(cooled.cooling_models.map((c) => c.model), ['a/primary']);
  assert.equal(cooled.model, 'a/primary', 'the model the rule routes to');
  assert.equal(cooled.body.model, 'b/second', 'the model the first attempt sends');
  assert.equal('models' in cooled.body, false);
  assert.equal(cooled.body_changed, true);
  const res = await chat(h);
  assert.equal(res.headers['x-signalbox-model'], 'b/second');
  assert.deepEqual(h.fake.received.at(-1)!.json, cooled.body, 'explain\'s body is what the first attempt sent');

  // The cooldown is 300 ms; the explain output says when it is over.
  while ((await explain(h)).cooling_models.length > 0) await delay(50);
  // Explained again and again, the primary's probe is still free: the next request takes it.
  for (let i = 0; i < 3; i++) assert.deepEqual((await explain(h)).body.models, ['a/primary', 'b/second']);
  const probe = await chat(h);
  assert.equal(probe.status, 200);
  assert.equal(probe.headers['x-signalbox-model'], 'a/primary');
});

// ---- issue 12, defect 5: a 429 cools a model for the key that was sent, not for every tenant ----

test('pass-through: one tenant\'s rate-limited key sends only that tenant to the fallback', EVENT_TEST, async (t) => {
  const h = await startHarness({
    rules: RULES,
    env: { RETRY_MAX_ATTEMPTS: '2', COOLDOWN_FAILURES: '2', COOLDOWN_WINDOW_MS: '60000', COOLDOWN_DURATION_MS: '60000' },
  });
  t.after(() => h.close());
  const one = { authorization: 'Bearer sk-or-tenant-one' };
  const two = { authorization: 'Bearer sk-or-tenant-two' };
  for (let i = 0; i < 2; i++) {
    h.fake.enqueue({ type: 'status', status: 429, body: openRouterErrorBody(429) });
    const res = await chat(h, one);
    assert.equal(res.headers['x-signalbox-model'], 'b/second');
  }
  assert.deepEqual(await cooling(h, one), ['a/primary']);
  assert.deepEqual(await cooling(h, two), [], 'the other tenant\'s key is not rate limited');

  const other = await chat(h, two);
  assert.equal(other.status, 200);
  assert.equal(other.headers['x-signalbox-model'], 'a/primary');
  assert.equal(other.headers['x-signalbox-attempts'], '1');
  assert.equal(h.fake.received.at(-1)!.headers.authorization, two.authorization);
  const again = await chat(h, one);
  assert.equal(again.headers['x-signalbox-model'], 'b/second', 'the rate-limited tenant still goes to the fallback');
  assert.ok(!h.logs.text.includes('sk-or-tenant-one'), 'the key never reaches the log');
});

test('pass-through: a 5xx cools the model for every tenant', EVENT_TEST, async (t) => {
  const h = await startHarness({
    rules: RULES,
    env: { RETRY_MAX_ATTEMPTS: '2', COOLDOWN_FAILURES: '2', COOLDOWN_WINDOW_MS: '60000', COOLDOWN_DURATION_MS: '60000' },
  });
  t.after(() => h.close());
  for (let i = 0; i < 2; i++) {
    h.fake.enqueue(FAIL);
    await chat(h, { authorization: 'Bearer sk-or-tenant-one' });
  }
  const res = await chat(h, { authorization: 'Bearer sk-or-tenant-two' });
  assert.equal(res.headers['x-signalbox-model'], 'b/second');
});

// ---- issue 12, defect 6: the probe is a lease, released when the client leaves ----

/** A chat request the test abandons. */
function leavingChat(h: Harness, body: string): { leave(): void } {
  const req = httpRequest(`${h.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' } });
  // The test destroys the request on purpose; the resulting socket error is expected.
  req.on('error', () => {});
  req.on('response', (res) => res.on('error', () => {}).resume());
  req.end(body);
  return { leave: () => req.destroy() };
}

/** A round trip through the proxy's event loop: bytes already on its sockets have been read. */
async function roundTrip(h: Harness): Promise<void> {
  await (await fetch(`${h.url}/healthz`)).text();
}

/**
 * The model's cooldown ends; the next request (the probe) meets `fault`, and its client leaves
 * once `phase` is reached. Afterwards the model is not cooling, and the next request probes it.
 */
async function probeAndLeave(t: TestContext, fault: Parameters<Harness['fake']['enqueue']>[0], phase: 'headers' | 'first_token' | 'retry_wait'): Promise<void> {
  const h = await startHarness({
    rules: RULES,
    env: {
      OPENROUTER_API_KEY: 'sk-or-cooldown', RETRY_MAX_ATTEMPTS: '2', COOLDOWN_FAILURES: '2', COOLDOWN_WINDOW_MS: '60000',
      COOLDOWN_DURATION_MS: '300', UPSTREAM_FIRST_TOKEN_TIMEOUT_MS: '60000',
    },
  });
  t.after(() => h.close());
  await failPrimaryTwice(h);
  while ((await cooling(h)).length > 0) await delay(50);

  h.fake.enqueue(fault);
  const arrived = h.fake.nextRequest();
  const client = leavingChat(h, JSON.stringify({ ...JSON.parse(BODY), stream: true }));
  const probe = await arrived;
  assert.equal((probe.json as { model: string }).model, 'a/primary', 'this request is the probe');
  if (phase !== 'headers') {
    // The head (and comment) or the 503 has been sent; let the proxy read it.
    while (probe.sent.length === 0) await roundTrip(h);
    await roundTrip(h);
  }
  client.leave();
  assert.equal(await h.lifecycle.waitForIdle(10_000), true);
  const attempts = h.logs.records.filter((r) => r.msg === 'upstream attempt').slice(-1);
  if (phase === 'first_token') assert.equal(attempts[0]?.status, 200, 'the client left during the first-token wait');

  if (phase === 'retry_wait') {
    // The probe failed: another cooldown, which ends like any other.
    while ((await cooling(h)).length > 0) await delay(50);
  } else {
    assert.deepEqual(await cooling(h), [], 'the probe was released: the model is not cooling forever');
  }
  const next = await chat(h);
  assert.equal(next.status, 200);
  assert.equal(next.headers['x-signalbox-model'], 'a/primary', 'the next request probes the model');
  assert.deepEqual(await cooling(h), []);
}

test('a probe whose client leaves before the upstream headers is released', EVENT_TEST, async (t) => {
  await probeAndLeave(t, { type: 'hang' }, 'headers');
});

test('a probe whose client leaves during the first-token wait is released', EVENT_TEST, async (t) => {
  await probeAndLeave(t, { type: 'hang-after-headers' }, 'first_token');
});

test('a probe whose client leaves during the retry wait after it failed is probed again after its cooldown', EVENT_TEST, async (t) => {
  await probeAndLeave(t, { type: 'status', status: 503, body: openRouterErrorBody(503), headers: { 'retry-after': '20' } }, 'retry_wait');
});

// ---- issue 12, defect 7: a local error is not the model's failure ----

test('a header value undici refuses is one internal_error: no retry, no cooldown, nothing sent upstream', EVENT_TEST, async (t) => {
  const h = await startHarness({
    rules: RULES,
    env: { OPENROUTER_API_KEY: 'sk-or-cooldown', RETRY_MAX_ATTEMPTS: '3', COOLDOWN_FAILURES: '1', COOLDOWN_DURATION_MS: '60000' },
    // A value the config loader refuses (test/config/load.test.ts), to reach the guard behind it.
    configure: (config) => ({ ...config, upstream: { ...config.upstream, app_title: 'Signalbox\nx-injected: 1' } }),
  });
  t.after(() => h.close());
  const res = await chat(h);
  assert.equal(res.status, 500);
  assert.equal(jsonOf<{ error: { code: string } }>(res).error.code, 'internal_error');
  assert.equal(res.headers['x-should-retry'], 'false');
  assert.equal(res.headers['x-signalbox-attempts'], '1');
  assert.equal(h.fake.received.length, 0);
  assert.deepEqual(await cooling(h), []);
});
