import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ClientClosedError, InternalError, UpstreamTimeoutError, UpstreamUnreachableError } from '../../src/errors.js';
import { AttemptMachine, NO_RETRY, type AttemptMachineOptions, type AttemptPlan, type AttemptStep } from '../../src/upstream/attempts.js';
import { ModelCooldowns } from '../../src/upstream/cooldown.js';
import type { RetryPolicy } from '../../src/upstream/retry.js';

/** A wall-clock instant on a whole second, so that an HTTP-date Retry-After is exact. */
const T0 = 1_700_000_000_000;
const K = 'key-1';
const POLICY: RetryPolicy = {
  maxAttempts: 3, statuses: new Set([429, 500, 502, 503]), budgetMs: 10_000, retryAfterCapMs: 5000, onNetworkErrors: true,
};
/** Jitter factor 1: backoffs are exactly 250 ms, 500 ms, 1 s... */
const NO_JITTER = (): number => 0.5;

function breaker(failures = 2): ModelCooldowns {
  return new ModelCooldowns({ failures, windowMs: 1000, durationMs: 5000, maxEntries: 10 });
}

/** A plan factory over `models` that counts how often it is built. */
function planOf(models: readonly string[]): { factory: () => AttemptPlan; built: () => number } {
  let built = 0;
  const factory = (): AttemptPlan => {
    built++;
    return { models, bodyFor: (m) => `body:${m.join(',')}` };
  };
  return { factory, built: () => built };
}

function machine(overrides: Partial<AttemptMachineOptions> & { route?: readonly string[] } = {}): {
  m: AttemptMachine; cooldowns: ModelCooldowns; built: () => number;
} {
  const cooldowns = overrides.cooldowns ?? breaker();
  const route = overrides.route ?? ['a', 'b'];
  const { factory, built } = planOf(route);
  const m = new AttemptMachine({
    policy: POLICY, cooldowns, credential: K, model: route[0], body: 'client-bytes', plan: factory,
    firstTokenTimeoutMs: 0, startedAt: T0, random: NO_JITTER, ...overrides,
  });
  return { m, cooldowns, built };
}

function head(status: number, headers: Record<string, string> = {}, sse = false) {
  return { kind: 'head', status, headers, sse } as const;
}

function failed(error: InstanceType<typeof UpstreamUnreachableError> | InternalError | ClientClosedError | UpstreamTimeoutError) {
  return { kind: 'failed', error } as const;
}

function assertSend(step: AttemptStep, attempt: number, model: string | undefined, body: string): void {
  assert.deepEqual(step, { kind: 'send', attempt, model, body });
}

test('a first attempt that succeeds with an empty breaker never builds the plan, and relays', () => {
  const { m, cooldowns, built } = machine();
  assertSend(m.start(T0 + 1), 1, 'a', 'client-bytes');
  assert.deepEqual(m.next(head(200), T0 + 41), { kind: 'relay' });
  assert.equal(built(), 0);
  assert.equal(cooldowns.size, 0);
  assert.equal(m.count, 1);
  assert.deepEqual(m.attempts, [{ attempt: 1, model: 'a', outcome: 200, sentAt: T0 + 1, durationMs: 40, retry: undefined }]);
  m.release();
});

test('with breaker state, the first attempt builds the plan and leaves cooling models out', () => {
  const cooldowns = breaker(1);
  cooldowns.recordFailure('a', K, 'upstream', T0);
  const { m, built } = machine({ cooldowns });
  assertSend(m.start(T0 + 10), 1, 'b', 'body:b');
  assert.equal(built(), 1);
});

test('a 5xx is retried on the fallback without backoff, then on the same last model with backoff', () => {
  const { m, built } = machine();
  m.start(T0);
  assert.deepEqual(m.next(head(502), T0 + 100), { kind: 'wait', ms: 0 });
  assert.equal(built(), 1);
  assertSend(m.waited(T0 + 100), 2, 'b', 'body:b');
  // b is the last model and not cooling (2 failures needed): the same model again, after 500 ms (attempt 2).
  assert.deepEqual(m.next(head(503), T0 + 200), { kind: 'wait', ms: 500 });
  assertSend(m.waited(T0 + 700), 3, 'b', 'body:b');
  assert.deepEqual(m.next(head(200), T0 + 800), { kind: 'relay' });
  assert.equal(built(), 1, 'the plan is built once');
  assert.deepEqual(m.attempts.map((a) => [a.model, a.outcome, a.retry]), [
    ['a', 502, { to: 'b', reason: '502', waitMs: 0 }],
    ['b', 503, { to: 'b', reason: '503', waitMs: 500 }],
    ['b', 200, undefined],
  ]);
});

