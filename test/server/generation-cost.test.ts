import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CHAT_BODY, startHarness } from '../support/harness.js';

test('a stream cut before its usage chunk gets its cost afterwards from GET /generation (cost_source generation)', { timeout: 30_000 }, async (t) => {
  const h = await startHarness({ env: { OPENROUTER_API_KEY: 'sk-or-v1-server-key-for-tests', METRICS_ENABLED: 'true', GENERATION_COSTS: 'true' } });
  t.after(() => h.close());
  h.fake.enqueue({ type: 'reset-mid-stream', afterEvents: 2 });
  const res = await fetch(`${h.url}/v1/chat/completions`, {
    method: 'POST', headers: { 'content-type': 'application/json', 'x-request-id': 'cut-1' }, body: JSON.stringify({ ...CHAT_BODY, stream: true }),
  });
  assert.equal(res.status, 200);
  await res.text();
  const line = await h.logs.requestLine('cut-1');
  assert.equal(line.stream_error, 'upstream_cut');
  assert.equal(line.cost_usd, undefined, 'the stream never reported its usage');
  const reconciled = await h.logs.waitFor((r) => r.msg === 'generation cost' && r.reqId === 'cut-1', 15_000);
  assert.equal(reconciled.cost_source, 'generation');
  assert.equal(reconciled.generation_id, line.generation_id);
  assert.ok((reconciled.cost_usd as number) > 0);
  const lookups = h.fake.received.filter((r) => r.url.startsWith('/api/v1/generation?id='));
  assert.equal(lookups.length, 1);
  assert.equal(lookups[0]!.headers.authorization, 'Bearer sk-or-v1-server-key-for-tests');
  const scrape = await (await fetch(`${h.url}/metrics`)).text();
  assert.match(scrape, /^signalbox_cost_usd_total\{rule="none",model="[^"]+",source="generation",variant="none"\} \S+$/m);
});

test('GENERATION_COSTS=false, or no server key, looks nothing up', { timeout: 30_000 }, async (t) => {
  const off = await startHarness({ env: { OPENROUTER_API_KEY: 'sk-or-v1-server-key-for-tests', GENERATION_COSTS: 'false' } });
  t.after(() => off.close());
  assert.equal(off.generationCosts, undefined);
  const keyless = await startHarness({ env: { GENERATION_COSTS: 'true' } });
  t.after(() => keyless.close());
  assert.equal(keyless.generationCosts, undefined, 'a client\'s own key is never kept for a later lookup');
  const on = await startHarness({ env: { OPENROUTER_API_KEY: 'sk-or-v1-server-key-for-tests', GENERATION_COSTS: 'true' } });
  t.after(() => on.close());
  assert.ok(on.generationCosts);
});
