import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  ClientClosedError, InvalidJsonError, ShuttingDownError, UpstreamTimeoutError, UpstreamUnreachableError,
} from '../../src/errors.js';
import { compileRules } from '../../src/rules/compile.js';
import { backoffMs, isRetryableError, isRetryableStatus, nextAttempt, retryAfterMs, withRetryOverride, type RetryPolicy } from '../../src/upstream/retry.js';

/** The global defaults of src/config/settings.ts. */
const DEFAULTS: RetryPolicy = {
  maxAttempts: 3,
  statuses: new Set([429, 500, 502, 503, 504]),
  budgetMs: 30_000,
  retryAfterCapMs: 60_000,
  onNetworkErrors: true,
};

function policy(overrides: Partial<RetryPolicy> = {}): RetryPolicy {
  return { ...DEFAULTS, ...overrides };
}

/** A fixed clock: Wednesday 4 March 2026, 15:00:00 UTC. */
const NOW = Date.UTC(2026, 2, 4, 15, 0, 0);

// --- retryAfterMs -------------------------------------------------------------------------------

test('retryAfterMs reads retry-after-ms as milliseconds', () => {
  assert.equal(retryAfterMs({ 'retry-after-ms': '1500' }, NOW), 1500);
});

test('retryAfterMs rounds a fractional retry-after-ms up', () => {
  assert.equal(retryAfterMs({ 'retry-after-ms': '12.2' }, NOW), 13);
});

test('retryAfterMs reads retry-after as seconds', () => {
  assert.equal(retryAfterMs({ 'retry-after': '7' }, NOW), 7000);
});

test('retryAfterMs reads retry-after as an HTTP date, relative to now', () => {
  const date = new Date(NOW + 30_000).toUTCString();
  assert.equal(date, 'Wed, 04 Mar 2026 15:00:30 GMT');
  assert.equal(retryAfterMs({ 'retry-after': date }, NOW), 30_000);
});

test('retryAfterMs of an HTTP date in the past is 0', () => {
  assert.equal(retryAfterMs({ 'retry-after': new Date(NOW - 5000).toUTCString() }, NOW), 0);
});

test('retryAfterMs of an unreadable value is undefined', () => {
  assert.equal(retryAfterMs({ 'retry-after': 'soon, maybe' }, NOW), undefined);
  assert.equal(retryAfterMs({ 'retry-after': '' }, NOW), undefined);
  assert.equal(retryAfterMs({ 'retry-after': '5 minutes' }, NOW), undefined);
  assert.equal(retryAfterMs({ 'retry-after-ms': 'soon' }, NOW), undefined);
});

test('retryAfterMs of a value that is neither delay-seconds nor an HTTP date is undefined', () => {
  // RFC 9110 §10.2.3: Retry-After = HTTP-date / delay-seconds (1*DIGIT). These are neither,
  // although a lenient date parser reads them as dates in 2001.
  for (const value of ['1.5', '-5', 'May 2']) {
    assert.equal(retryAfterMs({ 'retry-after': value }, NOW), undefined, `retry-after: ${value}`);
  }
});

test('retryAfterMs without either header is undefined', () => {
  assert.equal(retryAfterMs({}, NOW), undefined);
  assert.equal(retryAfterMs({ 'content-type': 'application/json' }, NOW), undefined);
});

test('retryAfterMs prefers retry-after-ms over retry-after', () => {
  assert.equal(retryAfterMs({ 'retry-after-ms': '250', 'retry-after': '7' }, NOW), 250);
});

test('retryAfterMs falls back to retry-after when retry-after-ms is unreadable', () => {
  assert.equal(retryAfterMs({ 'retry-after-ms': 'soon', 'retry-after': '2' }, NOW), 2000);
});

test('retryAfterMs reads the first value of a repeated header', () => {
  assert.equal(retryAfterMs({ 'retry-after': ['3', '9'] }, NOW), 3000);
});

// --- isRetryableStatus --------------------------------------------------------------------------

test('isRetryableStatus is true for every default status', () => {
  for (const status of [429, 500, 502, 503, 504]) {
    assert.equal(isRetryableStatus(DEFAULTS, status, {}), true, `status ${status}`);
  }
});

test('isRetryableStatus is false for the statuses that are the request\'s fault', () => {
  for (const status of [400, 401, 403, 404, 422]) {
    assert.equal(isRetryableStatus(DEFAULTS, status, {}), false, `status ${status}`);
    // A Retry-After does not make them retryable.
    assert.equal(isRetryableStatus(DEFAULTS, status, { 'retry-after': '1' }), false, `status ${status} with retry-after`);
  }
});