test('a single-model route retries the same model with backoff', () => {
  const { m } = machine({ route: ['a'] });
  m.start(T0);
  assert.deepEqual(m.next(head(500), T0 + 10), { kind: 'wait', ms: 250 });
  assertSend(m.waited(T0 + 260), 2, 'a', 'body:a');
});

test('Retry-After is honoured (seconds, and an HTTP date read against the given now); over the cap the answer is relayed', () => {
  const seconds = machine().m;
  seconds.start(T0);
  assert.deepEqual(seconds.next(head(503, { 'retry-after': '2' }), T0 + 50), { kind: 'wait', ms: 2000 });

  const date = machine({ route: ['a'] }).m;
  date.start(T0);
  // The date is 3 s after `now`: the wait is exactly that, so the machine read no clock of its own.
  assert.deepEqual(date.next(head(503, { 'retry-after': new Date(T0 + 3000).toUTCString() }), T0), { kind: 'wait', ms: 3000 });

  const overCap = machine().m;
  overCap.start(T0);
  assert.deepEqual(overCap.next(head(429, { 'retry-after': '6' }), T0 + 50), { kind: 'relay' });
  assert.equal(overCap.attempts[0]!.retry, undefined);
});

test('an exhausted budget relays the answer, or gives up with the error', () => {
  const answered = machine({ route: ['a'] }).m;
  answered.start(T0 + 9_700);
  // 9.8 s elapsed + 250 ms backoff reaches the 10 s budget.
  assert.deepEqual(answered.next(head(500), T0 + 9_800), { kind: 'relay' });

  const unanswered = machine({ route: ['a'] }).m;
  unanswered.start(T0 + 9_700);
  const error = new UpstreamUnreachableError('ECONNREFUSED');
  assert.deepEqual(unanswered.next(failed(error), T0 + 9_800), { kind: 'give_up', error });
});

test('a network error is retried only with onNetworkErrors, but always counts for the breaker', () => {
  const error = new UpstreamUnreachableError('ECONNRESET');
  const off = machine({ cooldowns: breaker(1), policy: { ...POLICY, onNetworkErrors: false } });
  off.m.start(T0);
  assert.deepEqual(off.m.next(failed(error), T0 + 5), { kind: 'give_up', error });
  assert.equal(off.cooldowns.isCooling('a', K, T0 + 6), true, 'counted although not retried');
  assert.equal(off.built(), 0, 'no retry: no plan');

  const on = machine({ cooldowns: breaker(1) });
  on.m.start(T0);
  const timeout = new UpstreamTimeoutError('headers', 1000);
  assert.deepEqual(on.m.next(failed(timeout), T0 + 5), { kind: 'wait', ms: 0 });
  assert.deepEqual(on.m.attempts[0]!.retry, { to: 'b', reason: 'upstream_timeout', waitMs: 0 });
  assert.equal(on.m.attempts[0]!.outcome, 'upstream_timeout');
  assert.equal(on.cooldowns.isCooling('a', K, T0 + 6), true);
});

test('an internal error is neither retried nor counted for the breaker', () => {
  const { m, cooldowns } = machine({ cooldowns: breaker(1) });
  m.start(T0);
  const error = new InternalError();
  assert.deepEqual(m.next(failed(error), T0 + 5), { kind: 'give_up', error });
  assert.equal(cooldowns.size, 0);
  assert.equal(m.attempts[0]!.outcome, 'internal_error');
});

/** A breaker where `a` cooled down at T0 and its cooldown (5 s) has ended by T0 + 5000. */
function cooledA(): ModelCooldowns {
  const cooldowns = breaker(1);
  cooldowns.recordFailure('a', K, 'upstream', T0);
  return cooldowns;
}

