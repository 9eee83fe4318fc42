import assert from 'node:assert/strict';
import { test } from 'node:test';
import { attemptModels, ModelCooldowns, type FailureScope } from '../../src/upstream/cooldown.js';

const OPTIONS = { failures: 3, windowMs: 1000, durationMs: 5000, maxEntries: 100 };
/** The credential (digest of the key sent) of most tests. */
const K = 'key-1';

function fail(cooldowns: ModelCooldowns, model: string, now: number, scope: FailureScope = 'upstream', credential = K): void {
  cooldowns.recordFailure(model, credential, scope, now);
}

/** Whether `model` may be tried at `now`: taking its probe when its cooldown has ended (the old tryAcquire). */
function acquire(cooldowns: ModelCooldowns, model: string, now: number): boolean {
  if (cooldowns.isCooling(model, K, now)) return false;
  cooldowns.lease(model, K, now);
  return true;
}

function breaker(): { cooldowns: ModelCooldowns; started: string[] } {
  const started: string[] = [];
  return { cooldowns: new ModelCooldowns(OPTIONS, (m) => started.push(m)), started };
}

test('a model that failed `failures` times within the window cools down, and only that model', () => {
  const { cooldowns, started } = breaker();
  fail(cooldowns, 'a', 0);
  fail(cooldowns, 'a', 100);
  assert.equal(cooldowns.isCooling('a', K, 200), false);
  fail(cooldowns, 'a', 200);
  assert.equal(cooldowns.isCooling('a', K, 300), true);
  assert.equal(acquire(cooldowns, 'a', 300), false);
  assert.equal(cooldowns.isCooling('b', K, 300), false);
  assert.deepEqual(started, ['a']);
  assert.deepEqual(cooldowns.cooling(300), { a: 5200 });
});

test('failures spread wider than the window never start a cooldown', () => {
  const { cooldowns, started } = breaker();
  fail(cooldowns, 'a', 0);
  fail(cooldowns, 'a', 600);
  fail(cooldowns, 'a', 1200); // the first has left the 1000 ms window
  assert.equal(cooldowns.isCooling('a', K, 1300), false);
  assert.deepEqual(started, []);
});

test('a success resets the count of failures', () => {
  const { cooldowns } = breaker();
  fail(cooldowns, 'a', 0);
  fail(cooldowns, 'a', 10);
  cooldowns.recordSuccess('a', K);
  fail(cooldowns, 'a', 20);
  assert.equal(cooldowns.isCooling('a', K, 30), false);
});

test('after the cooldown one request probes: others wait, a success brings the model back', () => {
  const { cooldowns } = breaker();
  for (const t of [0, 1, 2]) fail(cooldowns, 'a', t);
  assert.equal(acquire(cooldowns, 'a', 5001), false, 'still cooling down');
  assert.equal(acquire(cooldowns, 'a', 5002), true, 'the probe');
  assert.equal(acquire(cooldowns, 'a', 5003), false, 'others wait for the probe');
  assert.equal(cooldowns.isCooling('a', K, 5003), true);
  cooldowns.recordSuccess('a', K);
  assert.equal(cooldowns.isCooling('a', K, 5004), false);
  assert.equal(acquire(cooldowns, 'a', 5004), true);
  assert.deepEqual(cooldowns.cooling(5004), {});
});

test('a failed probe starts another cooldown at once', () => {
  const { cooldowns, started } = breaker();
  for (const t of [0, 1, 2]) fail(cooldowns, 'a', t);
  assert.equal(acquire(cooldowns, 'a', 6000), true);
  fail(cooldowns, 'a', 6001);
  assert.equal(cooldowns.isCooling('a', K, 6002), true);
  assert.deepEqual(cooldowns.cooling(6002), { a: 11_001 });
  assert.deepEqual(started, ['a', 'a']);
});

test('failures: 0 disables the breaker', () => {
  const cooldowns = new ModelCooldowns({ ...OPTIONS, failures: 0 });
  for (let t = 0; t < 10; t++) fail(cooldowns, 'a', t);
  assert.equal(cooldowns.enabled, false);
  assert.equal(cooldowns.isCooling('a', K, 20), false);
  assert.equal(acquire(cooldowns, 'a', 20), true);
});

// ---- attemptModels: the models of each attempt, cooldowns applied (clock injected) ----

const ROUTE = ['a', 'b', 'c'];

/** A breaker where `cooling` models have just started a cooldown at time 0. */
function coolingAt0(...cooling: string[]): ModelCooldowns {
  const cooldowns = new ModelCooldowns(OPTIONS);
  for (const m of cooling) for (let i = 0; i < OPTIONS.failures; i++) fail(cooldowns, m, 0);
  return cooldowns;
}

