import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseCatalog } from '../../src/catalog/catalog.js';
import { LiveCatalog } from '../../src/catalog/refresher.js';
import { startHarness } from '../support/harness.js';

const RULES = `
version: 1
rules:
  - name: cheapest
    route: { choose: { from: [anthropic/claude-3.5-sonnet, openai/gpt-4o-mini], by: cost, require: [tools] } }
`;

test('choose through the proxy: the cheapest fitting model goes upstream with the rest as fallbacks; none fitting is a 400 no_model_fits', { timeout: 30_000 }, async (t) => {
  const catalog = new LiveCatalog();
  const h = await startHarness({ rules: RULES, catalog });
  t.after(() => h.close());
  catalog.replace(parseCatalog(await (await fetch(`${h.fake.baseUrl}/models`)).json()), Date.now());
  const post = (body: unknown) => fetch(`${h.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer sk-or-test' }, body: JSON.stringify(body) });

  const ok = await post({ model: 'auto', messages: [{ role: 'user', content: 'hi' }], max_tokens: 50 });
  assert.equal(ok.status, 200);
  assert.equal(ok.headers.get('x-signalbox-rule'), 'cheapest');
  assert.equal(ok.headers.get('x-signalbox-model'), 'openai/gpt-4o-mini');
  await ok.arrayBuffer();
  const sent = JSON.parse(h.fake.received.at(-1)!.body.toString('utf8')) as { model: string; models: string[] };
  assert.deepEqual([sent.model, sent.models], ['openai/gpt-4o-mini', ['openai/gpt-4o-mini', 'anthropic/claude-3.5-sonnet']]);

  const before = h.fake.received.length;
  const tooBig = await post({ model: 'auto', messages: [{ role: 'user', content: 'hi' }], max_tokens: 10_000_000 });
  assert.equal(tooBig.status, 400);
  const error = ((await tooBig.json()) as { error: { code: string; type: string; message: string } }).error;
  assert.equal(error.code, 'no_model_fits');
  assert.equal(error.type, 'invalid_request_error');
  assert.match(error.message, /openai\/gpt-4o-mini: context \d+ tokens < \d+ needed/);
  assert.equal(tooBig.headers.get('x-should-retry'), 'false');
  assert.equal(h.fake.received.length, before, 'nothing more went upstream');
});
