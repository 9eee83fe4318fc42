import assert from 'node:assert/strict';
import type { OutgoingHttpHeaders } from 'node:http';
import { test, type TestContext } from 'node:test';
import type { Caller, TeamPolicy } from '../../src/accounts/caller.js';
import { KeyRing, sha256 } from '../../src/accounts/keys-file.js';
import type { KeysSource } from '../../src/server/client-auth.js';
import { CHAT_BODY, startHarness, type Harness } from '../support/harness.js';
import { jsonOf, rawRequest, type RawResponse } from '../support/http.js';

/** Client keys whose key is the caller's name: `chat(h, 'alice')` presents the key `alice`. */
function keysOf(callers: Record<string, Caller>): KeysSource {
  return { current: new KeyRing('test', Object.entries(callers).map(([key, caller]) => ({ digest: sha256(key), caller }))) };
}

async function harness(t: TestContext, callers: Record<string, Caller>): Promise<{ h: Harness; clock: { now: number } }> {
  const clock = { now: 1_000_000 };
  const h = await startHarness({
    env: { OPENROUTER_API_KEY: 'sk-or-server-key' },
    keys: keysOf(callers),
    app: { limits: { clock: () => clock.now } },
  });
  t.after(() => h.close());
  return { h, clock };
}

function caller(name: string, limits: Caller['limits'], team?: TeamPolicy): Caller {
  return { name, tier: undefined, team, meta: {}, models: undefined, limits, budgets: {}, users: undefined };
}

