import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { EventEmitter, once } from 'node:events';
import { accessSync, constants } from 'node:fs';
import { createServer, request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { delimiter, join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { setImmediate as nextTurn } from 'node:timers/promises';
import type { Fault, ManualResponse, ReceivedRequest } from '../../src/dev/fake-openrouter.js';
import { compileRules } from '../../src/rules/compile.js';
import { LiveRules } from '../../src/rules-file/live-rules.js';
import { buildApp } from '../../src/server/app.js';
import { createLogger } from '../../src/server/logger.js';
import { CHAT_BODY, LogCapture, startHarness, testConfig, type Harness, type HarnessOptions } from '../support/harness.js';
import { withTimeout } from '../support/timeout.js';

/** Every test waits on events; this only turns a lost event into a failure instead of a hang. */
const EVENT_TEST = { timeout: 30_000 };

const FAST = 'openai/gpt-4o-mini';
const SMART = 'anthropic/claude-3.5-sonnet';

/** Header `x-task: code` routes to the smart tier, everything else to the fast one. */
const RULES = `version: 1
tiers:
  fast:
    model: ${FAST}
  smart:
    model: ${SMART}
rules:
  - name: code
    when: { header.x-task: code }
    route: { tier: smart }
  - name: default
    route: { tier: fast }
`;

/** One rule that forwards every request unchanged. */
const PASS_RULES = `version: 1
rules:
  - name: all
    route: { pass: true }
`;

const STREAM_BODY = { ...CHAT_BODY, stream: true };

// ---------------------------------------------------------------------------------------------
// Scrape parsing

interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

function unescapeLabel(v: string): string {
  return v.replace(/\\(.)/g, (_m, c: string) => (c === 'n' ? '\n' : c));
}

function parseValue(v: string): number {
  if (v === '+Inf') return Infinity;
  if (v === '-Inf') return -Infinity;
  return Number(v);
}

/** A Prometheus text scrape: sample lines parsed into name, label set and value. */
class Scrape {
  readonly lines: string[];
  readonly samples: Sample[] = [];

  constructor(readonly text: string) {
    this.lines = text.split('\n').filter((l) => l !== '');
    for (const line of this.lines) {
      if (line.startsWith('#')) continue;
      const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: \d+)?$/.exec(line);
      assert.ok(m, `unparsable scrape line: ${line}`);
      const labels: Record<string, string> = {};
      for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = unescapeLabel(l[2]!);
      this.samples.push({ name: m[1]!, labels, value: parseValue(m[3]!) });
    }
  }

  /** Every sample of this exact metric name (`_bucket`, `_count`... are names of their own). */
  series(name: string): Sample[] {
    return this.samples.filter((s) => s.name === name);
  }

  /** The value of the sample with exactly this name and label set (order-insensitive), if any. */
  value(name: string, labels: Record<string, string> = {}): number | undefined {
    const keys = Object.keys(labels);
    const found = this.series(name).filter(
      (s) => Object.keys(s.labels).length === keys.length && keys.every((k) => s.labels[k] === labels[k]),
    );
    assert.ok(found.length <= 1, `${name} ${JSON.stringify(labels)} appears ${found.length} times`);
    return found[0]?.value;
  }

  /** The label sets of a metric, as sorted JSON strings (for exact set comparisons). */
  labelSets(name: string): string[] {
    return this.series(name).map((s) => JSON.stringify(Object.fromEntries(Object.entries(s.labels).sort()))).sort();
  }
}

async function scrape(url: string): Promise<Scrape> {
  const res = await fetch(`${url}/metrics`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  return new Scrape(await res.text());
}

/** Label set of signalbox_requests_total, in prom-client's labelNames order. */
function requestLabels(rule: string, requested: string, model: string, status: number | string, stream: boolean, endpoint = 'chat'): Record<string, string> {
  return { endpoint, rule, requested_model: requested, model, status: String(status), stream: String(stream), variant: 'none' };
}

function sorted(labelSets: Record<string, string>[]): string[] {
  return labelSets.map((l) => JSON.stringify(Object.fromEntries(Object.entries(l).sort()))).sort();
}

// ---------------------------------------------------------------------------------------------
// Traffic helpers

async function harness(t: TestContext, options: HarnessOptions = {}): Promise<Harness> {
  const h = await startHarness({ rules: RULES, ...options, env: { OPENROUTER_API_KEY: 'sk-or-metrics-test', ...options.env } });
  t.after(() => h.close());
  return h;
}

interface ChatResult {
  readonly status: number;
  readonly text: string;
}

/**
 * One chat request, read to the end; resolves after the proxy's log line for it was written
 * (the metrics of an exchange are recorded in the same 'close' handler, right after the line).
 */
async function chat(h: Harness, id: string, body: unknown, headers: Record<string, string> = {}): Promise<ChatResult> {
  const res = await fetch(`${h.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-request-id': id, ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  await h.logs.requestLine(id);
  return { status: res.status, text };
}

/** A streaming chat request whose bytes are watched as they arrive, and which the test can abandon. */
interface WatchedRequest {
  waitForBody(predicate: (body: string) => boolean): Promise<void>;
  /** Resolves when the response body ended normally. */
  readonly ended: Promise<void>;
  leave(): void;
}

function watchedChat(h: Harness, id: string, body: unknown): WatchedRequest {
  const chunks: Buffer[] = [];
  const progress = new EventEmitter();
  let ended!: () => void;
  const endedPromise = new Promise<void>((resolve) => (ended = resolve));
  const req = httpRequest(`${h.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-request-id': id },
  });
  // The test may destroy the request on purpose; the resulting socket error is expected.
  req.on('error', () => {});
  req.on('response', (res) => {
    res.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      progress.emit('data');
    });
    res.on('end', () => ended());
    res.on('error', () => {});
  });
  req.end(JSON.stringify(body));
  const text = (): string => Buffer.concat(chunks).toString('utf8');
  return {
    waitForBody(predicate) {
      return new Promise((resolve) => {
        const check = (): void => {
          if (!predicate(text())) return;
          progress.off('data', check);
          resolve();
        };
        progress.on('data', check);
        check();
      });
    },
    ended: endedPromise,
    leave() {
      req.destroy();
    },
  };
}

