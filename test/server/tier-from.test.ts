import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startHarness } from '../support/harness.js';

const RULES = `
version: 1
tiers:
  budget: { model: m/short }
  standard: { model: m/b }
  premium: { model: m/pro }
rules:
  - name: auto
    when: { model: auto }
    route:
      tier_from:
        field: classify.complexity
        map: { simple: budget, medium: budget, complex: standard, frontier: premium }
        raise_below_confidence: 0.6
        stick_by: header.x-session-id
`;

/** Clear verdicts of the shipped model: a research-grade task (frontier, which no raise moves) and a thank-you (simple, sure). */
const HARD = 'Design and implement a distributed consensus protocol tolerant to Byzantine faults, prove its safety and liveness, and write a full implementation in Rust with tests.';
const EASY = 'thanks';

test('model: auto through the proxy: a conversation keeps the tier of its first turn even when a later turn classifies lower', { timeout: 30_000 }, async (t) => {
  const h = await startHarness({ rules: RULES });
  t.after(() => h.close());
  const call = async (path: string, content: string, session?: string) => {
    const res = await fetch(`${h.url}/v1/${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: 'Bearer sk-or-test', ...(session !== undefined && { 'x-session-id': session }) },
      body: JSON.stringify({ model: 'auto', messages: [{ role: 'user', content }] }),
    });
    assert.equal(res.status, 200);
    return res;
  };
  const routedModel = async (content: string, session?: string) => {
    const res = await call('chat/completions', content, session);
    await res.arrayBuffer();
    return res.headers.get('x-signalbox-model');
  };
  const explain = async (content: string, session?: string) => (await (await call('routing/explain', content, session)).json()) as { tier: string; tier_from: Record<string, unknown>; classification?: unknown };

  const alone = await explain(EASY);
  assert.equal(alone.tier, 'budget', 'on its own, the easy turn goes to the budget tier');
  assert.equal(alone.tier_from.method, 'local');
  assert.equal((await explain(EASY, 'conv-1')).tier_from.sticky, 'stored', 'explain says a chat request would keep the tier');
  assert.equal(await routedModel(EASY, 'conv-x'), 'm/short');

  assert.equal(await routedModel(HARD, 'conv-1'), 'm/pro', 'the first turn is classified: premium');
  assert.equal(await routedModel(EASY, 'conv-1'), 'm/pro', 'the second turn keeps premium');
  const kept = await explain(EASY, 'conv-1');
  assert.deepEqual([kept.tier, kept.tier_from.sticky], ['premium', 'hit']);
  assert.equal(JSON.parse(h.fake.received.at(-1)!.body.toString('utf8')).model, 'm/pro', 'upstream got the kept tier\'s model');

  assert.equal(await routedModel(EASY, 'conv-2'), 'm/short', 'another conversation has its own tier');
  assert.equal((await explain(HARD, 'conv-3')).tier, 'premium');
  assert.equal(await routedModel(EASY, 'conv-3'), 'm/short', 'explain stores nothing: conv-3\'s first chat turn picks its tier');
});
