import assert from 'node:assert/strict';
import { test } from 'node:test';
import { COMPLEXITY_LABELS, TASK_LABELS } from '../../src/classify/labels.js';
import { startHarness } from '../support/harness.js';

// `header.x-fixed` decides first when present: the classifier is then never asked (lazy fields).
const RULES = `
version: 1
rules:
  - name: fixed
    when: { header.x-fixed: "yes" }
    route: { model: openai/gpt-4o-mini }
  - name: hard
    when: { classify.complexity: { in: [complex, frontier] } }
    route: { model: openai/gpt-4o }
  - name: easy
    route: { model: openai/gpt-4o-mini }
`;

const BODY = { model: 'auto', messages: [{ role: 'user', content: 'Prove that every bounded monotone sequence of reals converges.' }] };

test('classify.*: the verdict the rules read is in explain, on the request log line and in signalbox_classifications_total; a request decided before any rule reads it is never classified', { timeout: 30_000 }, async (t) => {
  const h = await startHarness({ rules: RULES, env: { METRICS_ENABLED: 'true' } });
  t.after(() => h.close());
  const headers = { 'content-type': 'application/json', authorization: 'Bearer sk-or-test' };

  const explain = await (await fetch(`${h.url}/v1/routing/explain`, { method: 'POST', headers, body: JSON.stringify(BODY) })).json() as {
    rule: string; classification: { complexity: string; task: string; confidence: number; method: string }; fields: Record<string, unknown>;
  };
  const verdict = explain.classification;
  assert.ok(COMPLEXITY_LABELS.includes(verdict.complexity as never));
  assert.ok(TASK_LABELS.includes(verdict.task as never));
  assert.ok(verdict.confidence > 0 && verdict.confidence <= 1);
  assert.equal(verdict.method, 'local');
  assert.equal(explain.fields['classify.complexity'], verdict.complexity);
  assert.equal(explain.rule, ['complex', 'frontier'].includes(verdict.complexity) ? 'hard' : 'easy');

  const routed = await fetch(`${h.url}/v1/chat/completions`, { method: 'POST', headers: { ...headers, 'x-request-id': 'classified' }, body: JSON.stringify(BODY) });
  assert.equal(routed.status, 200);
  await routed.arrayBuffer();
  assert.equal(routed.headers.get('x-signalbox-rule'), explain.rule);
  const line = await h.logs.requestLine('classified');
  assert.deepEqual(line.classify, { complexity: verdict.complexity, task: verdict.task, confidence: Math.round(verdict.confidence * 1000) / 1000, method: 'local' });

  const fixed = await fetch(`${h.url}/v1/chat/completions`, { method: 'POST', headers: { ...headers, 'x-request-id': 'fixed', 'x-fixed': 'yes' }, body: JSON.stringify(BODY) });
  assert.equal(fixed.status, 200);
  await fixed.arrayBuffer();
  assert.equal((await h.logs.requestLine('fixed')).classify, undefined, 'no rule read classify.*: no verdict');

  const scrape = await (await fetch(`${h.url}/metrics`)).text();
  const count = (field: string, label: string) => Number(new RegExp(`^signalbox_classifications_total\\{field="${field}",label="${label}",method="local"\\} (\\S+)$`, 'm').exec(scrape)?.[1]);
  assert.equal(count('complexity', verdict.complexity), 1, 'one verdict counted: the routed request (explain is not counted, the fixed one never classified)');
  assert.equal(count('task', verdict.task), 1);
  assert.equal(count('confidence', `0.${Math.min(9, Math.floor(verdict.confidence * 10))}`), 1);
});