/** One SSE data event in OpenRouter's chunk shape. */
function chunkEvent(model: string, delta: Record<string, unknown>, extra: Record<string, unknown> = {}): string {
  return `data: ${JSON.stringify({
    id: 'gen-manual', object: 'chat.completion.chunk', created: 1_700_000_000, model, provider: 'FakeProvider',
    choices: [{ index: 0, delta, finish_reason: null }],
    ...extra,
  })}\n\n`;
}

/** Starts a manual stream: head and one content event sent, the client has seen the content. */
async function openManualStream(h: Harness, id: string): Promise<{ manual: ManualResponse; client: WatchedRequest }> {
  h.fake.enqueue({ type: 'manual' });
  const client = watchedChat(h, id, STREAM_BODY);
  const manual = await h.fake.nextManual();
  manual.writeHead(200, { 'content-type': 'text/event-stream' });
  await manual.write(chunkEvent(FAST, { role: 'assistant', content: 'Hello' }));
  await client.waitForBody((b) => b.includes('Hello'));
  return { manual, client };
}

/** The served model the fake reports for a request (its `models[0] ?? model`). */
function servedBy(rec: ReceivedRequest): string {
  const body = rec.json as { model?: string; models?: string[] };
  return body.models?.[0] ?? body.model ?? '';
}

function sum(values: number[]): number {
  return values.reduce((a, b) => a + b, 0);
}

/** A port nothing listens on: bound by the OS, then released. */
async function closedPort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

// ---------------------------------------------------------------------------------------------
// Counters for a known sequence

/** 3 streams and 2 non-streamed requests over the two rules; one asks for a model nobody names. */
async function knownSequence(h: Harness): Promise<void> {
  const code = { 'x-task': 'code' };
  const results = [
    await chat(h, 'seq-1', STREAM_BODY, code),
    await chat(h, 'seq-2', STREAM_BODY, code),
    await chat(h, 'seq-3', { ...STREAM_BODY, model: 'nobody/invented' }),
    await chat(h, 'seq-4', CHAT_BODY, code),
    await chat(h, 'seq-5', CHAT_BODY),
  ];
  assert.deepEqual(results.map((r) => r.status), [200, 200, 200, 200, 200]);
  assert.equal(h.fake.received.length, 5);
  assert.deepEqual(h.fake.received.map(servedBy), [SMART, SMART, FAST, SMART, FAST]);
  for (const rec of h.fake.received) assert.ok(rec.usage, `request ${rec.seq} reported usage`);
}

test('signalbox_requests_total counts each request under its rule, requested model, model, status and stream', EVENT_TEST, async (t) => {
  const h = await harness(t);
  await knownSequence(h);
  const s = await scrape(h.url);
  assert.equal(s.value('signalbox_requests_total', requestLabels('code', FAST, SMART, 200, true)), 2);
  assert.equal(s.value('signalbox_requests_total', requestLabels('default', 'other', FAST, 200, true)), 1);
  assert.equal(s.value('signalbox_requests_total', requestLabels('code', FAST, SMART, 200, false)), 1);
  assert.equal(s.value('signalbox_requests_total', requestLabels('default', FAST, FAST, 200, false)), 1);
  assert.equal(s.series('signalbox_requests_total').length, 4);
});

test('signalbox_rule_matches_total and signalbox_upstream_requests_total count the known sequence', EVENT_TEST, async (t) => {
  const h = await harness(t);
  await knownSequence(h);
  const s = await scrape(h.url);
  assert.deepEqual(s.labelSets('signalbox_rule_matches_total'), sorted([{ rule: 'code' }, { rule: 'default' }]));
  assert.equal(s.value('signalbox_rule_matches_total', { rule: 'code' }), 3);
  assert.equal(s.value('signalbox_rule_matches_total', { rule: 'default' }), 2);
  assert.deepEqual(s.labelSets('signalbox_upstream_requests_total'), sorted([{ model: SMART, status: '200' }, { model: FAST, status: '200' }]));
  assert.equal(s.value('signalbox_upstream_requests_total', { model: SMART, status: '200' }), 3);
  assert.equal(s.value('signalbox_upstream_requests_total', { model: FAST, status: '200' }), 2);
});

test('signalbox_tokens_total and signalbox_cost_usd_total equal the usage the upstream reported', EVENT_TEST, async (t) => {
  const h = await harness(t);
  await knownSequence(h);
  const s = await scrape(h.url);
  for (const model of [SMART, FAST]) {
    const usages = h.fake.received.filter((r) => servedBy(r) === model).map((r) => r.usage!);
    assert.equal(s.value('signalbox_tokens_total', { model, type: 'prompt' }), sum(usages.map((u) => u.prompt_tokens)));
    assert.equal(s.value('signalbox_tokens_total', { model, type: 'completion' }), sum(usages.map((u) => u.completion_tokens)));
    // The fake reports no reasoning or cached tokens: those series must not appear.
    assert.equal(s.value('signalbox_tokens_total', { model, type: 'reasoning' }), undefined);
    assert.equal(s.value('signalbox_tokens_total', { model, type: 'cached' }), undefined);
    const rule = model === SMART ? 'code' : 'default';
    const cost = s.value('signalbox_cost_usd_total', { rule, model, source: 'upstream', variant: 'none' });
    const expected = sum(usages.map((u) => u.cost ?? 0));
    assert.ok(expected > 0);
    assert.ok(cost !== undefined && Math.abs(cost - expected) < 1e-12, `cost ${cost} for ${rule}/${model}, expected ${expected}`);
  }
  assert.equal(s.series('signalbox_tokens_total').length, 4);
  assert.equal(s.series('signalbox_cost_usd_total').length, 2);
});

