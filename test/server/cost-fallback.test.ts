import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseCatalog, priceAt, times, plus, usd } from '../../src/catalog/catalog.js';
import { LiveCatalog } from '../../src/catalog/refresher.js';
import { CHAT_BODY, startHarness } from '../support/harness.js';

test('an answer without usage.cost is priced from the catalog: the log says cost_source catalog, the counter has source="catalog"', { timeout: 30_000 }, async (t) => {
  const catalog = new LiveCatalog();
  const h = await startHarness({ catalog, env: { METRICS_ENABLED: 'true' } });
  t.after(() => h.close());
  // The catalog the proxy would fetch: the fake's own.
  const models = parseCatalog(await (await fetch(`${h.fake.baseUrl}/models`)).json());
  catalog.replace(models, Date.now());

  const send = async (id: string, usageHeader: string | undefined) => {
    const res = await fetch(`${h.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: 'Bearer sk-or-test', 'x-request-id': id, ...(usageHeader && { 'x-fake-usage': usageHeader }) },
      body: JSON.stringify(CHAT_BODY),
    });
    assert.equal(res.status, 200);
    return (await res.json()) as { model: string; usage: { prompt_tokens: number; completion_tokens: number; cost?: number } };
  };

  const priced = await send('no-cost', '{"cost":false}');
  assert.equal(priced.usage.cost, undefined, 'the upstream reported no cost');
  const line = await h.logs.requestLine('no-cost');
  const model = models.get(priced.model)!;
  const pricing = priceAt(model, { promptTokens: priced.usage.prompt_tokens, at: new Date() });
  const expected = usd(plus(times(pricing.prompt!, priced.usage.prompt_tokens), times(pricing.completion!, priced.usage.completion_tokens)));
  assert.equal(line.cost_source, 'catalog');
  assert.equal(line.cost_usd, expected);

  const reported = await send('with-cost', undefined);
  const reportedLine = await h.logs.requestLine('with-cost');
  assert.equal(reportedLine.cost_source, 'upstream');
  assert.equal(reportedLine.cost_usd, reported.usage.cost);

  const scrape = await (await fetch(`${h.url}/metrics`)).text();
  assert.match(scrape, /^signalbox_cost_usd_total\{rule="none",model="[^"]+",source="catalog",variant="none"\} \S+$/m);
  assert.match(scrape, /^signalbox_cost_usd_total\{rule="none",model="[^"]+",source="upstream",variant="none"\} \S+$/m);
});
