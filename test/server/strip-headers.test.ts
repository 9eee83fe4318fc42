import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CHAT_BODY, startHarness } from '../support/harness.js';
import { jsonOf, rawRequest } from '../support/http.js';

const RULES = `version: 1
rules:
  - name: pro-users
    when: { header.x-user-tier: pro }
    route: { model: anthropic/claude-3.5-sonnet }
`;

const CHAT_JSON = JSON.stringify(CHAT_BODY);

test('headers named in STRIP_HEADERS do not reach OpenRouter, and a rule still routes on them', async (t) => {
  const h = await startHarness({ rules: RULES, env: { STRIP_HEADERS: 'x-signalbox-*, X-User-Tier' } });
  t.after(() => h.close());

  const res = await rawRequest(h.url, {
    method: 'POST',
    path: '/v1/chat/completions',
    headers: {
      'content-type': 'application/json', authorization: 'Bearer sk-client',
      'X-User-Tier': 'pro', 'x-signalbox-trace': 'on', 'X-SIGNALBOX-Other': '1', 'x-team': 'platform',
    },
    body: CHAT_JSON,
  });
  assert.equal(res.status, 200, res.body.toString());
  assert.equal(res.headers['x-signalbox-rule'], 'pro-users');
  const received = h.fake.received[0];
  assert.ok(received);
  assert.equal((received.json as { model: string }).model, 'anthropic/claude-3.5-sonnet');
  for (const name of ['x-user-tier', 'x-signalbox-trace', 'x-signalbox-other']) {
    assert.equal(received.headers[name], undefined, `${name} reached the upstream`);
  }
  // Not listed: forwarded as before.
  assert.equal(received.headers['x-team'], 'platform');
  assert.equal(jsonOf<{ model: string }>(res).model, 'anthropic/claude-3.5-sonnet');
});

test('by default only x-signalbox-* is stripped, on pass-through endpoints too', async (t) => {
  const h = await startHarness();
  t.after(() => h.close());

  const res = await rawRequest(h.url, {
    method: 'GET',
    path: '/v1/models',
    headers: { authorization: 'Bearer sk-client', 'x-signalbox-debug': '1', 'x-user-tier': 'pro' },
  });
  assert.equal(res.status, 200);
  const received = h.fake.received[0];
  assert.ok(received);
  assert.equal(received.headers['x-signalbox-debug'], undefined);
  assert.equal(received.headers['x-user-tier'], 'pro');
});