test('duration, time-to-first-token and overhead histograms count every request (ttft: streams only)', EVENT_TEST, async (t) => {
  const h = await harness(t);
  await knownSequence(h);
  const s = await scrape(h.url);
  const duration = 'signalbox_request_duration_seconds_count';
  assert.equal(s.value(duration, { endpoint: 'chat', rule: 'code', model: SMART, stream: 'true', variant: 'none' }), 2);
  assert.equal(s.value(duration, { endpoint: 'chat', rule: 'default', model: FAST, stream: 'true', variant: 'none' }), 1);
  assert.equal(s.value(duration, { endpoint: 'chat', rule: 'code', model: SMART, stream: 'false', variant: 'none' }), 1);
  assert.equal(s.value(duration, { endpoint: 'chat', rule: 'default', model: FAST, stream: 'false', variant: 'none' }), 1);
  assert.equal(s.series(duration).length, 4);
  const ttft = 'signalbox_time_to_first_token_seconds_count';
  assert.equal(s.value(ttft, { rule: 'code', model: SMART, variant: 'none' }), 2);
  assert.equal(s.value(ttft, { rule: 'default', model: FAST, variant: 'none' }), 1);
  assert.equal(s.series(ttft).length, 2);
  assert.equal(s.value('signalbox_overhead_seconds_count'), 5);
  // Durations are real times: positive, and the +Inf bucket holds every observation.
  assert.ok(s.value('signalbox_request_duration_seconds_sum', { endpoint: 'chat', rule: 'code', model: SMART, stream: 'true', variant: 'none' })! > 0);
  assert.equal(s.value('signalbox_overhead_seconds_bucket', { le: '+Inf' }), 5);
});

// ---------------------------------------------------------------------------------------------
// Errors

test('upstream 429 and 503 pass-throughs are counted with their status', EVENT_TEST, async (t) => {
  const h = await harness(t);
  h.fake.enqueue({ type: 'status', status: 429 }, { type: 'status', status: 503 });
  assert.equal((await chat(h, 'err-429', CHAT_BODY)).status, 429);
  assert.equal((await chat(h, 'err-503', CHAT_BODY)).status, 503);
  const s = await scrape(h.url);
  assert.equal(s.value('signalbox_requests_total', requestLabels('default', FAST, FAST, 429, false)), 1);
  assert.equal(s.value('signalbox_requests_total', requestLabels('default', FAST, FAST, 503, false)), 1);
  assert.equal(s.series('signalbox_requests_total').length, 2);
  assert.equal(s.value('signalbox_upstream_requests_total', { model: FAST, status: '429' }), 1);
  assert.equal(s.value('signalbox_upstream_requests_total', { model: FAST, status: '503' }), 1);
  assert.equal(s.series('signalbox_upstream_requests_total').length, 2);
  // An error body reports no usage.
  assert.equal(s.series('signalbox_tokens_total').length, 0);
});

test('an unreachable upstream counts upstream_unreachable attempts and 502 responses', EVENT_TEST, async (t) => {
  const port = await closedPort();
  const h = await harness(t, { env: { OPENROUTER_BASE_URL: `http://127.0.0.1:${port}/api/v1` } });
  const res = await chat(h, 'unreachable-1', CHAT_BODY);
  assert.equal(res.status, 502);
  assert.equal((JSON.parse(res.text) as { error: { code: string } }).error.code, 'upstream_unreachable');
  const s = await scrape(h.url);
  assert.deepEqual(s.labelSets('signalbox_upstream_requests_total'), sorted([{ model: FAST, status: 'upstream_unreachable' }]));
  assert.equal(s.value('signalbox_upstream_requests_total', { model: FAST, status: 'upstream_unreachable' }), 1);
  assert.deepEqual(s.labelSets('signalbox_requests_total'), sorted([requestLabels('default', FAST, FAST, 502, false)]));
  assert.equal(s.value('signalbox_requests_total', requestLabels('default', FAST, FAST, 502, false)), 1);
});

test('a client that leaves a stream after its usage chunk counts a disconnect, a 499 and that usage', EVENT_TEST, async (t) => {
  const h = await harness(t);
  const { manual, client } = await openManualStream(h, 'cancel-1');
  const usage = { prompt_tokens: 37, completion_tokens: 11, total_tokens: 48, cost: 0.000059 };
  await manual.write(chunkEvent(FAST, { role: 'assistant', content: '' }, { usage }));
  await client.waitForBody((b) => b.includes('"cost":0.000059'));

  client.leave();

  assert.equal(await manual.request.outcome, 'aborted');
  const line = await h.logs.requestLine('cancel-1');
  assert.equal(line.status, 499);
  const s = await scrape(h.url);
  assert.equal(s.value('signalbox_client_disconnects_total'), 1);
  assert.equal(s.value('signalbox_requests_total', requestLabels('default', FAST, FAST, 499, true)), 1);
  assert.equal(s.series('signalbox_requests_total').length, 1);
  assert.equal(s.value('signalbox_tokens_total', { model: FAST, type: 'prompt' }), 37);
  assert.equal(s.value('signalbox_tokens_total', { model: FAST, type: 'completion' }), 11);
  const cost = s.value('signalbox_cost_usd_total', { rule: 'default', model: FAST, source: 'upstream', variant: 'none' });
  assert.ok(cost !== undefined && Math.abs(cost - 0.000059) < 1e-12, `cost ${cost}`);
  // A client leaving is not a stream error.
  assert.equal(s.series('signalbox_stream_errors_total').length, 0);
});

