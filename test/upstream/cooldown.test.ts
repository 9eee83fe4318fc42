import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ModelCooldowns } from '../../src/upstream/cooldown.js';

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
