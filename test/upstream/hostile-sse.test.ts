import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CHAT_BODY, startHarness } from '../support/harness.js';

const STREAM_BODY = { ...CHAT_BODY, stream: true };

/** An in-band error whose code is an object with a `toString` key: String() of it throws. */
const HOSTILE_SSE = [
  ': OPENROUTER PROCESSING\n\n',
  `data: ${JSON.stringify({ id: 'gen-1', model: CHAT_BODY.model, choices: [{ index: 0, delta: { content: 'Hi' }, finish_reason: null }] })}\n\n`,
  `data: ${JSON.stringify({ id: 'gen-1', model: CHAT_BODY.model, error: { code: { toString: 1 }, message: { valueOf: 1 } }, choices: [{ index: 0, delta: { content: '' }, finish_reason: 'error' }] })}\n\n`,
  'data: [DONE]\n\n',
].join('');

test('a malformed in-band SSE error is relayed byte for byte and logged; the proxy keeps serving (issue 12, defect 2)', { timeout: 30_000 }, async (t) => {
  const h = await startHarness({ env: { OPENROUTER_API_KEY: 'sk-or-server' } });
  t.after(() => h.close());
  h.fake.enqueue({ type: 'garbage', contentType: 'text/event-stream', body: HOSTILE_SSE });

  const res = await fetch(`${h.url}/v1/chat/completions`, {
    method: 'POST', headers: { 'content-type': 'application/json', 'x-request-id': 'hostile-sse' }, body: JSON.stringify(STREAM_BODY),
  });
  assert.equal(res.status, 200);
  assert.equal(await res.text(), HOSTILE_SSE);
  const line = await h.logs.requestLine('hostile-sse');
  assert.equal(line.status, 200);
  assert.equal(line.stream_error, 'upstream_inband');
  assert.equal(line.upstream_error, 'error');

  // Still alive: the next request is served.
  const next = await fetch(`${h.url}/v1/chat/completions`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(STREAM_BODY),
  });
  assert.equal(next.status, 200);
  await next.text();
});