/** Sends one stream with this fault and returns the scrape after its log line. */
async function streamWithFault(t: TestContext, id: string, fault: Fault): Promise<Scrape> {
  const h = await harness(t);
  h.fake.enqueue(fault);
  const res = await chat(h, id, STREAM_BODY);
  assert.equal(res.status, 200);
  return scrape(h.url);
}

test('an upstream connection cut mid-stream counts signalbox_stream_errors_total{kind="upstream_cut"}', EVENT_TEST, async (t) => {
  const s = await streamWithFault(t, 'cut-1', { type: 'reset-mid-stream', afterEvents: 2 });
  assert.deepEqual(s.labelSets('signalbox_stream_errors_total'), sorted([{ kind: 'upstream_cut' }]));
  assert.equal(s.value('signalbox_stream_errors_total', { kind: 'upstream_cut' }), 1);
  assert.equal(s.value('signalbox_client_disconnects_total'), 0);
});

test('an in-band upstream error mid-stream counts signalbox_stream_errors_total{kind="upstream_inband"}', EVENT_TEST, async (t) => {
  const s = await streamWithFault(t, 'inband-1', { type: 'error-mid-stream', afterEvents: 2 });
  assert.deepEqual(s.labelSets('signalbox_stream_errors_total'), sorted([{ kind: 'upstream_inband' }]));
  assert.equal(s.value('signalbox_stream_errors_total', { kind: 'upstream_inband' }), 1);
  assert.equal(s.value('signalbox_requests_total', requestLabels('default', FAST, FAST, 200, true)), 1);
});

// ---------------------------------------------------------------------------------------------
// Models

test('a response served by another model than the routed one counts a substitution', EVENT_TEST, async (t) => {
  const h = await harness(t, { rules: PASS_RULES, env: { METRICS_MODELS: 'a/x,b/y' } });
  const messages = CHAT_BODY.messages;
  assert.equal((await chat(h, 'sub-1', { model: 'a/x', models: ['b/y'], messages })).status, 200);
  // Served as routed: no substitution.
  assert.equal((await chat(h, 'sub-2', { model: 'a/x', messages })).status, 200);
  assert.deepEqual(h.fake.received.map(servedBy), ['b/y', 'a/x']);
  const s = await scrape(h.url);
  assert.deepEqual(s.labelSets('signalbox_model_substitutions_total'), sorted([{ routed_model: 'a/x', served_model: 'b/y' }]));
  assert.equal(s.value('signalbox_model_substitutions_total', { routed_model: 'a/x', served_model: 'b/y' }), 1);
  // The request is labelled by the model that served it.
  assert.equal(s.value('signalbox_requests_total', requestLabels('all', 'a/x', 'b/y', 200, false)), 1);
  assert.equal(s.value('signalbox_requests_total', requestLabels('all', 'a/x', 'a/x', 200, false)), 1);
});

