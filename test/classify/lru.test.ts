import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AnswerCache } from '../../src/classify/lru.js';

test('AnswerCache: bounded, least recently used out first; a miss in flight is shared; a value `keep` refuses is shared but not kept', async () => {
  const cache = new AnswerCache<string>(2);
  let calls = 0;
  let release!: (value: string) => void;
  const lookup = () => {
    calls++;
    return new Promise<string>((resolve) => (release = resolve));
  };
  const first = cache.run('a', lookup, () => true);
  assert.equal(cache.pending('a'), first, 'a second asker waits on the same call');
  release('A');
  assert.equal(await first, 'A');
  assert.equal(calls, 1);
  assert.equal(cache.pending('a'), undefined);
  await cache.run('b', async () => 'B', () => true);
  assert.equal(cache.get('a'), 'A', 'a is now the most recent');
  await cache.run('c', async () => 'C', () => true);
  assert.equal(cache.size, 2);
  assert.equal(cache.get('b'), undefined, 'b was the least recently used');
  assert.equal(await cache.run('d', async () => 'failed', () => false), 'failed');
  assert.equal(cache.get('d'), undefined);
  const none = new AnswerCache<string>(0);
  await none.run('x', async () => 'X', () => true);
  assert.equal(none.size, 0);
});

test('AnswerCache: a lookup that rejects is not left in flight', async () => {
  const cache = new AnswerCache<string>(2);
  await assert.rejects(cache.run('k', () => Promise.reject(new Error('bug')), () => true), /bug/);
  assert.equal(cache.pending('k'), undefined);
  assert.equal((await cache.answer('k', async () => 'K', () => true)).value, 'K');
});