test('isRetryableStatus is false for 402 without Retry-After', () => {
  assert.equal(isRetryableStatus(DEFAULTS, 402, {}), false);
  assert.equal(isRetryableStatus(DEFAULTS, 402, { 'retry-after': 'garbage' }), false);
});

test('isRetryableStatus is true for 402 with Retry-After (seconds or milliseconds)', () => {
  assert.equal(isRetryableStatus(DEFAULTS, 402, { 'retry-after': '5' }), true);
  assert.equal(isRetryableStatus(DEFAULTS, 402, { 'retry-after-ms': '10' }), true);
});

test('isRetryableStatus follows the policy\'s statuses, not the defaults', () => {
  const only500 = policy({ statuses: new Set([500]) });
  assert.equal(isRetryableStatus(only500, 500, {}), true);
  assert.equal(isRetryableStatus(only500, 503, {}), false);
  assert.equal(isRetryableStatus(only500, 429, {}), false);
});

// --- isRetryableError ---------------------------------------------------------------------------

test('isRetryableError is true for upstream_unreachable and upstream_timeout', () => {
  assert.equal(isRetryableError(DEFAULTS, new UpstreamUnreachableError('ECONNRESET socket hang up')), true);
  assert.equal(isRetryableError(DEFAULTS, new UpstreamTimeoutError('headers', 150)), true);
  assert.equal(isRetryableError(DEFAULTS, new UpstreamTimeoutError('connect', 150)), true);
});

test('isRetryableError is false for other errors', () => {
  assert.equal(isRetryableError(DEFAULTS, new ClientClosedError()), false);
  assert.equal(isRetryableError(DEFAULTS, new ShuttingDownError()), false);
  assert.equal(isRetryableError(DEFAULTS, new InvalidJsonError('x')), false);
});

test('isRetryableError is false for every error when onNetworkErrors is false', () => {
  const off = policy({ onNetworkErrors: false });
  assert.equal(isRetryableError(off, new UpstreamUnreachableError('ECONNREFUSED')), false);
  assert.equal(isRetryableError(off, new UpstreamTimeoutError('headers', 150)), false);
});

// --- backoffMs ----------------------------------------------------------------------------------

test('backoffMs is 250 ms doubling per attempt, 20% below with random 0', () => {
  assert.deepEqual([1, 2, 3, 4].map((a) => backoffMs(a, () => 0)), [200, 400, 800, 1600]);
});

test('backoffMs is 20% above with random 1', () => {
  assert.deepEqual([1, 2, 3, 4].map((a) => backoffMs(a, () => 1)), [300, 600, 1200, 2400]);
});

test('backoffMs is the base itself with random 0.5', () => {
  assert.deepEqual([1, 2, 3].map((a) => backoffMs(a, () => 0.5)), [250, 500, 1000]);
});

test('backoffMs with the real random stays within ±20% of the base', () => {
  for (let i = 0; i < 200; i++) {
    const ms = backoffMs(2);
    assert.ok(ms >= 400 && ms <= 600, `backoffMs(2) = ${ms}`);
  }
});

// --- nextAttempt --------------------------------------------------------------------------------

test('nextAttempt stops when the attempts are used up', () => {
  assert.deepEqual(nextAttempt(DEFAULTS, 3, 0, undefined, false), { retry: false, reason: 'attempts' });
  assert.deepEqual(nextAttempt(policy({ maxAttempts: 1 }), 1, 0, undefined, false), { retry: false, reason: 'attempts' });
});

test('nextAttempt stops on a Retry-After over the cap', () => {
  const roomy = policy({ budgetMs: 1_000_000 });
  assert.deepEqual(nextAttempt(roomy, 1, 0, 60_001, false), { retry: false, reason: 'retry_after_over_cap' });
  assert.deepEqual(nextAttempt(roomy, 1, 0, 120_000, true), { retry: false, reason: 'retry_after_over_cap' });
  // Exactly the cap is still waited for.
  assert.deepEqual(nextAttempt(roomy, 1, 0, 60_000, false), { retry: true, waitMs: 60_000 });
});