test('1,000 invented model names keep the number of series and the scrape bounded', { timeout: 120_000 }, async (t) => {
  const MAX_SERVED = 20;
  const h = await harness(t, { rules: PASS_RULES, env: { METRICS_MAX_SERVED_MODELS: String(MAX_SERVED) } });
  const before = await scrape(h.url);
  const TOTAL = 1000;
  const BATCH = 50;
  for (let start = 0; start < TOTAL; start += BATCH) {
    const batch = Array.from({ length: BATCH }, (_, i) =>
      chat(h, `card-${start + i}`, { model: `invented/${randomUUID()}`, messages: CHAT_BODY.messages }));
    const results = await Promise.all(batch);
    assert.deepEqual(new Set(results.map((r) => r.status)), new Set([200]));
  }
  const s = await scrape(h.url);

  const requests = s.series('signalbox_requests_total');
  assert.equal(sum(requests.map((r) => r.value)), TOTAL);
  assert.deepEqual(new Set(requests.map((r) => r.labels.requested_model)), new Set(['other']));
  const models = new Set(requests.map((r) => r.labels.model));
  // The first MAX_SERVED served models keep their names, every later one is `other`.
  assert.equal(models.size, MAX_SERVED + 1);
  assert.ok(models.has('other'));
  assert.equal(requests.length, MAX_SERVED + 1);
  // An attempt is counted before its response vouches for the model, so each invented name,
  // attempted once, is `other` there: never more series than the served slots allow.
  assert.ok(s.series('signalbox_upstream_requests_total').length <= MAX_SERVED + 1);

  // Bound on the scrape. With M = MAX_SERVED + 1 model label values, one rule, one status and
  // non-streaming requests, the signalbox_* sample lines are at most:
  //   requests_total M + upstream_requests_total M + tokens_total 2M (prompt, completion)
  //   + cost_usd_total M + duration histogram M * (buckets + 3: +Inf, _sum, _count)
  //   + overhead histogram (buckets + 3) + rule_matches 1 + rules_info 1 + last_reload 1
  //   + last_reload_successful 1 + inflight 1 + active_streams 1 + client_disconnects 1 + models_in_cooldown 1
  //   + catalog_age_seconds 1 + catalog_refresh_failures_total 1,
  // plus a # HELP and a # TYPE line for each of the 38 signalbox metrics registered without Redis
  // (the 8 signalbox_shadow_* included, which ordinary traffic leaves empty). Every other line is
  // a Node/process default metric, which no request can multiply: we allow what the scrape had
  // before the traffic, plus 200 lines for the series the runtime may add meanwhile (GC kinds,
  // heap spaces). Labelling by raw model name would instead give more than 1,000 * 20 lines.
  const M = MAX_SERVED + 1;
  const durationBuckets = h.config.metrics.duration_buckets_seconds.length;
  const overheadBuckets = h.config.metrics.overhead_buckets_seconds.length;
  const signalboxBound = M + M + 2 * M + M + M * (durationBuckets + 3) + (overheadBuckets + 3) + 10 + 2 * 38;
  const isSignalbox = (line: string): boolean => /^(# (HELP|TYPE) )?signalbox_/.test(line);
  const signalboxLines = s.lines.filter(isSignalbox).length;
  assert.ok(signalboxLines <= signalboxBound, `${signalboxLines} signalbox lines > bound ${signalboxBound}`);
  const bound = signalboxBound + before.lines.filter((l) => !isSignalbox(l)).length + 200;
  assert.ok(s.lines.length < bound, `${s.lines.length} scrape lines, bound ${bound}`);
});

// ---------------------------------------------------------------------------------------------
// Every /v1 response is counted, by endpoint

/** Any request to the proxy, read to the end; resolves after its log line (so its metrics are recorded). */
async function send(h: Harness, id: string, method: string, path: string, init: { body?: string; headers?: Record<string, string> } = {}): Promise<number> {
  const res = await fetch(`${h.url}${path}`, { method, headers: { 'x-request-id': id, ...init.headers }, body: init.body });
  await res.arrayBuffer();
  await h.logs.requestLine(id);
  return res.status;
}

const JSON_TYPE = { 'content-type': 'application/json' };

test('the proxy\'s own answers before routing are counted: chat refusals as rule unrouted, other endpoints by their name', EVENT_TEST, async (t) => {
  const h = await harness(t, { env: { BODY_LIMIT_BYTES: '1024' } });
  const chatPath = '/v1/chat/completions';
  assert.equal(await send(h, 'pre-json', 'POST', chatPath, { body: '{"model": ', headers: JSON_TYPE }), 400);
  assert.equal(await send(h, 'pre-array', 'POST', chatPath, { body: '[]', headers: JSON_TYPE }), 400);
  assert.equal(await send(h, 'pre-413', 'POST', chatPath, { body: JSON.stringify({ ...CHAT_BODY, pad: 'x'.repeat(2048) }), headers: JSON_TYPE }), 413);
  assert.equal(await send(h, 'pre-415', 'POST', chatPath, { body: 'hello', headers: { 'content-type': 'text/plain' } }), 415);
  assert.equal(await send(h, 'pre-404', 'GET', '/v1?x=1'), 404);
  assert.equal(await send(h, 'pre-explain', 'POST', '/v1/routing/explain', { body: JSON.stringify(CHAT_BODY), headers: JSON_TYPE }), 200);
  assert.equal(await send(h, 'pre-models', 'GET', '/v1/models'), 200);
  // Probes and the scrape itself are not counted.
  for (const probe of ['/healthz', '/readyz', '/metrics']) assert.equal(await send(h, `probe${probe.replace('/', '-')}`, 'GET', probe), 200);
  assert.equal(h.fake.received.length, 1);

  const s = await scrape(h.url);
  assert.deepEqual(s.labelSets('signalbox_requests_total'), sorted([
    requestLabels('unrouted', 'none', 'unknown', 400, false),
    requestLabels('unrouted', 'none', 'unknown', 413, false),
    requestLabels('unrouted', 'none', 'unknown', 415, false),
    requestLabels('unrouted', 'none', 'unknown', 404, false, 'other'),
    requestLabels('unrouted', 'none', 'unknown', 200, false, 'explain'),
    requestLabels('unrouted', 'none', 'unknown', 200, false, 'models'),
  ]));
  assert.equal(s.value('signalbox_requests_total', requestLabels('unrouted', 'none', 'unknown', 400, false)), 2);
  assert.equal(sum(s.series('signalbox_requests_total').map((r) => r.value)), 7);
  assert.equal(sum(s.series('signalbox_request_duration_seconds_count').map((r) => r.value)), 7);
  // `none` keeps its meaning, routed with no rule matched: nothing here was routed.
  assert.equal(s.series('signalbox_rule_matches_total').length, 0);
});

test('401s from client keys are counted under their endpoint, with rule unrouted', EVENT_TEST, async (t) => {
  const h = await harness(t, { env: { SIGNALBOX_API_KEYS: 'sb-client-key' } });
  assert.equal(await send(h, 'auth-chat', 'POST', '/v1/chat/completions', { body: JSON.stringify(CHAT_BODY), headers: JSON_TYPE }), 401);
  assert.equal(await send(h, 'auth-models', 'GET', '/v1/models'), 401);
  assert.equal(await send(h, 'auth-embed', 'POST', '/v1/embeddings', { body: '{"model":"x","input":"a"}', headers: JSON_TYPE }), 401);
  assert.equal(h.fake.received.length, 0);
  const s = await scrape(h.url);
  assert.deepEqual(s.labelSets('signalbox_requests_total'), sorted([
    requestLabels('unrouted', 'none', 'unknown', 401, false),
    requestLabels('unrouted', 'none', 'unknown', 401, false, 'models'),
    requestLabels('unrouted', 'none', 'unknown', 401, false, 'embeddings'),
  ]));
});

test('503s while draining are counted; a routed chat request still counts under its rule', EVENT_TEST, async (t) => {
  const h = await harness(t);
  assert.equal((await chat(h, 'drain-before', CHAT_BODY)).status, 200);
  h.lifecycle.startDraining();
  assert.equal(await send(h, 'drain-chat', 'POST', '/v1/chat/completions', { body: JSON.stringify(CHAT_BODY), headers: JSON_TYPE }), 503);
  assert.equal(await send(h, 'drain-models', 'GET', '/v1/models'), 503);
  const s = await scrape(h.url);
  assert.deepEqual(s.labelSets('signalbox_requests_total'), sorted([
    requestLabels('default', FAST, FAST, 200, false),
    requestLabels('unrouted', 'none', 'unknown', 503, false),
    requestLabels('unrouted', 'none', 'unknown', 503, false, 'models'),
  ]));
});

test('forwarded endpoints are rule unrouted, never none: /v1/models and /v1/embeddings do not read as chat', EVENT_TEST, async (t) => {
  const h = await harness(t, { env: { METRICS_MODELS: 'openai/text-embedding-3-small' } });
  assert.equal(await send(h, 'fwd-models', 'GET', '/v1/models'), 200);
  assert.equal(await send(h, 'fwd-embed', 'POST', '/v1/embeddings', { body: '{"model":"openai/text-embedding-3-small","input":"a"}', headers: JSON_TYPE }), 200);
  // The fake knows no generation stats: the upstream's own 404, forwarded.
  assert.equal(await send(h, 'fwd-other', 'GET', '/v1/generation?id=gen-1'), 404);
  const s = await scrape(h.url);
  const requests = s.series('signalbox_requests_total');
  assert.deepEqual(requests.map((r) => [r.labels.endpoint, r.labels.rule, r.labels.status]).sort(), [
    ['embeddings', 'unrouted', '200'], ['models', 'unrouted', '200'], ['other', 'unrouted', '404'],
  ]);
});

// ---------------------------------------------------------------------------------------------
// Clients choose no label value

const REFUSING_RULES = `version: 1
rules:
  - name: refuse
    when: { header.x-refuse: "yes" }
    route: { reject: { status: 403, message: refused } }
  - name: all
    route: { pass: true }
`;

test('made-up model names of 120 refused requests take no served-model slot; a real served model later gets its own label', { timeout: 60_000 }, async (t) => {
  // The default of 100 slots: the made-up names outnumber them.
  const h = await harness(t, { rules: REFUSING_RULES });
  assert.equal(h.config.metrics.max_served_models, 100);
  const messages = CHAT_BODY.messages;
  // Ten at a time: a bounded number of connections in flight on a small CI machine.
  const BATCH = 10;
  for (let start = 0; start < 120; start += BATCH) {
    const batch = Array.from({ length: BATCH }, (_, i) => {
      const n = start + i;
      // Half refused by a rule, half by the upstream (as OpenRouter answers an unknown model).
      if (n % 2 === 0) return chat(h, `junk-${n}`, { model: `junk/${n}`, messages }, { 'x-refuse': 'yes' });
      h.fake.enqueue({ type: 'status', status: 400 });
      return chat(h, `junk-${n}`, { model: `junk/${n}`, messages });
    });
    const statuses = new Set((await Promise.all(batch)).map((r) => r.status));
    assert.deepEqual(statuses, new Set([400, 403]));
  }
  assert.equal((await chat(h, 'real-1', { model: 'real/served-model', messages })).status, 200);
  assert.equal((await chat(h, 'real-2', { model: 'real/served-model', messages })).status, 200);

  const s = await scrape(h.url);
  for (const name of ['signalbox_requests_total', 'signalbox_upstream_requests_total', 'signalbox_request_duration_seconds_count']) {
    const junk = s.series(name).filter((r) => r.labels.model?.startsWith('junk/'));
    assert.deepEqual(junk.map((r) => r.labels.model), [], `${name} has no made-up model label`);
  }
  assert.equal(s.value('signalbox_requests_total', requestLabels('all', 'other', 'real/served-model', 200, false)), 2);
  assert.equal(s.value('signalbox_requests_total', requestLabels('refuse', 'other', 'other', 403, false)), 60);
  assert.equal(s.value('signalbox_requests_total', requestLabels('all', 'other', 'other', 400, false)), 60);
  // The first attempt was counted before its response vouched for the name; the second has it.
  assert.equal(s.value('signalbox_upstream_requests_total', { model: 'real/served-model', status: '200' }), 1);
  assert.ok((s.value('signalbox_tokens_total', { model: 'real/served-model', type: 'prompt' }) ?? 0) > 0);
});

test('a model name of any length is cut to 200 characters on the log line', EVENT_TEST, async (t) => {
  const h = await harness(t, { rules: PASS_RULES });
  const long = `long/${'m'.repeat(5000)}`;
  h.fake.enqueue({ type: 'status', status: 400 });
  assert.equal((await chat(h, 'long-1', { model: long, messages: CHAT_BODY.messages })).status, 400);
  const line = await h.logs.requestLine('long-1');
  assert.equal(line.model, `${long.slice(0, 200)}…[cut, ${long.length} chars]`);
  assert.equal(line.routed_model, undefined, 'routed as asked: the line does not repeat it');
  const s = await scrape(h.url);
  assert.equal(s.value('signalbox_requests_total', requestLabels('all', 'other', 'other', 400, false)), 1);
});

// ---------------------------------------------------------------------------------------------
// Rules

test('signalbox_rules_info carries the hash of the rules in force', EVENT_TEST, async (t) => {
  const h = await harness(t);
  const hash = compileRules(RULES, 'any-name.yaml').hash;
  const explain = await fetch(`${h.url}/v1/routing/explain`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(CHAT_BODY),
  });
  assert.equal(((await explain.json()) as { rules_hash: string }).rules_hash, hash);
  const s = await scrape(h.url);
  assert.deepEqual(s.labelSets('signalbox_rules_info'), sorted([{ hash }]));
  assert.equal(s.value('signalbox_rules_info', { hash }), 1);
});

