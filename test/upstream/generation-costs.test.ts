import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GenerationCosts, LOOKUP_DELAYS_MS, MAX_PENDING_LOOKUPS, type LookupTimers, type ReconciledCost } from '../../src/upstream/generation-costs.js';
import type { UpstreamRequest, WholeResponse } from '../../src/upstream/client.js';

/** Timers run by hand: `due` holds what is scheduled, `runAll` fires it. */
class ManualTimers implements LookupTimers {
  due: { fn: () => void; ms: number; cleared: boolean }[] = [];
  set(fn: () => void, ms: number): { unref?(): void } {
    const t = { fn, ms, cleared: false };
    this.due.push(t);
    return t as { unref?(): void };
  }
  clear(handle: unknown): void {
    if (handle) (handle as { cleared: boolean }).cleared = true;
  }
  async runAll(): Promise<void> {
    const now = this.due.filter((t) => !t.cleared);
    this.due = [];
    for (const t of now) t.fn();
    // let the lookups' promises settle
    for (let i = 0; i < 5; i++) await Promise.resolve();
    await new Promise((resolve) => setImmediate(resolve));
  }
}

function upstream(answers: (string | Error)[]) {
  const requests: UpstreamRequest[] = [];
  return {
    requests,
    fetchWhole: async (req: UpstreamRequest): Promise<WholeResponse> => {
      requests.push(req);
      const next = answers.shift() ?? '404';
      if (next instanceof Error) throw next;
      if (next === '404') return { status: 404, headers: {}, body: Buffer.from('{"error":{"code":404}}') };
      return { status: 200, headers: {}, body: Buffer.from(next) };
    },
  };
}

const LOOKUP = { id: 'gen-1', rule: 'r', model: 'm/x', requestId: 'req-1' };

test('a generation not yet stored is looked up again on schedule, then its total_cost reported once', async () => {
  const timers = new ManualTimers();
  const up = upstream(['404', new Error('reset'), '{"data":{"id":"gen-1","total_cost":0.0042}}']);
  const got: ReconciledCost[] = [];
  const costs = new GenerationCosts(up, 'Bearer sk-server', (c) => got.push(c), timers);
  costs.add(LOOKUP);
  costs.add(LOOKUP);
  assert.equal(costs.size, 1, 'one lookup per generation');
  for (let i = 0; i < 3; i++) {
    assert.equal(timers.due[0]!.ms, LOOKUP_DELAYS_MS[i]);
    await timers.runAll();
  }
  assert.deepEqual(got, [{ lookup: LOOKUP, usd: 0.0042 }]);
  assert.equal(costs.size, 0);
  assert.equal(up.requests[0]!.path, '/generation?id=gen-1');
  assert.equal(up.requests[0]!.headers.authorization, 'Bearer sk-server');
});

test('a lookup that never succeeds is given up after the last attempt; garbage never counts as a cost', async () => {
  const timers = new ManualTimers();
  const up = upstream(['{"data":{"total_cost":-1}}', 'not json', '{"data":{"total_cost":"5"}}']);
  const got: ReconciledCost[] = [];
  const costs = new GenerationCosts(up, 'Bearer k', (c) => got.push(c), timers);
  costs.add(LOOKUP);
  for (let i = 0; i < LOOKUP_DELAYS_MS.length; i++) await timers.runAll();
  assert.deepEqual(got, []);
  assert.equal(up.requests.length, LOOKUP_DELAYS_MS.length);
  assert.equal(costs.size, 0);
  assert.equal(costs.givenUp, 1);
});

test('the queue is bounded: past MAX_PENDING_LOOKUPS the oldest waiting lookup is dropped; close clears every timer', async () => {
  const timers = new ManualTimers();
  const costs = new GenerationCosts(upstream([]), 'Bearer k', () => undefined, timers);
  for (let i = 0; i < MAX_PENDING_LOOKUPS + 10; i++) costs.add({ ...LOOKUP, id: `gen-${i}` });
  assert.equal(costs.size, MAX_PENDING_LOOKUPS);
  assert.equal(costs.dropped, 10);
  costs.close();
  assert.equal(costs.size, 0);
  assert.ok(timers.due.every((t) => t.cleared));
});
