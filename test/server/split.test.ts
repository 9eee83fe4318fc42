import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startHarness } from '../support/harness.js';

const RULES = `
version: 1
rules:
  - name: ab
    route:
      split:
        sticky: header.x-session-id
        arms:
          - { name: control, weight: 1, model: openai/gpt-4o-mini }
          - { name: candidate, weight: 1, model: openai/gpt-4o }
`;

test('a split request carries its arm: the upstream model, the log line variant, the metrics variant label, explain; a missing subject is counted', async (t) => {
  const h = await startHarness({ rules: RULES });
  t.after(() => h.close());
  const send = async (id: string, session?: string) => {
    const res = await fetch(`${h.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: 'Bearer sk-or-client', 'x-request-id': id, ...(session !== undefined && { 'x-session-id': session }) },
      body: JSON.stringify({ model: 'auto', messages: [{ role: 'user', content: 'hi' }] }),
    });
    assert.equal(res.status, 200);
    await res.arrayBuffer();
    return h.logs.requestLine(id);
  };
  const first = await send('s1', 'session-42');
  const again = await send('s2', 'session-42');
  assert.ok(first.variant === 'control' || first.variant === 'candidate');
  assert.equal(again.variant, first.variant, 'the same subject, the same arm');
  const sent = h.fake.received.map((r) => (r.json as { model: string }).model);
  assert.deepEqual(sent, Array(2).fill(first.variant === 'control' ? 'openai/gpt-4o-mini' : 'openai/gpt-4o'));
  await send('s3');
  const explain = await fetch(`${h.url}/v1/routing/explain`, {
    method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer sk-or-client', 'x-session-id': 'session-42' },
    body: JSON.stringify({ model: 'auto', messages: [{ role: 'user', content: 'hi' }] }),
  });
  const explained = (await explain.json()) as { split: { variant: string; assignment: string } };
  assert.deepEqual([explained.split.variant, explained.split.assignment], [first.variant, 'sticky']);
  const scrape = await (await fetch(`${h.url}/metrics`)).text();
  const variant = first.variant as string;
  assert.match(scrape, new RegExp(`^signalbox_split_assignments_total\\{rule="ab",variant="${variant}",assignment="sticky"\\} 2$`, 'm'));
  assert.match(scrape, /^signalbox_split_assignments_total\{rule="ab",variant="[a-z]+",assignment="missing"\} 1$/m);
  assert.match(scrape, new RegExp(`^signalbox_requests_total\\{endpoint="chat",rule="ab",[^}]*,variant="${variant}"\\} `, 'm'));
});

test('the feedback token of a split answer carries its arm, and feedback on it is counted under that variant', async (t) => {
  const h = await startHarness({ rules: RULES, env: { FEEDBACK_SECRET: 'a-feedback-secret-of-at-least-32-characters' } });
  t.after(() => h.close());
  const res = await fetch(`${h.url}/v1/chat/completions`, {
    method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer sk-or-client', 'x-session-id': 'session-42' },
    body: JSON.stringify({ model: 'auto', messages: [{ role: 'user', content: 'hi' }] }),
  });
  assert.equal(res.status, 200);
  await res.arrayBuffer();
  const token = res.headers.get('x-signalbox-feedback-token')!;
  const payload = JSON.parse(Buffer.from(token.split('.')[0]!, 'base64url').toString('utf8')) as { r: string; v: string };
  assert.equal(payload.r, 'ab');
  assert.ok(payload.v === 'control' || payload.v === 'candidate', `variant ${payload.v}`);
  const feedback = await fetch(`${h.url}/v1/feedback`, {
    method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer sk-or-client' }, body: JSON.stringify({ token, label: 'good' }),
  });
  assert.equal(feedback.status, 200);
  const scrape = await (await fetch(`${h.url}/metrics`)).text();
  assert.match(scrape, new RegExp(`^signalbox_feedback_total\\{rule="ab",variant="${payload.v}",model="[^"]+",label="good"\\} 1$`, 'm'));
});