const RULES_V1 = `version: 1\nrules:\n  - name: first\n    route: { model: ${FAST} }\n`;
const RULES_V2 = `version: 1\nrules:\n  - name: second\n    route: { model: ${SMART} }\n`;

/** An app whose rules come from a LiveRules reading `file.text` on each reload. */
async function startWithLiveRules(t: TestContext, file: { text: string }): Promise<{ url: string; rules: LiveRules }> {
  const load = () => compileRules(file.text, 'rules.yaml');
  const rules = new LiveRules(load(), load);
  // No request goes upstream in these tests; the base URL only has to be valid.
  const config = testConfig({ OPENROUTER_BASE_URL: 'http://127.0.0.1:9/api/v1' });
  const { app } = await buildApp({ config, logger: createLogger(config.log.level, new LogCapture()), rules });
  t.after(() => app.close());
  await app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = app.server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, rules };
}

/** Waits until the wall clock (in seconds, like the gauge) has moved past `seconds`. */
async function clockPast(seconds: number): Promise<void> {
  while (Date.now() / 1000 <= seconds) await nextTurn();
}

const LAST_RELOAD = 'signalbox_rules_last_reload_timestamp_seconds';

test('a successful reload counts success, moves rules_info to the new hash and advances the reload time', EVENT_TEST, async (t) => {
  const file = { text: RULES_V1 };
  const { url, rules } = await startWithLiveRules(t, file);
  const before = await scrape(url);
  const oldHash = compileRules(RULES_V1, 'x').hash;
  const newHash = compileRules(RULES_V2, 'x').hash;
  assert.deepEqual(before.labelSets('signalbox_rules_info'), sorted([{ hash: oldHash }]));
  assert.equal(before.series('signalbox_rules_reloads_total').length, 0);
  const startedAt = before.value(LAST_RELOAD)!;
  assert.ok(Math.abs(startedAt - Date.now() / 1000) < 60, `startup reload time ${startedAt}`);
  await clockPast(startedAt);

  file.text = RULES_V2;
  assert.equal(rules.reload('test').result, 'success');

  const after = await scrape(url);
  assert.deepEqual(after.labelSets('signalbox_rules_reloads_total'), sorted([{ result: 'success' }]));
  assert.equal(after.value('signalbox_rules_reloads_total', { result: 'success' }), 1);
  assert.deepEqual(after.labelSets('signalbox_rules_info'), sorted([{ hash: newHash }]));
  assert.equal(after.value('signalbox_rules_info', { hash: newHash }), 1);
  assert.ok(after.value(LAST_RELOAD)! > startedAt, `${after.value(LAST_RELOAD)} > ${startedAt}`);
});