/** The attempts a request makes when every one fails: each attempt's models, in order. */
function attemptsOf(route: string[], cooldowns: ModelCooldowns, now: number, count: number): (readonly string[])[] {
  const out: (readonly string[])[] = [];
  let failed: string | undefined;
  for (let i = 0; i < count; i++) {
    const models = attemptModels(route, failed, cooldowns, K, now);
    out.push(models);
    failed = models[0];
  }
  return out;
}

test('attemptModels: with nothing cooling, each attempt starts one further along and the last is retried', () => {
  assert.deepEqual(attemptsOf(ROUTE, coolingAt0(), 10, 4), [['a', 'b', 'c'], ['b', 'c'], ['c'], ['c']]);
  assert.deepEqual(attemptsOf(['a'], coolingAt0(), 10, 2), [['a'], ['a']]);
  assert.deepEqual(attemptsOf([], coolingAt0(), 10, 1), [[]]);
});

test('attemptModels: a healthy primary with its fallback cooling is retried itself, never the cooling fallback', () => {
  const cooldowns = coolingAt0('b');
  assert.deepEqual(attemptsOf(['a', 'b'], cooldowns, 10, 3), [['a'], ['a'], ['a']]);
  // Once the cooldown is over the fallback serves again (as a candidate for its probe).
  assert.deepEqual(attemptsOf(['a', 'b'], cooldowns, OPTIONS.durationMs + 1, 2), [['a', 'b'], ['b']]);
});

test('attemptModels: a cooling model in the middle is skipped, in the list and as the next model', () => {
  assert.deepEqual(attemptsOf(ROUTE, coolingAt0('b'), 10, 3), [['a', 'c'], ['c'], ['c']]);
  assert.deepEqual(attemptsOf(ROUTE, coolingAt0('a'), 10, 3), [['b', 'c'], ['c'], ['c']]);
});

test('attemptModels: when the failed model has just started cooling, an earlier model that can serve is tried, not it', () => {
  const cooldowns = coolingAt0('b', 'c');
  // c failed and now cools; b cools too; a failed earlier in this request but is not cooling.
  assert.deepEqual(attemptModels(ROUTE, 'c', cooldowns, K, 10), ['a']);
  assert.deepEqual(attemptModels(ROUTE, 'b', cooldowns, K, 10), ['a']);
});

test('attemptModels: when every model is cooling, the route is tried as it is', () => {
  assert.deepEqual(attemptsOf(ROUTE, coolingAt0('a', 'b', 'c'), 10, 4), [['a', 'b', 'c'], ['b', 'c'], ['c'], ['c']]);
});

test('attemptModels takes no probe: a model past its cooldown stays available to the request that claims it', () => {
  const cooldowns = coolingAt0('a');
  const after = OPTIONS.durationMs + 1;
  assert.deepEqual(attemptModels(['a', 'b'], undefined, cooldowns, K, after), ['a', 'b']);
  assert.deepEqual(attemptModels(['a', 'b'], undefined, cooldowns, K, after), ['a', 'b']);
  assert.equal(acquire(cooldowns, 'a', after), true, 'the probe is still free');
  // Now a is being probed: the next request leaves it out.
  assert.deepEqual(attemptModels(['a', 'b'], undefined, cooldowns, K, after), ['b']);
});

test('attemptModels with the breaker off is the route from the model after the failed one', () => {
  const off = new ModelCooldowns({ ...OPTIONS, failures: 0 });
  assert.deepEqual(attemptsOf(ROUTE, off, 10, 4), [['a', 'b', 'c'], ['b', 'c'], ['c'], ['c']]);
});

// ---- bounds (issue 12, defect 4) ----

test('100 000 distinct failing model names keep the breaker at its cap, evicting the least recently failed', () => {
  const cooldowns = new ModelCooldowns({ ...OPTIONS, failures: 1, windowMs: 60_000, durationMs: 60_000, maxEntries: 1000 });
  // Every name fails within the window and cools down: nothing expires, only the cap holds them.
  for (let i = 0; i < 100_000; i++) fail(cooldowns, `random/${i}-${'x'.repeat(i % 300)}`, 1 + i / 100);
  assert.equal(cooldowns.size, 1000);
  assert.equal(cooldowns.isCooling(`random/99999-${'x'.repeat(99_999 % 300)}`, K, 1001), true, 'the latest is kept');
  assert.equal(cooldowns.isCooling('random/0-', K, 1001), false, 'the oldest was evicted');
});

test('entries whose failure window and cooldown are both over are dropped as others fail', () => {
  const cooldowns = new ModelCooldowns(OPTIONS);
  fail(cooldowns, 'a', 0);
  for (const t of [0, 1, 2]) fail(cooldowns, 'b', t);
  assert.equal(cooldowns.size, 2);
  // window 1000, cooldown 5000: at 5002 both of a and b are over.
  fail(cooldowns, 'c', 5002);
  assert.equal(cooldowns.size, 1);
  assert.deepEqual(cooldowns.cooling(5002), {});
});

