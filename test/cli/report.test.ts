import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import { main } from '../../src/cli/commands.js';
import { MAX_REPORT_ROWS, buildReport } from '../../src/cli/report.js';
import { LATENCY_SAMPLE_SIZE, MAX_VARIANT_ROWS, buildVariantReport } from '../../src/cli/variant-report.js';
import { mulberry32 } from '../../src/seeded-random.js';

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

const logLine = (msg: string, fields: Record<string, unknown>): string => JSON.stringify({ level: 30, msg, ...fields });

test('report --by variant: per rule and arm, cost, latency percentiles, errors, feedback and shadow agreement with 95% intervals', async () => {
  const log = [
    logLine('request', { rule: 'exp', variant: 'control', status: 200, duration_ms: 100, cost_usd: 0.001 }),
    logLine('request', { rule: 'exp', variant: 'control', status: 200, duration_ms: 200, cost_usd: 0.002 }),
    logLine('request', { rule: 'exp', variant: 'control', status: 502, duration_ms: 300, cost_usd: 0.003 }),
    logLine('request', { rule: 'exp', variant: 'control', status: 200, duration_ms: 400, stream: true, stream_error: 'upstream_idle_timeout' }),
    logLine('request', { rule: 'exp', variant: 'candidate', status: 200, duration_ms: 50, cost_usd: 0.01 }),
    logLine('request', { rule: 'exp', variant: 'candidate', status: 499, duration_ms: 70, cost_usd: 0.02 }),
    logLine('request', { rule: 'plain', status: 200, duration_ms: 10 }),
    // No rule: not an arm (pass-through, the feedback call itself).
    logLine('request', { method: 'POST', path: '/v1/feedback', status: 200, duration_ms: 1 }),
    logLine('feedback', { rule: 'exp', variant: 'control', model: 'm/a', label: 'good', score: 1 }),
    logLine('feedback', { rule: 'exp', variant: 'control', model: 'm/a', label: 'good' }),
    logLine('feedback', { rule: 'exp', variant: 'control', model: 'm/a', label: 'bad' }),
    logLine('feedback', { rule: 'exp', variant: 'candidate', model: 'm/b', label: 'bad' }),
    logLine('shadow', { rule: 'exp', variant: 'candidate', judge_agreement: true, judge_score: 0.9 }),
    logLine('shadow', { rule: 'exp', variant: 'candidate', judge_agreement: false, judge_score: 0.5 }),
    logLine('shadow', { rule: 'exp', variant: 'candidate', judge_score: 0.1 }),
    'not json',
  ].join('\n');
  const out: string[] = [];
  const code = await main(['report', '--by', 'variant', '-'], { out: (l) => out.push(l), err: (l) => out.push(`ERR ${l}`), env: {}, stdin: Readable.from([log]) });
  assert.equal(code, 0, out.join('\n'));
  assert.equal(out.length, 6, out.join('\n'));
  assert.match(out[0]!, /^\| rule \| variant \| requests \| cost\/request USD \| p50 ms \| p95 ms \| errors \| feedback \| good \| shadow agreement \| judge score \|$/);
  // Intervals checked against the formulas computed independently (Python's statistics module).
  assert.equal(out[2], '| exp | candidate | 2 | 0.015000 [0.005200, 0.024800] | 50 [50, 70] | 70 [50, 70] | 0.0% [0.0%, 65.8%] | bad 1 | 0.0% [0.0%, 79.3%] | 50.0% [9.5%, 90.5%] | 0.700 [0.308, 1.092] |');
  assert.equal(out[3], '| exp | control | 4 | 0.002000 [0.000868, 0.003132] | 200 [100, 400] | 400 [200, 400] | 50.0% [15.0%, 85.0%] | good 2, bad 1 | 66.7% [20.8%, 93.9%] | - | - |');
  assert.equal(out[4], '| plain | none | 1 | - | 10 [10, 10] | 10 [10, 10] | 0.0% [0.0%, 79.3%] | - | - | - | - |');
  assert.match(out[5]!, /^16 lines read, 1 not JSON\. Each figure is followed by its 95% confidence interval/);

  const json: string[] = [];
  assert.equal(await main(['report', '--by', 'variant', '--json', '-'], { out: (l) => json.push(l), err: (l) => json.push(`ERR ${l}`), env: {}, stdin: Readable.from([log]) }), 0);
  const report = JSON.parse(json.join('\n')) as { rows: { rule: string; variant: string; errors: number; feedback: Record<string, number>; shadows: number }[] };
  assert.deepEqual(report.rows.map((r) => [r.rule, r.variant, r.errors, r.feedback, r.shadows]), [
    ['exp', 'candidate', 0, { bad: 1 }, 2], ['exp', 'control', 2, { good: 2, bad: 1 }, 0], ['plain', 'none', 0, {}, 0],
  ]);
});

test('report --by variant: latency percentiles come from a bounded uniform sample whose interval holds the true value; rows are bounded', async () => {
  // 20,000 requests with durations 1..20000 in a shuffled order: true p50 10000, p95 19000.
  const random = mulberry32(5);
  const durations = Array.from({ length: 20_000 }, (_, i) => i + 1).sort(() => random() - 0.5);
  const lines = durations.map((d) => logLine('request', { rule: 'r', variant: 'a', status: 200, duration_ms: d }));
  const report = await buildVariantReport(Readable.from([lines.join('\n')]));
  const row = report.rows[0]!;
  assert.equal(row.requests, 20_000);
  assert.equal(row.latencySampled, LATENCY_SAMPLE_SIZE);
  assert.ok(row.p50Ms!.low <= 10_000 && 10_000 <= row.p50Ms!.high, JSON.stringify(row.p50Ms));
  assert.ok(row.p95Ms!.low <= 19_000 && 19_000 <= row.p95Ms!.high, JSON.stringify(row.p95Ms));
  // The sample is spread over the whole range, not the first 1,024 requests seen.
  assert.ok(row.p95Ms!.high - row.p50Ms!.low < 12_000 && row.p95Ms!.estimate > 17_000, JSON.stringify(row));

  const many = Array.from({ length: MAX_VARIANT_ROWS + 5 }, (_, i) => logLine('request', { rule: 'r', variant: `v${i}`, status: 200, duration_ms: 1 }));
  const bounded = await buildVariantReport(Readable.from([many.join('\n')]));
  assert.equal(bounded.rows.length, MAX_VARIANT_ROWS + 1);
  assert.equal(bounded.rows.find((r) => r.rule === '(other)')?.requests, 5);
});

test('report --by: an unknown grouping, --json without --by variant, or no file is a usage error', async () => {
  for (const args of [['--by', 'model', 'x.log'], ['--by', 'variant'], ['--json', 'x.log'], ['--by', 'variant', '--json']]) {
    const err: string[] = [];
    assert.equal(await main(['report', ...args], { out: () => undefined, err: (l) => err.push(l), env: {} }), 2, args.join(' '));
    assert.match(err[0]!, /usage: signalbox report \[--by variant \[--json\]\]/);
  }
});
