import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compileRules } from '../../src/rules/compile.js';
import { buildApp } from '../../src/server/app.js';
import { createLogger } from '../../src/server/logger.js';
import { LogCapture, testConfig } from '../support/harness.js';

/** Issue 12, defect 16: explain must not show a rule's header values or the server's file paths. */

const PROVIDER_SECRET = 'sk-provider-secret-in-a-rule-header';
const RULES_PATH = '/srv/private/team-a/signalbox/rules.yaml';
const RULES = `
version: 1
rules:
  - name: with-secret-header
    route: { model: openai/gpt-4o-mini, headers: { x-provider-key: ${PROVIDER_SECRET}, x-team: platform } }
`;

test("explain shows the names of a rule's upstream headers, never their values, and the rules file by base name", async (t) => {
  const config = testConfig({ OPENROUTER_BASE_URL: 'http://127.0.0.1:9/api/v1' });
  const rules = { current: compileRules(RULES, RULES_PATH) };
  const { app } = await buildApp({ config, logger: createLogger('silent', new LogCapture()), rules });
  t.after(() => app.close());
  const res = await app.inject({
    method: 'POST', url: '/v1/routing/explain', headers: { 'content-type': 'application/json' },
    payload: JSON.stringify({ model: 'auto', messages: [{ role: 'user', content: 'hi' }] }),
  });
  assert.equal(res.statusCode, 200, res.body);
  assert.equal(res.body.includes(PROVIDER_SECRET), false, 'the header value is not shown');
  assert.equal(res.body.includes('/srv/private'), false, 'the directory is not shown');
  const e = res.json<{ rules_file: string; rule: string; upstream_headers: Record<string, string>; route: { headers: Record<string, string> } }>();
  assert.equal(e.rule, 'with-secret-header');
  assert.equal(e.rules_file, 'rules.yaml');
  assert.deepEqual(e.upstream_headers, { 'x-provider-key': '[redacted]', 'x-team': '[redacted]' });
  assert.deepEqual(e.route.headers, { 'x-provider-key': '[redacted]', 'x-team': '[redacted]' });
  // The rules themselves still send the real value (the CLI's `test` checks it, locally).
  assert.equal(rules.current.explain({ headers: {}, body: { model: 'auto', messages: [] }, requestedModel: 'auto' }).upstream_headers['x-provider-key'], PROVIDER_SECRET);
});
