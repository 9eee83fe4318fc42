import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import type { ReceivedRequest } from '../../src/dev/fake-openrouter.js';
import { startHarness, type Harness } from './harness.js';

/**
 * What the real-SDK tests of the Responses and Messages shapes share (issue 18, item 7): a proxy
 * with a client key and a server key, rules that refuse by the prompt's text before the rules
 * under test, and readers of what reached upstream and of the request counter.
 */

export const CLIENT_KEY = 'sk-sb-shapes-client';
export const SERVER_KEY = 'sk-or-v1-shapes-server';

/** A prompt containing `refuse me` gets the proxy's own 400, `throttle me` its own 429. */
const REFUSALS = `version: 1
rules:
  - name: refused
    when: { request.text: { contains: "refuse me" } }
    route: { reject: { status: 400, message: "refused by policy" } }
  - name: throttled
    when: { request.text: { contains: "throttle me" } }
    route: { reject: { status: 429, message: "slow down" } }
`;

/** Signalbox with CLIENT_KEY as its only client key, SERVER_KEY upstream, the refusals, then `rules` (YAML list items). */
export async function routedHarness(t: TestContext, rules: string): Promise<Harness> {
  const h = await startHarness({ rules: REFUSALS + rules, env: { SIGNALBOX_API_KEYS: CLIENT_KEY, OPENROUTER_API_KEY: SERVER_KEY } });
  t.after(() => h.close());
  return h;
}

export function onlyUpstream(h: Harness): ReceivedRequest {
  assert.equal(h.fake.received.length, 1, 'exactly one upstream request');
  return h.fake.received[0]!;
}

/** The value of the `signalbox_requests_total` series whose labels include all of `labels` (`name="value"`); 0 when absent. */
export async function requestsCounted(h: Harness, labels: readonly string[]): Promise<number> {
  const text = await (await fetch(`${h.url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith('signalbox_requests_total{') && labels.every((label) => l.includes(label)));
  return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(' ') + 1));
}