test('a failed reload counts failure and leaves rules_info and the reload time unchanged', EVENT_TEST, async (t) => {
  const file = { text: RULES_V1 };
  const { url, rules } = await startWithLiveRules(t, file);
  const before = await scrape(url);
  await clockPast(before.value(LAST_RELOAD)!);

  file.text = 'version: 2\nrules: []\n';
  assert.equal(rules.reload('test').result, 'failure');

  const after = await scrape(url);
  assert.deepEqual(after.labelSets('signalbox_rules_reloads_total'), sorted([{ result: 'failure' }]));
  assert.equal(after.value('signalbox_rules_reloads_total', { result: 'failure' }), 1);
  assert.deepEqual(after.labelSets('signalbox_rules_info'), sorted([{ hash: compileRules(RULES_V1, 'x').hash }]));
  assert.equal(after.value(LAST_RELOAD), before.value(LAST_RELOAD));
});

test('a reload of the same content counts unchanged and leaves rules_info as it was', EVENT_TEST, async (t) => {
  const file = { text: RULES_V1 };
  const { url, rules } = await startWithLiveRules(t, file);
  assert.equal(rules.reload('test').result, 'unchanged');
  const s = await scrape(url);
  assert.deepEqual(s.labelSets('signalbox_rules_reloads_total'), sorted([{ result: 'unchanged' }]));
  assert.equal(s.value('signalbox_rules_reloads_total', { result: 'unchanged' }), 1);
  assert.deepEqual(s.labelSets('signalbox_rules_info'), sorted([{ hash: compileRules(RULES_V1, 'x').hash }]));
});

test('signalbox_rules_last_reload_successful drops to 0 on a refused file and is back to 1 once the file equals the rules in force', EVENT_TEST, async (t) => {
  const file = { text: RULES_V1 };
  const { url, rules } = await startWithLiveRules(t, file);
  const SUCCESSFUL = 'signalbox_rules_last_reload_successful';
  assert.equal((await scrape(url)).value(SUCCESSFUL), 1, 'after the startup load');

  file.text = 'version: 2\nrules: []\n';
  assert.equal(rules.reload('test').result, 'failure');
  assert.equal((await scrape(url)).value(SUCCESSFUL), 0);

  file.text = RULES_V1;
  assert.equal(rules.reload('test').result, 'unchanged');
  assert.equal((await scrape(url)).value(SUCCESSFUL), 1);
});

// ---------------------------------------------------------------------------------------------
// Gauges

test('an open stream shows in signalbox_active_streams and signalbox_inflight_requests until it ends', EVENT_TEST, async (t) => {
  const h = await harness(t);
  const idle = await scrape(h.url);
  assert.equal(idle.value('signalbox_active_streams'), 0);
  assert.equal(idle.value('signalbox_inflight_requests'), 0);
  const { manual, client } = await openManualStream(h, 'gauge-1');

  const open = await scrape(h.url);
  assert.equal(open.value('signalbox_active_streams'), 1);
  assert.equal(open.value('signalbox_inflight_requests'), 1);

  await manual.end('data: [DONE]\n\n');
  await client.ended;
  await h.logs.requestLine('gauge-1');
  const closed = await scrape(h.url);
  assert.equal(closed.value('signalbox_active_streams'), 0);
  assert.equal(closed.value('signalbox_inflight_requests'), 0);
});

