import assert from 'node:assert/strict';
import type { OutgoingHttpHeaders } from 'node:http';
import { test, type TestContext } from 'node:test';
import type { Caller } from '../../src/accounts/caller.js';
import { KeyRing, sha256 } from '../../src/accounts/keys-file.js';
import { parseCatalog } from '../../src/catalog/catalog.js';
import { LiveCatalog } from '../../src/catalog/refresher.js';
import type { KeysSource } from '../../src/server/client-auth.js';
import { startHarness, type Harness } from '../support/harness.js';
import { jsonOf, rawRequest, type RawResponse } from '../support/http.js';
import { withTimeout } from '../support/timeout.js';

/**
 * Budgets end to end (issue 16, item 3): a key's, a team's and an end user's daily and monthly
 * caps, reserve-then-settle against the catalog's prices, the 429 insufficient_quota, the rules'
 * spend fields, BYOK spend, cut streams. Spend settles when the request is recorded: a scrape of
 * /metrics flushes the recorder, so each test scrapes before the next request depends on it.
 */

/** Client keys whose key is the caller's name: `chat(h, 'alice')` presents the key `alice`. */
function keysOf(callers: readonly Caller[]): KeysSource {
  return { current: new KeyRing('test', callers.map((caller) => ({ digest: sha256(caller.name), caller }))) };
}

function caller(name: string, over: Partial<Caller> = {}): Caller {
  return { name, tier: undefined, team: undefined, meta: {}, models: undefined, limits: {}, budgets: {}, users: undefined, ...over };
}

async function harness(t: TestContext, callers: readonly Caller[], options: { rules?: string; env?: Record<string, string> } = {}): Promise<Harness> {
  const catalog = new LiveCatalog();
  const h = await startHarness({
    env: { OPENROUTER_API_KEY: 'sk-or-server-key', ...options.env }, keys: keysOf(callers), catalog,
    ...(options.rules !== undefined && { rules: options.rules }),
  });
  t.after(() => h.close());
  // The catalog the proxy would fetch: the fake's own (gpt-4o-mini: $0.15 / $0.60 per million).
  catalog.replace(parseCatalog(await (await fetch(`${h.fake.baseUrl}/models`)).json()), Date.now());
  return h;
}

/** A million prompt tokens on gpt-4o-mini: $0.15 a request, far above its reservation (a short prompt, max_tokens 100). */
const DEAR_USAGE = JSON.stringify({ prompt_tokens: 1_000_000 });
const BODY = { model: 'openai/gpt-4o-mini', messages: [{ role: 'user', content: 'Say hello' }], max_tokens: 100 };

