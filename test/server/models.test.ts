import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startHarness } from '../support/harness.js';

const RULES = (aliases: boolean): string => `
version: 1
aliases: ${aliases}
tiers:
  budget: { model: openai/gpt-4o-mini }
  premium: { model: anthropic/claude-3.5-sonnet }
rules: []
`;

interface ModelList {
  data: { id: string; owned_by?: string; description?: string }[];
}

test('GET /v1/models lists the tiers beside the upstream\'s models when aliases are on', async (t) => {
  const h = await startHarness({ rules: RULES(true) });
  t.after(() => h.close());
  const direct = (await (await fetch(`${h.fake.baseUrl}/models`)).json()) as ModelList;
  const res = await fetch(`${h.url}/v1/models`, { headers: { authorization: 'Bearer sk-or-test' } });
  assert.equal(res.status, 200);
  const list = (await res.json()) as ModelList;
  assert.deepEqual(list.data.slice(0, direct.data.length), direct.data, 'the upstream\'s models first, unchanged');
  const tiers = list.data.slice(direct.data.length);
  assert.deepEqual(tiers.map((m) => [m.id, m.owned_by]), [['budget', 'signalbox'], ['premium', 'signalbox']]);
  assert.match(tiers[0]!.description!, /openai\/gpt-4o-mini/);
});

test('GET /v1/models is the upstream\'s answer byte for byte without aliases', async (t) => {
  const h = await startHarness({ rules: RULES(false) });
  t.after(() => h.close());
  const direct = Buffer.from(await (await fetch(`${h.fake.baseUrl}/models`)).arrayBuffer());
  const res = await fetch(`${h.url}/v1/models`, { headers: { authorization: 'Bearer sk-or-test' } });
  assert.equal(res.status, 200);
  assert.ok(Buffer.from(await res.arrayBuffer()).equals(direct));
});
