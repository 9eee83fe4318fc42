import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Registry } from 'prom-client';
import { FastCounter, FastHistogram } from '../../src/metrics/series.js';

test('FastCounter: one series per tuple of label values, in order of appearance, whatever the values hold', async () => {
  const registry = new Registry();
  const counter = new FastCounter(registry, 'test_total', 'help', ['a', 'b', 'c']);
  counter.inc(['x', 'y', 'z']);
  counter.inc(['x', 'y', 'w'], 2);
  counter.inc(['x', 'y', 'z'], 3);
  // Joined with NUL into one key, these two tuples were one series: a value may hold any character.
  counter.inc(['p\u0000q', 'r', 's']);
  counter.inc(['p', 'q\u0000r', 's']);
  const { values } = await counter.get();
  assert.deepEqual(values, [
    { labels: { a: 'x', b: 'y', c: 'z' }, value: 4 },
    { labels: { a: 'x', b: 'y', c: 'w' }, value: 2 },
    { labels: { a: 'p\u0000q', b: 'r', c: 's' }, value: 1 },
    { labels: { a: 'p', b: 'q\u0000r', c: 's' }, value: 1 },
  ]);
  counter.reset();
  assert.deepEqual((await counter.get()).values, []);
  counter.inc(['x', 'y', 'z']);
  assert.deepEqual((await counter.get()).values, [{ labels: { a: 'x', b: 'y', c: 'z' }, value: 1 }]);
});

test('FastCounter and FastHistogram without labels are exported from the start, and again after reset', async () => {
  const registry = new Registry();
  const counter = new FastCounter(registry, 'plain_total', 'help', []);
  const histogram = new FastHistogram(registry, 'plain_seconds', 'help', [], [0.1, 1]);
  assert.deepEqual((await counter.get()).values, [{ labels: {}, value: 0 }]);
  counter.inc([]);
  counter.inc([], 2);
  histogram.observe([], 0.5);
  assert.deepEqual((await counter.get()).values, [{ labels: {}, value: 3 }]);
  assert.match(await registry.metrics(), /plain_seconds_bucket\{le="0.1"\} 0\nplain_seconds_bucket\{le="1"\} 1\nplain_seconds_bucket\{le="\+Inf"\} 1\nplain_seconds_sum 0.5\nplain_seconds_count 1/);
  counter.reset();
  histogram.reset();
  assert.deepEqual((await counter.get()).values, [{ labels: {}, value: 0 }]);
  assert.match(await registry.metrics(), /plain_seconds_count 0/);
});

test('FastHistogram: series by label values, buckets cumulative', async () => {
  const registry = new Registry();
  const histogram = new FastHistogram(registry, 'test_seconds', 'help', ['rule', 'model'], [0.1, 1]);
  histogram.observe(['r', 'm'], 0.05);
  histogram.observe(['r', 'n'], 2);
  histogram.observe(['r', 'm'], 0.5);
  const text = await registry.metrics();
  assert.match(text, /test_seconds_bucket\{rule="r",model="m",le="0.1"\} 1\ntest_seconds_bucket\{rule="r",model="m",le="1"\} 2\n/);
  assert.match(text, /test_seconds_count\{rule="r",model="m"\} 2\n/);
  assert.match(text, /test_seconds_bucket\{rule="r",model="n",le="1"\} 0\n/);
  assert.match(text, /test_seconds_sum\{rule="r",model="n"\} 2\n/);
});
