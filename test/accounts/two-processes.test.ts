import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { createHash } from 'node:crypto';
import { FakeOpenRouter } from '../../src/dev/fake-openrouter.js';
import { startMain } from '../support/main-process.js';
import { startRedis } from '../support/redis.js';
import { withTimeout } from '../support/timeout.js';

/**
 * Issue 16, item 7: two Signalbox processes (the real main.js, two OS processes) against one real
 * redis-server, under 200 concurrent requests: a key's rate limit and another key's budget hold
 * across both, exactly. The catalog file of the processes lists the model without a price, so
 * every request reserves UNPRICED_RESERVE_USD ($0.50): a $2 daily budget holds four requests in
 * flight. The budget's requests hang upstream (`x-fake-fault: hang`) until the test has counted
 * every refusal, so none settles (and frees its reservation) early.
 */
test('two processes on one Redis: 200 concurrent requests, a 50 rpm limit admits exactly 50 and a $2 budget exactly four $0.50 reservations', { timeout: 120_000 }, async (t) => {
  const redis = await startRedis(t);
  const fake = new FakeOpenRouter();
  const upstream = await fake.listen();
  t.after(() => fake.close());
  const dir = mkdtempSync(join(tmpdir(), 'signalbox-replicas-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const keysFile = join(dir, 'keys.yaml');
  const digest = (key: string) => createHash('sha256').update(key).digest('hex');
  writeFileSync(keysFile, [
    'version: 1',
    'keys:',
    `  - { name: limited, sha256: ${digest('sk-sb-limited')}, rpm: 50 }`,
    `  - { name: budgeted, sha256: ${digest('sk-sb-budgeted')}, daily_usd: 2 }`,
    '',
  ].join('\n'));
  const env = { KEYS_FILE: keysFile, REDIS_URL: redis.url, REDIS_COMMAND_TIMEOUT_MS: '5000', RETRY_MAX_ATTEMPTS: '1' };
  const replicas = await Promise.all([startMain(t, upstream, env), startMain(t, upstream, env)]);

  const body = JSON.stringify({ model: 'openai/gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] });
  const hanging = new AbortController();
  const send = (i: number, key: string, headers: Record<string, string> = {}) =>
    fetch(`${replicas[i % 2]!.origin}/v1/chat/completions`, {
      method: 'POST', body, headers: { 'content-type': 'application/json', authorization: `Bearer ${key}`, ...headers },
      ...(key === 'sk-sb-budgeted' && { signal: hanging.signal }),
    }).then(async (res) => {
      await res.arrayBuffer();
      return res.status;
    });
  let budgetAnswers = 0;
  let allRefused: () => void = () => {};
  const refusedSeen = new Promise<void>((resolve) => (allRefused = resolve));
  const budgeted = Array.from({ length: 100 }, (_, i) => send(i, 'sk-sb-budgeted', { 'x-fake-fault': '{"type":"hang"}' }).then((status) => {
    if (++budgetAnswers === 96) allRefused();
    return status;
  }, () => 'aborted' as const));
  const limited = Array.from({ length: 100 }, (_, i) => send(i, 'sk-sb-limited'));

  const limitedStatuses = await withTimeout(Promise.all(limited), 'the rate-limited key\'s 100 answers');
  assert.equal(limitedStatuses.filter((s) => s === 200).length, 50, 'the rate limit holds across both processes');
  assert.equal(limitedStatuses.filter((s) => s === 429).length, 50);

  // 96 budget refusals come back at once; the four admitted requests hang upstream.
  await withTimeout(refusedSeen, '96 answers for the budgeted key');
  const upstreamBudgeted = fake.received.filter((r) => r.headers['x-fake-fault'] !== undefined).length;
  assert.equal(upstreamBudgeted, 4, 'exactly four $0.50 reservations fit in $2 across both processes');
  hanging.abort();
  const budgetStatuses = await withTimeout(Promise.all(budgeted), 'the budgeted key\'s requests to end');
  assert.equal(budgetStatuses.filter((s) => s === 429).length, 96);
  assert.equal(budgetStatuses.filter((s) => s === 'aborted').length, 4);

  for (const replica of replicas) replica.child.kill('SIGTERM');
  const exits = await withTimeout(Promise.all(replicas.map((r) => r.exit)), 'both processes to exit');
  assert.deepEqual(exits.map((e) => e.code), [0, 0]);
});