test('nextAttempt stops when elapsed time plus the wait reaches the budget', () => {
  assert.deepEqual(nextAttempt(DEFAULTS, 1, 29_950, 50, false), { retry: false, reason: 'budget' });
  assert.deepEqual(nextAttempt(DEFAULTS, 1, 29_949, 50, false), { retry: true, waitMs: 50 });
  assert.deepEqual(nextAttempt(DEFAULTS, 1, 30_000, undefined, false), { retry: false, reason: 'budget' });
  assert.deepEqual(nextAttempt(policy({ budgetMs: 1000, retryAfterCapMs: 200_000 }), 1, 0, 120_000, false), { retry: false, reason: 'budget' });
});

test('nextAttempt counts the backoff against the budget when retrying the same model', (t) => {
  t.mock.method(Math, 'random', () => 0); // backoff of attempt 1: 200 ms
  assert.deepEqual(nextAttempt(policy({ budgetMs: 1000 }), 1, 800, undefined, true), { retry: false, reason: 'budget' });
  assert.deepEqual(nextAttempt(policy({ budgetMs: 1000 }), 1, 799, undefined, true), { retry: true, waitMs: 200 });
});

test('nextAttempt waits the larger of Retry-After and the backoff when retrying the same model', (t) => {
  t.mock.method(Math, 'random', () => 0); // backoff: 200 ms after attempt 1, 400 ms after attempt 2
  assert.deepEqual(nextAttempt(DEFAULTS, 1, 0, undefined, true), { retry: true, waitMs: 200 });
  assert.deepEqual(nextAttempt(DEFAULTS, 2, 0, undefined, true), { retry: true, waitMs: 400 });
  assert.deepEqual(nextAttempt(DEFAULTS, 1, 0, 100, true), { retry: true, waitMs: 200 });
  assert.deepEqual(nextAttempt(DEFAULTS, 1, 0, 1500, true), { retry: true, waitMs: 1500 });
});

test('nextAttempt waits only the Retry-After when switching model', () => {
  assert.deepEqual(nextAttempt(DEFAULTS, 1, 0, 50, false), { retry: true, waitMs: 50 });
  assert.deepEqual(nextAttempt(DEFAULTS, 2, 0, 1500, false), { retry: true, waitMs: 1500 });
});

test('nextAttempt switches model at once without Retry-After', () => {
  assert.deepEqual(nextAttempt(DEFAULTS, 1, 0, undefined, false), { retry: true, waitMs: 0 });
  assert.deepEqual(nextAttempt(DEFAULTS, 2, 10_000, undefined, false), { retry: true, waitMs: 0 });
});

test('withRetryOverride: a rule\'s retry settings over the global ones, merged once per rule and then returned as is', () => {
  const rules = compileRules(JSON.stringify({
    version: 1,
    rules: [
      { name: 'statuses', when: { 'header.x-rule': 'statuses' }, route: { model: 'm', retry: { max_attempts: 2, statuses: [502, 503] } } },
      { name: 'budget', when: { 'header.x-rule': 'budget' }, route: { pass: true, retry: { budget_ms: 5000 } } },
    ],
  }), 'test.yaml');
  const decide = (rule: string) => rules.decide({ headers: { 'x-rule': rule }, body: {}, requestedModel: undefined }).retry!;
  const first = decide('statuses');
  assert.ok(first.statuses instanceof Set, 'statuses compiled into a set with the rule');
  assert.equal(decide('statuses'), first, 'the same override object for every request the rule decides');

  const merged = withRetryOverride(DEFAULTS, first);
  assert.deepEqual({ ...merged, statuses: [...merged.statuses] }, {
    maxAttempts: 2, statuses: [502, 503], budgetMs: 30_000, retryAfterCapMs: 60_000, onNetworkErrors: true,
  });
  assert.equal(withRetryOverride(DEFAULTS, first), merged, 'the same policy object the second time');
  assert.ok(Object.isFrozen(merged));
  assert.equal(isRetryableStatus(merged, 503, {}), true);
  assert.equal(isRetryableStatus(merged, 500, {}), false);

  const other = policy({ maxAttempts: 5 });
  assert.equal(withRetryOverride(other, first).budgetMs, 30_000);
  assert.notEqual(withRetryOverride(other, first), merged, 'keyed on the base too: another app\'s policy is another merge');
  assert.equal(withRetryOverride(other, first).maxAttempts, 2);

  const budget = withRetryOverride(DEFAULTS, decide('budget'));
  assert.equal(budget.budgetMs, 5000);
  assert.equal(budget.statuses, DEFAULTS.statuses, 'what the rule leaves out is the global setting');
  assert.equal(budget.maxAttempts, 3);
});