test('the first attempt after a cooldown takes the probe; release() frees it, and is idempotent', () => {
  const cooldowns = cooledA();
  const first = machine({ cooldowns }).m;
  assertSend(first.start(T0 + 5000), 1, 'a', 'body:a,b');
  // Another request meanwhile sees `a` still cooling (its probe is in flight) and goes to `b`.
  const second = machine({ cooldowns }).m;
  assertSend(second.start(T0 + 5001), 1, 'b', 'body:b');
  first.release();
  first.release();
  assert.equal(cooldowns.isCooling('a', K, T0 + 5002), false, 'the probe is free again');
  const third = machine({ cooldowns }).m;
  assertSend(third.start(T0 + 5003), 1, 'a', 'body:a,b');
});

test('a client that leaves gives up with no breaker outcome, and frees the probe', () => {
  const cooldowns = cooledA();
  const { m } = machine({ cooldowns });
  m.start(T0 + 5000);
  assert.equal(cooldowns.isCooling('a', K, T0 + 5001), true, 'probing');
  const error = new ClientClosedError();
  assert.deepEqual(m.next(failed(error), T0 + 5010), { kind: 'give_up', error });
  assert.equal(cooldowns.isCooling('a', K, T0 + 5011), false, 'probe released, no new cooldown started');
  assert.equal(m.attempts[0]!.outcome, 'client_closed_request');
});

test('a probe that succeeds closes the breaker; one that fails cools the model again at once', () => {
  const good = cooledA();
  const ok = machine({ cooldowns: good }).m;
  ok.start(T0 + 5000);
  ok.next(head(200), T0 + 5010);
  assert.equal(good.size, 0);

  const bad = cooledA();
  const ko = machine({ cooldowns: bad }).m;
  ko.start(T0 + 5000);
  assert.deepEqual(ko.next(head(500), T0 + 5010), { kind: 'wait', ms: 0 });
  assert.deepEqual(bad.cooling(T0 + 5010), { a: T0 + 10_010 });
});

test('a 429 cools the model for the credential that was sent only', () => {
  const { m, cooldowns } = machine({ cooldowns: breaker(1) });
  m.start(T0);
  assert.deepEqual(m.next(head(429), T0 + 5), { kind: 'wait', ms: 0 });
  assert.equal(cooldowns.isCooling('a', K, T0 + 6), true);
  assert.equal(cooldowns.isCooling('a', 'key-2', T0 + 6), false);
});

test('a stream that yields no first token is retried, then given up with the upstream_timeout error', () => {
  const { m, cooldowns } = machine({ route: ['a'], firstTokenTimeoutMs: 300, policy: { ...POLICY, maxAttempts: 2 }, cooldowns: breaker(5) });
  m.start(T0);
  assert.deepEqual(m.next(head(200, { 'content-type': 'text/event-stream' }, true), T0 + 20), { kind: 'await_first_token', timeoutMs: 300 });
  assert.deepEqual(m.next({ kind: 'first_token_timeout' }, T0 + 320), { kind: 'wait', ms: 250 });
  assertSend(m.waited(T0 + 570), 2, 'a', 'body:a');
  m.next(head(200, {}, true), T0 + 600);
  const step = m.next({ kind: 'first_token_timeout' }, T0 + 900);
  assert.equal(step.kind, 'give_up');
  const error = (step as Extract<AttemptStep, { kind: 'give_up' }>).error;
  assert.ok(error instanceof UpstreamTimeoutError);
  assert.equal(error.code, 'upstream_timeout');
  assert.equal(error.phase, 'first_token');
  assert.deepEqual(m.attempts.map((a) => [a.outcome, a.durationMs, a.retry?.reason]), [
    ['first_token_timeout', 320, 'first_token_timeout'],
    ['first_token_timeout', 330, undefined],
  ]);
  assert.equal(cooldowns.size, 1, 'both timeouts counted for the breaker');
});

test('a held stream: the breaker learns of the success only once the first token came', () => {
  const cooldowns = breaker(5);
  cooldowns.recordFailure('a', K, 'upstream', T0);
  const { m } = machine({ cooldowns, firstTokenTimeoutMs: 300 });
  m.start(T0 + 1);
  m.next(head(200, {}, true), T0 + 10);
  assert.equal(cooldowns.size, 1, 'not yet recorded');
  assert.deepEqual(m.next({ kind: 'first_token' }, T0 + 50), { kind: 'relay' });
  assert.equal(cooldowns.size, 0);
  assert.equal(m.attempts[0]!.outcome, 200);
});