test('a model name of a megabyte is keyed by its digest, and shown clipped', () => {
  const cooldowns = new ModelCooldowns({ ...OPTIONS, failures: 1 });
  const huge = 'm'.repeat(1 << 20);
  fail(cooldowns, huge, 0);
  assert.equal(cooldowns.isCooling(huge, K, 1), true);
  assert.equal(cooldowns.isCooling(`${huge}x`, K, 1), false);
  const [shown] = Object.keys(cooldowns.cooling(1));
  assert.ok(shown !== undefined && shown.length < 300, String(shown?.length));
});

// ---- scope: what failed decides who is skipped (issue 12, defect 5) ----

test('a 429 cools the model for the credential that was sent only; a 5xx for every credential', () => {
  const cooldowns = new ModelCooldowns(OPTIONS);
  for (const t of [0, 1, 2]) fail(cooldowns, 'a', t, 'credential', 'tenant-1');
  assert.equal(cooldowns.isCooling('a', 'tenant-1', 3), true);
  assert.equal(cooldowns.isCooling('a', 'tenant-2', 3), false, 'another tenant is not sent to the fallback');
  assert.deepEqual(cooldowns.cooling(3, 'tenant-2'), {});
  assert.deepEqual(cooldowns.cooling(3, 'tenant-1'), { a: 5002 });
  for (const t of [0, 1, 2]) fail(cooldowns, 'b', t, 'upstream', 'tenant-1');
  assert.equal(cooldowns.isCooling('b', 'tenant-2', 3), true);
  assert.deepEqual(cooldowns.cooling(3, 'tenant-2'), { b: 5002 });
});

test('credentialOf is a digest of the Authorization header, never the key', () => {
  const cooldowns = new ModelCooldowns(OPTIONS);
  const one = cooldowns.credentialOf('Bearer sk-or-secret-one');
  assert.ok(!one.includes('secret'));
  assert.equal(cooldowns.credentialOf('Bearer sk-or-secret-one'), one);
  assert.notEqual(cooldowns.credentialOf('Bearer sk-or-secret-two'), one);
  assert.equal(cooldowns.credentialOf('Bearer sk-or-secret-one'), one);
  assert.equal(cooldowns.credentialOf(undefined), '-');
});

// ---- the probe is a lease (issue 12, defect 6) ----

test('a probe lease released without an outcome frees the probe: the next request probes again', () => {
  const cooldowns = new ModelCooldowns(OPTIONS);
  for (const t of [0, 1, 2]) fail(cooldowns, 'a', t);
  const after = OPTIONS.durationMs + 10;
  const probe = cooldowns.lease('a', K, after);
  assert.equal(probe.probing, true);
  assert.equal(cooldowns.isCooling('a', K, after), true, 'others wait for the probe');
  probe.release(); // the client left before the outcome was known
  assert.equal(cooldowns.isCooling('a', K, after + 1), false);
  const next = cooldowns.lease('a', K, after + 1);
  assert.equal(next.probing, true, 'the next request is the probe');
  probe.release(); // a second release of the old lease must not free the new probe
  assert.equal(next.probing, true);
  next.success();
  assert.equal(cooldowns.size, 0, 'a success closes the breaker');
});

test('a probe lease that recorded its failure starts another cooldown, and its release changes nothing', () => {
  const { cooldowns, started } = breaker();
  for (const t of [0, 1, 2]) fail(cooldowns, 'a', t);
  const probe = cooldowns.lease('a', K, 6000);
  probe.failure('upstream', 6001);
  probe.release();
  assert.deepEqual(cooldowns.cooling(6002), { a: 11_001 });
  assert.deepEqual(started, ['a', 'a']);
});

test('probe allocates a lease only for a probe: none while the breaker is empty or the model is not due', () => {
  const { cooldowns } = breaker();
  assert.equal(cooldowns.probe('a', K, 0), undefined, 'empty breaker');
  for (const t of [0, 1, 2]) fail(cooldowns, 'a', t);
  assert.equal(cooldowns.probe('b', K, 10), undefined, 'another model');
  assert.equal(cooldowns.probe('a', K, 10), undefined, 'still cooling');
  const lease = cooldowns.probe('a', K, 5002);
  assert.ok(lease?.probing);
  assert.equal(cooldowns.probe('a', K, 5003), undefined, 'the probe is taken');
  lease.release();
  assert.ok(cooldowns.probe('a', K, 5004)?.probing, 'released: the next caller probes');
});
