import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CHAT_BODY, startHarness } from '../support/harness.js';

test('a non-streaming chat completion goes through the proxy', async (t) => {
  const h = await startHarness({ env: { OPENROUTER_API_KEY: 'sk-or-server' } });
  t.after(() => h.close());
  const res = await fetch(`${h.url}/v1/chat/completions`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(CHAT_BODY),
  });
  assert.equal(res.status, 200);
  const body = (await res.json()) as { choices: unknown[] };
  assert.equal(body.choices.length, 1);
  assert.equal(h.fake.received.length, 1);
});
