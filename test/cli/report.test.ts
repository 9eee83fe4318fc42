import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import { main } from '../../src/cli/commands.js';
import { MAX_REPORT_ROWS, buildReport } from '../../src/cli/report.js';

const line = (fields: Record<string, unknown>): string => JSON.stringify({ level: 30, msg: 'request', ...fields });

test('report: cost, baseline cost and savings per rule and serving model, from the request log', async () => {
  const log = [
    line({ rule: 'cheap', served_model: 'openai/gpt-4o-mini', cost_usd: 0.001, baseline_cost_usd: 0.01 }),
    line({ rule: 'cheap', served_model: 'openai/gpt-4o-mini', cost_usd: 0.002, baseline_cost_usd: 0.02 }),
    line({ rule: 'premium', routed_model: 'anthropic/claude-3.5-sonnet', cost_usd: 0.05 }),
    '{"level":30,"msg":"rules loaded"}',
    'not json at all',
    line({ model: 'x/y' }),
  ].join('\n');
  const out: string[] = [];
  const code = await main(['report', '-'], { out: (l) => out.push(l), err: (l) => out.push(`ERR ${l}`), env: {}, stdin: Readable.from([log]) });
  assert.equal(code, 0);
  assert.equal(out[2], '| premium | anthropic/claude-3.5-sonnet | 1 | 0.050000 | - | - | - |');
  assert.equal(out[3], '| cheap | openai/gpt-4o-mini | 2 | 0.003000 | 0.030000 | 0.027000 | 90.0% |');
  assert.equal(out[4], '| unrouted | x/y | 1 | 0.000000 | - | - | - |');
  assert.equal(out[5], '| total |  | 4 | 0.053000 | 0.030000 | 0.027000 | 90.0% |');
  assert.match(out[6]!, /^6 lines read, 1 not JSON/);
});

test('report: a log of endless distinct model names keeps a bounded number of rows', async () => {
  const lines = Array.from({ length: MAX_REPORT_ROWS + 500 }, (_, i) => line({ rule: 'r', served_model: `m/${i}`, cost_usd: 1 }));
  const report = await buildReport(Readable.from([lines.join('\n')]));
  assert.equal(report.rows.length, MAX_REPORT_ROWS + 1);
  assert.equal(report.rows.find((r) => r.rule === '(other)')?.requests, 500);
});

test('report: a missing file is exit 1 with the reason; no file is a usage error', async () => {
  const err: string[] = [];
  const io = { out: () => undefined, err: (l: string) => err.push(l), env: {} };
  assert.equal(await main(['report', '/nonexistent/request.log'], io), 1);
  assert.match(err[0]!, /cannot read \/nonexistent\/request\.log/);
  assert.equal(await main(['report'], io), 2);
});