function chat(h: Harness, who: string, body: object = BODY, headers: OutgoingHttpHeaders = {}): Promise<RawResponse> {
  return rawRequest(h.url, {
    method: 'POST', path: '/v1/chat/completions',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${who}`, ...headers },
    body: JSON.stringify(body),
  });
}

/** Chat completions the fake received (the test's own GET /models is not one). */
function chatsUpstream(h: Harness): number {
  return h.fake.received.filter((r) => r.url.endsWith('/chat/completions')).length;
}

async function scrape(h: Harness): Promise<string> {
  return (await fetch(`${h.url}/metrics`)).text();
}

function metric(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

test('a daily budget admits requests until the settled spend leaves no room for a reservation, then 429 insufficient_quota, not retried, nothing sent', async (t) => {
  const h = await harness(t, [caller('alice', { budgets: { dailyUsd: 0.5 } })]);
  const statuses: number[] = [];
  for (let i = 0; i < 5; i++) {
    const res = await chat(h, 'alice', BODY, { 'x-fake-usage': DEAR_USAGE });
    statuses.push(res.status);
    await scrape(h);
    if (res.status === 429) {
      assert.deepEqual(jsonOf(res), {
        error: { message: 'Budget exhausted: daily budget of key alice (0.5 USD)', type: 'insufficient_quota', code: 'insufficient_quota' },
      });
      assert.equal(res.headers['x-should-retry'], 'false');
      assert.equal(res.headers['retry-after'], undefined);
    }
  }
  // 0, 0.15, 0.30 and 0.45 spent leave room for a reservation of well under $0.05; 0.60 does not.
  assert.deepEqual(statuses, [200, 200, 200, 200, 429]);
  assert.equal(chatsUpstream(h), 4, 'the refused request never reached upstream');
  const metrics = await scrape(h);
  assert.equal(metric(metrics, 'signalbox_rejections_total{reason="budget"}'), 1);
  assert.ok(Math.abs(metric(metrics, 'signalbox_spend_usd_total{key="alice"}')! - 0.6) < 1e-4, 'four requests at $0.15 (and a few completion tokens)');
  assert.equal(metric(metrics, 'signalbox_budget_remaining_usd{key="alice",period="day"}'), 0);
  assert.equal(metric(metrics, 'signalbox_budget_remaining_usd{key="alice",period="month"}'), undefined, 'no monthly budget: no series');
});

test('concurrent requests cannot overshoot: the reservations alone admit exactly as many as the budget holds', async (t) => {
  // max_tokens 5,000 at $0.60 per million reserves a little over $0.003: three fit in $0.01.
  const h = await harness(t, [caller('alice', { team: { name: 'research', dailyUsd: 0.01 } })]);
  const body = { ...BODY, max_tokens: 5000 };
  h.fake.enqueue(...Array.from({ length: 10 }, () => ({ type: 'manual' as const })));
  const responses = Array.from({ length: 10 }, () => chat(h, 'alice', body));
  // The admitted ones reach the fake and wait there; the others are answered at once.
  const held = await withTimeout(Promise.all([h.fake.nextManual(), h.fake.nextManual(), h.fake.nextManual()]), 'three admitted requests upstream');
  for (const manual of held) {
    manual.writeHead(200, { 'content-type': 'application/json' });
    await manual.end(JSON.stringify({ id: 'gen-x', object: 'chat.completion', model: 'openai/gpt-4o-mini', choices: [{ index: 0, message: { role: 'assistant', content: 'hi' }, finish_reason: 'stop' }] }));
  }
  const statuses = (await Promise.all(responses)).map((r) => r.status).sort();
  assert.deepEqual(statuses, [200, 200, 200, 429, 429, 429, 429, 429, 429, 429]);
  assert.equal(chatsUpstream(h), 3);
});

test('a rule reading budget.remaining_usd routes a caller out of budget to a free model instead of a 429', async (t) => {
  const rules = `
version: 1
rules:
  - name: low-budget
    when: { budget.remaining_usd: { lt: 0.1 } }
    route: { model: "google/gemma-2-9b-it:free" }
`;
  const h = await harness(t, [caller('alice', { budgets: { monthlyUsd: 0.2 } })], { rules });
  assert.equal((await chat(h, 'alice', BODY, { 'x-fake-usage': DEAR_USAGE })).status, 200);
  await scrape(h);
  // $0.05 left: the rule sends it to the free model, which reserves nothing and is admitted.
  const routed = await chat(h, 'alice', BODY, { 'x-fake-usage': DEAR_USAGE });
  assert.equal(routed.status, 200);
  assert.equal(routed.headers['x-signalbox-rule'], 'low-budget');
  assert.equal(JSON.parse(h.fake.received.at(-1)!.body.toString()).model, 'google/gemma-2-9b-it:free');
  // Explain shows the field the rule read, as a request would see it.
  const explain = await rawRequest(h.url, {
    method: 'POST', path: '/v1/routing/explain', headers: { 'content-type': 'application/json', authorization: 'Bearer alice' }, body: JSON.stringify(BODY),
  });
  const fields = jsonOf<{ fields: Record<string, unknown> }>(explain).fields;
  // $0.20 less $0.15 of prompt and a few completion tokens.
  assert.ok(Math.abs((fields['budget.remaining_usd'] as number) - 0.05) < 1e-4, `remaining ${fields['budget.remaining_usd']}`);
});

test('BYOK: the spend is usage.cost (OpenRouter\'s fee) plus cost_details.upstream_inference_cost (the provider\'s price)', async (t) => {
  const h = await harness(t, [caller('alice')]);
  assert.equal((await chat(h, 'alice', BODY, { 'x-fake-usage': JSON.stringify({ prompt_tokens: 1_000_000, byok: true }) })).status, 200);
  const spend = metric(await scrape(h), 'signalbox_spend_usd_total{key="alice"}')!;
  // The price ($0.15 of prompt and a few completion tokens) plus OpenRouter's 5% fee on it; `cost` alone would be under $0.01.
  assert.ok(Math.abs(spend - 0.15 * 1.05) < 1e-4, `spend ${spend}: the price plus the 5% fee`);
});

test('end users: their own budget under their key, bounded by the key\'s; an id that is not a string is a 400', async (t) => {
  const h = await harness(t, [caller('alice', { users: { dailyUsd: 0.1 } })], { env: { USER_SOURCE: 'body.user' } });
  const as = (user: unknown) => chat(h, 'alice', { ...BODY, user }, { 'x-fake-usage': DEAR_USAGE });
  assert.equal((await as('bob')).status, 200);
  await scrape(h);
  const refused = await as('bob');
  assert.equal(refused.status, 429);
  assert.equal(jsonOf<{ error: { message: string } }>(refused).error.message, 'Budget exhausted: daily budget of end user bob (0.1 USD)');
  assert.equal((await as('carol')).status, 200, 'another end user has a budget of its own');
  const bad = await as(42);
  assert.equal(bad.status, 400);
  assert.equal(jsonOf<{ error: { code: string } }>(bad).error.code, 'invalid_user');
});

test('a stream cut before its usage counts its reservation (the catalog\'s price of its worst case), then the generation\'s real cost', { timeout: 30_000 }, async (t) => {
  const rules = `
version: 1
rules:
  - name: watch
    when: { budget.spent_today_usd: { gte: 1000 } }
    route: { reject: { status: 403, message: never } }
`;
  const h = await harness(t, [caller('alice', { budgets: { dailyUsd: 1 } })], { rules, env: { GENERATION_COSTS: 'true' } });
  const spentToday = async () => {
    const explain = await rawRequest(h.url, {
      method: 'POST', path: '/v1/routing/explain', headers: { 'content-type': 'application/json', authorization: 'Bearer alice' }, body: JSON.stringify(BODY),
    });
    return jsonOf<{ fields: Record<string, number> }>(explain).fields['budget.spent_today_usd']!;
  };
  h.fake.enqueue({ type: 'reset-mid-stream', afterEvents: 2 });
  const res = await chat(h, 'alice', { ...BODY, stream: true, max_tokens: 10_000 }, { 'x-request-id': 'cut-1' });
  assert.equal(res.status, 200);
  await scrape(h);
  // 10,000 completion tokens at $0.60 per million and a short prompt: a little over $0.006.
  const provisional = await spentToday();
  assert.ok(provisional > 0.006 && provisional < 0.0061, `provisional spend ${provisional}`);
  assert.equal(metric(await scrape(h), 'signalbox_spend_usd_total{key="alice"}'), undefined, 'the metric waits for the real cost');
  const reconciled = await h.logs.waitFor((r) => r.msg === 'generation cost' && r.reqId === 'cut-1', 15_000);
  const real = reconciled.cost_usd as number;
  assert.ok(real > 0 && real < 0.0001, `the real cost ${real}: the few tokens the stream produced`);
  assert.ok(Math.abs((await spentToday()) - real) < 1e-9, 'the reservation replaced by the real cost');
  assert.ok(Math.abs(metric(await scrape(h), 'signalbox_spend_usd_total{key="alice"}')! - real) < 1e-12);
});

test('a key with a budget may not POST to a pass-through endpoint (not metered); it may read', async (t) => {
  const h = await harness(t, [caller('alice', { budgets: { dailyUsd: 5 } }), caller('free')]);
  const post = (who: string) => rawRequest(h.url, {
    method: 'POST', path: '/v1/embeddings', headers: { 'content-type': 'application/json', authorization: `Bearer ${who}` },
    body: JSON.stringify({ model: 'openai/text-embedding-3-small', input: 'hi' }),
  });
  const refused = await post('alice');
  assert.equal(refused.status, 403);
  assert.equal(jsonOf<{ error: { code: string } }>(refused).error.code, 'endpoint_not_allowed');
  assert.notEqual((await post('free')).status, 403, 'a key without budgets or limits passes through');
  const models = await rawRequest(h.url, { method: 'GET', path: '/v1/models', headers: { authorization: 'Bearer alice' } });
  assert.equal(models.status, 200);
  assert.equal(h.fake.received.filter((r) => r.url.includes('embeddings')).length, 1);
  // A token count generates nothing and costs nothing: coding agents call it before their turns.
  const count = await rawRequest(h.url, {
    method: 'POST', path: '/v1/messages/count_tokens', headers: { 'content-type': 'application/json', 'x-api-key': 'alice' },
    body: JSON.stringify({ model: 'anthropic/claude-3.5-haiku', messages: [{ role: 'user', content: 'hi' }] }),
  });
  assert.notEqual(count.status, 403);
  assert.equal(h.fake.received.at(-1)!.url, '/api/v1/messages/count_tokens');
});

test('a classifier call counts toward its caller: the spend is the request\'s cost plus the classifier\'s', { timeout: 30_000 }, async (t) => {
  const rules = `
version: 1
classifier:
  method: llm
  llm: { timeout_ms: 5000 }
rules:
  - name: hard
    when: { classify.complexity: { in: [complex, frontier] } }
    route: { model: openai/gpt-4o }
`;
  const h = await harness(t, [caller('alice')], { rules });
  h.fake.cannedContent.set('openai/gpt-4o-mini', '{"complexity":"frontier","task":"math","confidence":0.9}');
  const res = await chat(h, 'alice', { ...BODY, model: 'auto' }, { 'x-request-id': 'classified' });
  assert.equal(res.status, 200);
  const line = await h.logs.requestLine('classified');
  const classifierUsd = line.classifier_cost_usd as number;
  assert.ok(classifierUsd > 0);
  const spend = metric(await scrape(h), 'signalbox_spend_usd_total{key="alice"}')!;
  assert.ok(Math.abs(spend - ((line.cost_usd as number) + classifierUsd)) < 1e-12, `spend ${spend}`);
});

test('end users\' rate limits: each end user its own bucket under its key', async (t) => {
  const h = await harness(t, [caller('alice', { users: { rpm: 1 } })], { env: { USER_SOURCE: 'header.x-end-user' } });
  const as = (user: string) => chat(h, 'alice', BODY, { 'x-end-user': user });
  assert.equal((await as('bob')).status, 200);
  const limited = await as('bob');
  assert.equal(limited.status, 429);
  assert.equal(jsonOf<{ error: { message: string } }>(limited).error.message, 'Rate limit reached: requests per minute of end user bob of key alice (1)');
  assert.equal((await as('carol')).status, 200);
});