// ---------------------------------------------------------------------------------------------
// Exposition format

/** Streaming, non-streaming, an upstream 429, a client that leaves, a proxy 400; returns the scrape. */
async function mixedTraffic(t: TestContext): Promise<Scrape> {
  const h = await harness(t);
  assert.equal((await chat(h, 'mix-stream', STREAM_BODY, { 'x-task': 'code' })).status, 200);
  assert.equal((await chat(h, 'mix-json', CHAT_BODY)).status, 200);
  h.fake.enqueue({ type: 'status', status: 429 });
  assert.equal((await chat(h, 'mix-429', CHAT_BODY)).status, 429);
  assert.equal((await chat(h, 'mix-400', '{"model": ')).status, 400);
  const { manual, client } = await openManualStream(h, 'mix-leave');
  client.leave();
  assert.equal(await manual.request.outcome, 'aborted');
  await h.logs.requestLine('mix-leave');
  const s = await scrape(h.url);
  assert.equal(s.value('signalbox_client_disconnects_total'), 1);
  return s;
}

/** The absolute path of `name` on PATH, if it is there. */
function onPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    const file = join(dir, name);
    try {
      accessSync(file, constants.X_OK);
      return file;
    } catch {
      // not here
    }
  }
  return undefined;
}

test('promtool check metrics accepts the scrape after mixed traffic', EVENT_TEST, async (t) => {
  const promtool = onPath('promtool');
  if (!promtool) {
    assert.ok(!process.env.CI, 'promtool must be installed in CI');
    t.skip('promtool not installed');
    return;
  }
  const s = await mixedTraffic(t);
  const child = spawn(promtool, ['check', 'metrics'], { stdio: ['pipe', 'pipe', 'pipe'] });
  t.after(() => child.kill());
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
  child.stdin.end(s.text);
  const [code] = (await withTimeout(once(child, 'close'), 'the child to exit')) as [number | null];
  assert.equal(stdout, '');
  assert.equal(stderr, '');
  assert.equal(code, 0);
});

test('the scrape declares every signalbox metric and the Node/process defaults', EVENT_TEST, async (t) => {
  const s = await mixedTraffic(t);
  const names = [
    'signalbox_requests_total', 'signalbox_request_duration_seconds', 'signalbox_time_to_first_token_seconds',
    'signalbox_overhead_seconds', 'signalbox_upstream_requests_total', 'signalbox_tokens_total', 'signalbox_cost_usd_total',
    'signalbox_model_substitutions_total', 'signalbox_stream_errors_total', 'signalbox_client_disconnects_total',
    'signalbox_rule_matches_total', 'signalbox_rules_reloads_total', 'signalbox_rules_last_reload_timestamp_seconds', 'signalbox_rules_last_reload_successful',
    'signalbox_rules_info', 'signalbox_inflight_requests', 'signalbox_active_streams', 'signalbox_fallbacks_total',
    'signalbox_model_cooldowns_total', 'signalbox_models_in_cooldown',
    'process_cpu_seconds_total', 'nodejs_heap_size_used_bytes',
  ];
  const typed = new Set(s.lines.filter((l) => l.startsWith('# TYPE ')).map((l) => l.split(' ')[2]));
  assert.deepEqual(names.filter((n) => !typed.has(n)), []);
  // The proxy's own 400 for a body it could not parse is counted too, as a chat request the rules never saw.
  assert.equal(s.value('signalbox_requests_total', requestLabels('unrouted', 'none', 'unknown', 400, false)), 1);
});

// ---------------------------------------------------------------------------------------------
// Configuration

test('METRICS_ENABLED=false removes GET /metrics and requests still work', EVENT_TEST, async (t) => {
  const h = await harness(t, { env: { METRICS_ENABLED: 'false' } });
  const res = await fetch(`${h.url}/metrics`);
  assert.equal(res.status, 404);
  assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'not_found');
  assert.equal((await chat(h, 'disabled-1', CHAT_BODY)).status, 200);
  assert.equal((await chat(h, 'disabled-2', STREAM_BODY)).status, 200);
  assert.equal(h.fake.received.length, 2);
});

test('METRICS_DURATION_BUCKETS_SECONDS sets exactly the le values of the duration histogram', EVENT_TEST, async (t) => {
  const h = await harness(t, { env: { METRICS_DURATION_BUCKETS_SECONDS: '0.5,1,2' } });
  assert.equal((await chat(h, 'buckets-1', CHAT_BODY)).status, 200);
  assert.equal((await chat(h, 'buckets-2', STREAM_BODY, { 'x-task': 'code' })).status, 200);
  const s = await scrape(h.url);
  const buckets = s.series('signalbox_request_duration_seconds_bucket');
  assert.equal(buckets.length, 2 * 4);
  for (const labels of [{ endpoint: 'chat', rule: 'default', model: FAST, stream: 'false', variant: 'none' }, { endpoint: 'chat', rule: 'code', model: SMART, stream: 'true', variant: 'none' }]) {
    const les = buckets.filter((b) => b.labels.rule === labels.rule).map((b) => b.labels.le);
    assert.deepEqual(les, ['0.5', '1', '2', '+Inf']);
    assert.equal(s.value('signalbox_request_duration_seconds_bucket', { ...labels, le: '+Inf' }), 1);
  }
});
