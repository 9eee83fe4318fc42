import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Caller } from '../../src/accounts/caller.js';
import { limitDescription, rateLimitHeaders, rateLimitTakes, requestTokenEstimate, resetDuration } from '../../src/accounts/rate-limit.js';
import { DEFAULT_COMPLETION_TOKENS } from '../../src/catalog/estimate.js';

function caller(over: Partial<Caller> = {}): Caller {
  return { name: 'alice', tier: undefined, team: undefined, meta: {}, models: undefined, limits: {}, budgets: {}, users: undefined, ...over };
}

test('takes: key rpm, key tpm, team rpm, team tpm, only those set; tokens capped at the whole tpm', () => {
  const takes = rateLimitTakes(caller({ limits: { rpm: 60, tpm: 1000 }, team: { name: 'research', tpm: 500 } }), 700);
  assert.deepEqual(takes, [
    { key: 'rl:key:alice:rpm', limit: 60, periodMs: 60_000, cost: 1 },
    { key: 'rl:key:alice:tpm', limit: 1000, periodMs: 60_000, cost: 700 },
    { key: 'rl:team:research:tpm', limit: 500, periodMs: 60_000, cost: 500 },
  ]);
  assert.deepEqual(rateLimitTakes(caller(), 10), []);
  assert.equal(limitDescription('rl:team:research:tpm'), 'tokens per minute of team research');
});

test('token estimate: the conservative prompt plus max_tokens, else the default completion', () => {
  const messages = [{ role: 'user', content: 'hi' }];
  const withCap = requestTokenEstimate({ messages, max_tokens: 100 });
  assert.equal(requestTokenEstimate({ messages }) - withCap, DEFAULT_COMPLETION_TOKENS - 100);
});

test('headers: the tightest limit of each unit, reset in OpenAI\'s duration format', () => {
  const headers = rateLimitHeaders([
    { key: 'rl:key:a:rpm', limit: 60, remaining: 59, resetMs: 1000 },
    { key: 'rl:team:t:rpm', limit: 10, remaining: 3, resetMs: 42_500 },
    { key: 'rl:key:a:tpm', limit: 1000, remaining: 0, resetMs: 360_000 },
  ]);
  assert.deepEqual(headers, {
    'x-signalbox-ratelimit-limit-requests': '10',
    'x-signalbox-ratelimit-remaining-requests': '3',
    'x-signalbox-ratelimit-reset-requests': '42.5s',
    'x-signalbox-ratelimit-limit-tokens': '1000',
    'x-signalbox-ratelimit-remaining-tokens': '0',
    'x-signalbox-ratelimit-reset-tokens': '6m0s',
  });
  assert.equal(resetDuration(120.2), '121ms');
  assert.equal(resetDuration(61_000), '1m1s');
});