test('a held stream that breaks is retried when the break is a network fault; a local error gives up at once', () => {
  const cut = machine({ firstTokenTimeoutMs: 300, cooldowns: breaker(1) });
  cut.m.start(T0);
  cut.m.next(head(200, {}, true), T0 + 10);
  // Retried even though onNetworkErrors is off: a held stream is retried within attempts and budget.
  const off = machine({ firstTokenTimeoutMs: 300, cooldowns: breaker(1), policy: { ...POLICY, onNetworkErrors: false } });
  off.m.start(T0);
  off.m.next(head(200, {}, true), T0 + 10);
  const error = new UpstreamUnreachableError('UND_ERR_SOCKET');
  assert.deepEqual(off.m.next({ kind: 'stream_failed', error }, T0 + 20), { kind: 'wait', ms: 0 });
  assert.equal(off.cooldowns.isCooling('a', K, T0 + 21), true);

  const internal = new InternalError();
  assert.deepEqual(cut.m.next({ kind: 'stream_failed', error: internal }, T0 + 20), { kind: 'give_up', error: internal });
  assert.equal(cut.cooldowns.size, 0);
});

test('first-token hold is only for a 200 event stream with the option on', () => {
  const off = machine().m;
  off.start(T0);
  assert.deepEqual(off.next(head(200, {}, true), T0 + 1), { kind: 'relay' });
  const json = machine({ firstTokenTimeoutMs: 300 }).m;
  json.start(T0);
  assert.deepEqual(json.next(head(200, {}, false), T0 + 1), { kind: 'relay' });
});

test('a pass-through request (no plan) has no breaker and no fallback', () => {
  const cooldowns = breaker(1);
  const m = new AttemptMachine({
    policy: NO_RETRY, cooldowns, credential: '-', model: undefined, body: 'bytes', firstTokenTimeoutMs: 0, startedAt: T0,
  });
  assertSend(m.start(T0), 1, undefined, 'bytes');
  assert.deepEqual(m.next(head(500), T0 + 1), { kind: 'relay' });
  assert.equal(cooldowns.size, 0);
});

test('attempts are bounded by policy.maxAttempts', () => {
  const { m } = machine({ route: ['a'] });
  let step = m.start(T0);
  let now = T0;
  while (step.kind === 'send') {
    step = m.next(failed(new UpstreamUnreachableError('ECONNREFUSED')), ++now);
    if (step.kind === 'wait') step = m.waited((now += step.ms));
  }
  assert.equal(step.kind, 'give_up');
  assert.equal(m.count, POLICY.maxAttempts);
  assert.deepEqual(m.attempts.map((a) => a.retry?.waitMs), [250, 500, undefined]);
});

test('a driver that reports out of order gets an internal error, not a guess', () => {
  const { m } = machine();
  assert.throws(() => m.next(head(200), T0), InternalError);
  m.start(T0);
  assert.throws(() => m.start(T0), InternalError);
  assert.throws(() => m.next({ kind: 'first_token' }, T0), InternalError);
  assert.throws(() => m.waited(T0), InternalError);
});

test('the machine reads no clock of its own', (t) => {
  t.mock.method(Date, 'now', () => {
    throw new Error('Date.now read');
  });
  t.mock.method(performance, 'now', () => {
    throw new Error('performance.now read');
  });
  const cooldowns = cooledA();
  const { m } = machine({ cooldowns, firstTokenTimeoutMs: 300 });
  m.start(T0 + 5000);
  // A 402 is retried only with a Retry-After (here an HTTP date, read against the given now).
  assert.deepEqual(m.next(head(402, { 'retry-after': new Date(T0 + 6000).toUTCString() }), T0 + 5000), { kind: 'wait', ms: 1000 });
  m.waited(T0 + 6000);
  assert.equal(m.next(head(200, {}, true), T0 + 6001).kind, 'await_first_token');
  assert.equal(m.next({ kind: 'first_token_timeout' }, T0 + 6301).kind, 'wait');
  m.release();
});
