import assert from 'node:assert/strict';
import { test } from 'node:test';
import { attemptModels, ModelCooldowns } from '../../src/upstream/cooldown.js';

const OPTIONS = { failures: 3, windowMs: 1000, durationMs: 5000 };

function breaker(): { cooldowns: ModelCooldowns; started: string[] } {
  const started: string[] = [];
  return { cooldowns: new ModelCooldowns(OPTIONS, (m) => started.push(m)), started };
}

test('a model that failed `failures` times within the window cools down, and only that model', () => {
  const { cooldowns, started } = breaker();
  cooldowns.failure('a', 0);
  cooldowns.failure('a', 100);
  assert.equal(cooldowns.isCooling('a', 200), false);
  cooldowns.failure('a', 200);
  assert.equal(cooldowns.isCooling('a', 300), true);
  assert.equal(cooldowns.tryAcquire('a', 300), false);
  assert.equal(cooldowns.isCooling('b', 300), false);
  assert.deepEqual(started, ['a']);
  assert.deepEqual(cooldowns.cooling(300), { a: 5200 });
});

test('failures spread wider than the window never start a cooldown', () => {
  const { cooldowns, started } = breaker();
  cooldowns.failure('a', 0);
  cooldowns.failure('a', 600);
  cooldowns.failure('a', 1200); // the first has left the 1000 ms window
  assert.equal(cooldowns.isCooling('a', 1300), false);
  assert.deepEqual(started, []);
});

test('a success resets the count of failures', () => {
  const { cooldowns } = breaker();
  cooldowns.failure('a', 0);
  cooldowns.failure('a', 10);
  cooldowns.success('a');
  cooldowns.failure('a', 20);
  assert.equal(cooldowns.isCooling('a', 30), false);
});

test('after the cooldown one request probes: others wait, a success brings the model back', () => {
  const { cooldowns } = breaker();
  for (const t of [0, 1, 2]) cooldowns.failure('a', t);
  assert.equal(cooldowns.tryAcquire('a', 5001), false, 'still cooling down');
  assert.equal(cooldowns.tryAcquire('a', 5002), true, 'the probe');
  assert.equal(cooldowns.tryAcquire('a', 5003), false, 'others wait for the probe');
  assert.equal(cooldowns.isCooling('a', 5003), true);
  cooldowns.success('a');
  assert.equal(cooldowns.isCooling('a', 5004), false);
  assert.equal(cooldowns.tryAcquire('a', 5004), true);
  assert.deepEqual(cooldowns.cooling(5004), {});
});

test('a failed probe starts another cooldown at once', () => {
  const { cooldowns, started } = breaker();
  for (const t of [0, 1, 2]) cooldowns.failure('a', t);
  assert.equal(cooldowns.tryAcquire('a', 6000), true);
  cooldowns.failure('a', 6001);
  assert.equal(cooldowns.isCooling('a', 6002), true);
  assert.deepEqual(cooldowns.cooling(6002), { a: 11_001 });
  assert.deepEqual(started, ['a', 'a']);
});

test('failures: 0 disables the breaker', () => {
  const cooldowns = new ModelCooldowns({ ...OPTIONS, failures: 0 });
  for (let t = 0; t < 10; t++) cooldowns.failure('a', t);
  assert.equal(cooldowns.enabled, false);
  assert.equal(cooldowns.isCooling('a', 20), false);
  assert.equal(cooldowns.tryAcquire('a', 20), true);
});

// ---- attemptModels: the models of each attempt, cooldowns applied (clock injected) ----

const ROUTE = ['a', 'b', 'c'];

/** A breaker where `cooling` models have just started a cooldown at time 0. */
function coolingAt0(...cooling: string[]): ModelCooldowns {
  const cooldowns = new ModelCooldowns(OPTIONS);
  for (const m of cooling) for (let i = 0; i < OPTIONS.failures; i++) cooldowns.failure(m, 0);
  return cooldowns;
}

/** The attempts a request makes when every one fails: each attempt's models, in order. */
function attemptsOf(route: string[], cooldowns: ModelCooldowns, now: number, count: number): (readonly string[])[] {
  const out: (readonly string[])[] = [];
  let failed: string | undefined;
  for (let i = 0; i < count; i++) {
    const models = attemptModels(route, failed, cooldowns, now);
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
  assert.deepEqual(attemptModels(ROUTE, 'c', cooldowns, 10), ['a']);
  assert.deepEqual(attemptModels(ROUTE, 'b', cooldowns, 10), ['a']);
});

test('attemptModels: when every model is cooling, the route is tried as it is', () => {
  assert.deepEqual(attemptsOf(ROUTE, coolingAt0('a', 'b', 'c'), 10, 4), [['a', 'b', 'c'], ['b', 'c'], ['c'], ['c']]);
});

test('attemptModels takes no probe: a model past its cooldown stays available to the request that claims it', () => {
  const cooldowns = coolingAt0('a');
  const after = OPTIONS.durationMs + 1;
  assert.deepEqual(attemptModels(['a', 'b'], undefined, cooldowns, after), ['a', 'b']);
  assert.deepEqual(attemptModels(['a', 'b'], undefined, cooldowns, after), ['a', 'b']);
  assert.equal(cooldowns.tryAcquire('a', after), true, 'the probe is still free');
  // Now a is being probed: the next request leaves it out.
  assert.deepEqual(attemptModels(['a', 'b'], undefined, cooldowns, after), ['b']);
});

test('attemptModels with the breaker off is the route from the model after the failed one', () => {
  const off = new ModelCooldowns({ ...OPTIONS, failures: 0 });
  assert.deepEqual(attemptsOf(ROUTE, off, 10, 4), [['a', 'b', 'c'], ['b', 'c'], ['c'], ['c']]);
});