function chat(h: Harness, who: string, body: object = CHAT_BODY, headers: OutgoingHttpHeaders = {}): Promise<RawResponse> {
  return rawRequest(h.url, {
    method: 'POST', path: '/v1/chat/completions',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${who}`, ...headers },
    body: JSON.stringify(body),
  });
}

async function scrape(h: Harness): Promise<string> {
  return (await fetch(`${h.url}/metrics`)).text();
}

test('a key limited to 2 rpm gets two 200s, then a 429 with Retry-After and its headers, and nothing upstream', async (t) => {
  const { h } = await harness(t, { alice: caller('alice', { rpm: 2 }) });
  const first = await chat(h, 'alice');
  const second = await chat(h, 'alice');
  assert.deepEqual([first.status, second.status], [200, 200]);
  assert.equal(first.headers['x-signalbox-ratelimit-limit-requests'], '2');
  assert.equal(first.headers['x-signalbox-ratelimit-remaining-requests'], '1');
  assert.equal(first.headers['x-signalbox-ratelimit-reset-requests'], '30s');
  assert.equal(second.headers['x-signalbox-ratelimit-remaining-requests'], '0');
  assert.equal(first.headers['x-ratelimit-limit'], '200', "upstream's own x-ratelimit-* are relayed untouched");
  assert.equal(first.headers['x-signalbox-ratelimit-limit-tokens'], undefined, 'no tpm: no token headers');

  const limited = await chat(h, 'alice');
  assert.equal(limited.status, 429);
  assert.deepEqual(jsonOf(limited), {
    error: { message: 'Rate limit reached: requests per minute of key alice (2)', type: 'rate_limit_error', code: 'rate_limit_exceeded' },
  });
  assert.equal(limited.headers['retry-after'], '30');
  assert.equal(limited.headers['x-should-retry'], 'true');
  assert.equal(limited.headers['x-signalbox-ratelimit-remaining-requests'], '0');
  assert.equal(limited.headers['x-signalbox-ratelimit-reset-requests'], '1m0s');
  assert.equal(h.fake.received.length, 2, 'the refused request never reached upstream');
  assert.match(await scrape(h), /signalbox_rejections_total\{reason="rate_limit"\} 1\n/);
});

test('a team limit is shared by its keys; explain is not limited', async (t) => {
  const research: TeamPolicy = { name: 'research', rpm: 2 };
  const { h, clock } = await harness(t, { alice: caller('alice', { rpm: 10 }, research), bob: caller('bob', {}, research) });
  assert.equal((await chat(h, 'alice')).status, 200);
  const bob = await chat(h, 'bob');
  assert.equal(bob.status, 200);
  assert.equal(bob.headers['x-signalbox-ratelimit-limit-requests'], '2', 'the tightest limit is the team\'s');
  const limited = await chat(h, 'alice');
  assert.equal(limited.status, 429);
  assert.match(jsonOf<{ error: { message: string } }>(limited).error.message, /of team research \(2\)/);
  const explain = await rawRequest(h.url, {
    method: 'POST', path: '/v1/routing/explain', headers: { 'content-type': 'application/json', authorization: 'Bearer bob' }, body: JSON.stringify(CHAT_BODY),
  });
  assert.equal(explain.status, 200);
  clock.now += 30_000;
  assert.equal((await chat(h, 'bob')).status, 200, 'one request is back after Retry-After');
  assert.equal(h.fake.received.length, 3);
});

test('tokens: the estimate is corrected by the usage the response reports', async (t) => {
  const { h } = await harness(t, { alice: caller('alice', { tpm: 1000 }) });
  const body = { ...CHAT_BODY, max_tokens: 600 };
  const first = await chat(h, 'alice', body);
  assert.equal(first.status, 200);
  const afterEstimate = Number(first.headers['x-signalbox-ratelimit-remaining-tokens']);
  assert.ok(afterEstimate < 400, `the estimate (over 600) was taken: ${afterEstimate} left`);
  // The scrape flushes the recorder, which settles the charge to the real count (a few tokens).
  await scrape(h);
  const second = await chat(h, 'alice', body);
  assert.equal(second.status, 200, 'without the correction, two estimates of over 600 would not fit in 1000');
  const usage = jsonOf<{ usage: { prompt_tokens: number; completion_tokens: number } }>(first).usage;
  const estimate = 1000 - afterEstimate;
  assert.equal(Number(second.headers['x-signalbox-ratelimit-remaining-tokens']), 1000 - (usage.prompt_tokens + usage.completion_tokens) - estimate);
});

test('no limits: no store call, no headers', async (t) => {
  const { h } = await harness(t, { alice: caller('alice', {}) });
  const res = await chat(h, 'alice');
  assert.equal(res.status, 200);
  assert.equal(Object.keys(res.headers).some((name) => name.startsWith('x-signalbox-ratelimit-')), false);
});

test('a 401 from client authentication is counted as a rejection with reason auth', async (t) => {
  const h = await startHarness({ env: { SIGNALBOX_API_KEYS: 'sk-client-secret', OPENROUTER_API_KEY: 'sk-or-server-key' } });
  t.after(() => h.close());
  assert.equal((await chat(h, 'nobody')).status, 401);
  assert.match(await scrape(h), /signalbox_rejections_total\{reason="auth"\} 1\n/);
});

test('with REDIS_URL two proxies share one Redis: 200 concurrent requests of one key across both admit exactly its limit', { timeout: 60_000 }, async (t) => {
  const { startRedis } = await import('../support/redis.js');
  const redis = await startRedis(t);
  const clock = { now: 5_000_000 };
  const callers = { alice: caller('alice', { rpm: 50 }) };
  const replica = async () => {
    const h = await startHarness({
      env: { OPENROUTER_API_KEY: 'sk-or-server-key', REDIS_URL: redis.url },
      keys: keysOf(callers),
      app: { limits: { clock: () => clock.now } },
    });
    t.after(() => h.close());
    return h;
  };
  const [a, b] = [await replica(), await replica()];
  const answers = await Promise.all(Array.from({ length: 200 }, (_, i) => chat(i % 2 === 0 ? a : b, 'alice')));
  const statuses = answers.map((r) => r.status);
  assert.equal(statuses.filter((s) => s === 200).length, 50, 'the limit holds across both replicas');
  assert.equal(statuses.filter((s) => s === 429).length, 150);
  assert.equal(a.fake.received.length + b.fake.received.length, 50, 'nothing upstream for the refused ones');
});

test('the Redis store\'s health is scraped: up 1, then Redis killed: up 0 and the failed checks counted by mode (open admits, closed 503s)', { timeout: 60_000 }, async (t) => {
  const { startRedis } = await import('../support/redis.js');
  const { withTimeout } = await import('../support/timeout.js');
  const redis = await startRedis(t);
  const callers = { alice: caller('alice', { rpm: 50 }) };
  const replica = async (mode: string) => {
    const h = await startHarness({
      env: { OPENROUTER_API_KEY: 'sk-or-server-key', REDIS_URL: redis.url, REDIS_FAILURE_MODE: mode },
      keys: keysOf(callers),
    });
    t.after(() => h.close());
    return h;
  };
  const [open, closed] = [await replica('open'), await replica('closed')];
  // The client connects in the background: wait (bounded) until each replica reports it up.
  const untilUp = async (h: Harness) => {
    while (!/^signalbox_limit_store_up 1$/m.test(await scrape(h))) await new Promise((resolve) => setImmediate(resolve));
  };
  await withTimeout(Promise.all([untilUp(open), untilUp(closed)]), 'both replicas to reach Redis');
  assert.equal((await chat(open, 'alice')).status, 200);
  assert.match(await scrape(open), /^signalbox_limit_store_failures_total\{mode="open"\} 0$/m);

  await redis.kill();
  assert.equal((await chat(open, 'alice')).status, 200, 'fail open: admitted under the replica\'s own limits');
  assert.equal((await chat(closed, 'alice')).status, 503, 'fail closed');
  const [afterOpen, afterClosed] = [await scrape(open), await scrape(closed)];
  assert.match(afterOpen, /^signalbox_limit_store_up 0$/m);
  assert.match(afterOpen, /^signalbox_limit_store_failures_total\{mode="open"\} 1$/m);
  assert.match(afterOpen, /^signalbox_limit_store_failures_total\{mode="closed"\} 0$/m);
  assert.match(afterClosed, /^signalbox_limit_store_up 0$/m);
  assert.match(afterClosed, /^signalbox_limit_store_failures_total\{mode="closed"\} 1$/m);
  assert.doesNotMatch(afterOpen, /redis:\/\//, 'the URL (it may hold a password) is in no series');

  const memory = await startHarness();
  t.after(() => memory.close());
  assert.doesNotMatch(await scrape(memory), /signalbox_limit_store_/, 'no Redis, no store series');
});
