/**
 * `x-signalbox-overhead-ms` on the answers the proxy gives itself once a request reached a
 * route (502, 504, 400, 413...), as on relayed answers: a decimal number of milliseconds, no more
 * than the request took and no more than the overhead on its log line (all of its duration when
 * nothing was sent upstream).
 */
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import type { Fault } from '../../src/dev/fake-openrouter.js';
import { CHAT_BODY, startHarness, type Harness } from '../support/harness.js';
import { jsonOf, rawRequest } from '../support/http.js';

const EVENT_TEST = { timeout: 30_000 };

interface ErrorCase {
  readonly name: string;
  readonly env?: Record<string, string>;
  readonly fault?: Fault;
  readonly body: string;
  readonly status: number;
  readonly code: string;
}

const CASES: readonly ErrorCase[] = [
  { name: '502 upstream_unreachable (reset before the head)', fault: { type: 'reset-before-headers' }, body: JSON.stringify(CHAT_BODY), status: 502, code: 'upstream_unreachable' },
  {
    name: '504 upstream_timeout (no head in time)', env: { UPSTREAM_HEADERS_TIMEOUT_MS: '150' }, fault: { type: 'hang' },
    body: JSON.stringify(CHAT_BODY), status: 504, code: 'upstream_timeout',
  },
  { name: '400 invalid_json (nothing sent upstream)', body: '{"model":', status: 400, code: 'invalid_json' },
  { name: '413 body_too_large', env: { BODY_LIMIT_BYTES: '1024' }, body: JSON.stringify({ ...CHAT_BODY, pad: 'x'.repeat(2048) }), status: 413, code: 'body_too_large' },
];

async function harness(t: TestContext, env: Record<string, string> = {}): Promise<Harness> {
  const h = await startHarness({ env: { OPENROUTER_API_KEY: 'sk-or-overhead', ...env } });
  t.after(() => h.close());
  return h;
}

for (const c of CASES) {
  test(`x-signalbox-overhead-ms on the proxy's own ${c.name}`, EVENT_TEST, async (t) => {
    const h = await harness(t, c.env);
    if (c.fault) h.fake.enqueue(c.fault);
    const id = `overhead-${String(c.status)}`;
    const started = process.hrtime.bigint();
    const res = await rawRequest(h.url, {
      method: 'POST', path: '/v1/chat/completions', headers: { 'content-type': 'application/json', 'x-request-id': id }, body: c.body,
    });
    const totalMs = Number(process.hrtime.bigint() - started) / 1e6;

    assert.equal(res.status, c.status, res.body.toString('utf8'));
    assert.equal(jsonOf<{ error: { code: string } }>(res).error.code, c.code);
    const header = res.headers['x-signalbox-overhead-ms'];
    assert.equal(typeof header, 'string', 'the header is present');
    assert.match(header as string, /^\d+\.\d{3}$/);
    const ms = Number(header);
    assert.ok(ms >= 0 && ms < totalMs, `overhead ${ms} ms not within [0, ${totalMs})`);
    // The line has overhead_ms once an upstream call was made; before that, all of the request is overhead.
    const line = await h.logs.requestLine(id);
    const logged = (line.overhead_ms ?? line.duration_ms) as number;
    assert.ok(ms <= logged + 0.001, `header ${ms} > logged overhead ${logged}`);
  });
}
