import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Pool } from 'undici';
import type { Fault } from '../../src/dev/fake-openrouter.js';
import { CHAT_BODY, startHarness } from '../support/harness.js';

/**
 * A bounded soak: CONCURRENCY client loops send chat requests (streaming and not, alternately) for
 * SOAK_MS through a proxy whose upstream fails 10% of requests at random (seeded), with retries on.
 * Every request must end in a complete answer or a well-formed error, the metrics must count every
 * request, nothing may stay in flight, and the heap must come back near where it started.
 *
 * Costs about SOAK_MS + 2 s of CI time (20 s by default); SOAK_DURATION_MS overrides it
 * (e.g. SOAK_DURATION_MS=300000 for a longer run by hand).
 */
const SOAK_MS = Number(process.env.SOAK_DURATION_MS) || 20_000;
const CONCURRENCY = 50;
/** A request that takes longer than this has hung: the test fails. */
const REQUEST_TIMEOUT_MS = 15_000;
/** Generous: the heap holds JIT code, pools and caches after a run; a leak per request would grow far past it. */
const HEAP_GROWTH_LIMIT = 50 * 1024 * 1024;

const FAULTS: Fault[] = [
  { type: 'status', status: 503 },
  { type: 'status', status: 429 },
  { type: 'reset-before-headers' },
  { type: 'reset-mid-stream', afterEvents: 2 },
  { type: 'error-mid-stream', afterEvents: 2 },
];

/** What the fake streams as the assistant's reply, word by word. */
const CONTENT = 'Soak test reply, streamed word by word.';

/** How one client request ended. `ok` / `stream_ok` are complete answers; the rest are well-formed errors. */
type Outcome =
  | { readonly kind: 'ok' | 'stream_ok'; readonly status: 200 }
  | { readonly kind: 'http_error' | 'stream_error'; readonly status: number; readonly code: string };

interface SoakCounts {
  requests: number;
  /** Requests by `status/stream` as the clients saw them, to compare with signalbox_requests_total. */
  readonly byStatus: Map<string, number>;
  /** Outcomes by kind (`ok`, `stream_ok`, `http_error 503 503`, `stream_error 200 upstream_unreachable`...). */
  readonly byKind: Map<string, number>;
  /** Requests that did not end well-formed within REQUEST_TIMEOUT_MS: each one fails the test. */
  readonly failures: string[];
}

function bump(map: Map<string, number>, key: string): void {
  map.set(key, (map.get(key) ?? 0) + 1);
}

interface ErrorEnvelope {
  error?: { message?: unknown; code?: unknown };
}

/** An OpenAI / OpenRouter error envelope: `{"error":{"message": "...", "code": ...}}`; throws otherwise. */
function errorCode(body: ErrorEnvelope, what: string): string {
  if (typeof body.error?.message !== 'string' || body.error.message === '') {
    throw new Error(`${what} is not an error envelope: ${JSON.stringify(body).slice(0, 300)}`);
  }
  return String(body.error.code);
}

/** Classifies a non-streaming answer; throws when it is neither a complete completion nor an error envelope. */
function classifyJson(status: number, text: string): Outcome {
  const body = JSON.parse(text) as ErrorEnvelope & { choices?: { message?: { content?: unknown } }[] };
  if (status === 200) {
    assert.equal(body.choices?.[0]?.message?.content, CONTENT, `200 body without the completion: ${text.slice(0, 300)}`);
    return { kind: 'ok', status };
  }
  return { kind: 'http_error', status, code: errorCode(body, `${status} body`) };
}

interface StreamChunk {
  choices?: { delta?: { content?: string } }[];
}

/**
 * Classifies a 200 SSE stream: complete when it ends with `data: [DONE]`, a well-formed error when
 * its last event is an error event with `finish_reason: "error"`; throws otherwise.
 */
function classifyStream(text: string): Outcome {
  const events = text.split('\n\n').filter((e) => e !== '');
  const chunks = events.filter((e) => e.startsWith('data: ') && e !== 'data: [DONE]').map((e) => JSON.parse(e.slice(6)) as StreamChunk);
  const last = events[events.length - 1];
  if (last === 'data: [DONE]' && text.endsWith('\n\n')) {
    assert.equal(chunks.map((c) => c.choices?.[0]?.delta?.content ?? '').join(''), CONTENT, 'a complete stream carries the whole reply');
    return { kind: 'stream_ok', status: 200 };
  }
  if (last === undefined || !last.startsWith('data: ')) throw new Error(`stream ends without [DONE] or an error event: ${text.slice(-300)}`);
  const event = JSON.parse(last.slice(6)) as ErrorEnvelope & { choices?: { finish_reason?: unknown }[] };
  assert.equal(event.choices?.[0]?.finish_reason, 'error', `last event is not an error event: ${last}`);
  assert.ok(!text.includes('data: [DONE]'), 'an error stream must not also carry [DONE]');
  return { kind: 'stream_error', status: 200, code: errorCode(event, 'last stream event') };
}

/** One chat request through `pool`, read to its end and classified. */
async function chat(pool: Pool, stream: boolean): Promise<Outcome> {
  const res = await pool.request({
    method: 'POST',
    path: '/v1/chat/completions',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ ...CHAT_BODY, stream }),
    signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
  });
  const text = await res.body.text();
  const sse = String(res.headers['content-type']).startsWith('text/event-stream');
  assert.equal(sse, stream && res.statusCode === 200, `${res.statusCode} with content-type ${String(res.headers['content-type'])}`);
  return sse ? classifyStream(text) : classifyJson(res.statusCode, text);
}

/** A client loop: requests one after another until `deadline`, alternating streaming and not. */
async function clientLoop(pool: Pool, first: boolean, deadline: number, counts: SoakCounts): Promise<void> {
  for (let stream = first; Date.now() < deadline; stream = !stream) {
    counts.requests++;
    try {
      const outcome = await chat(pool, stream);
      bump(counts.byStatus, `${outcome.status}/${stream}`);
      bump(counts.byKind, 'code' in outcome ? `${outcome.kind} ${outcome.status} ${outcome.code}` : outcome.kind);
    } catch (err) {
      counts.failures.push(`${stream ? 'stream' : 'json'}: ${(err as Error).name}: ${(err as Error).message}`);
    }
  }
}

/** Node's gc(), without --expose-gc on the command line; undefined when this Node does not allow it. */
function exposeGc(): (() => void) | undefined {
  const existing = (globalThis as { gc?: () => void }).gc;
  if (typeof existing === 'function') return existing;
  try {
    setFlagsFromString('--expose_gc');
    const gc = runInNewContext('gc') as unknown;
    return typeof gc === 'function' ? (gc as () => void) : undefined;
  } catch {
    return undefined;
  }
}

/** heapUsed after a few full collections (timers and sockets closed just before free their memory late). */
async function settledHeapUsed(gc: (() => void) | undefined): Promise<number> {
  for (let i = 0; i < 4; i++) {
    gc?.();
    await new Promise((resolve) => setImmediate(resolve));
  }
  return process.memoryUsage().heapUsed;
}

/** The value of every series of `name` in a Prometheus text scrape, keyed by its label text. */
function series(scrape: string, name: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of scrape.split('\n')) {
    const match = new RegExp(`^${name}(\\{[^}]*\\})? (\\S+)$`).exec(line);
    if (match) out.set(match[1] ?? '', Number(match[2]));
  }
  return out;
}

function label(labels: string, name: string): string {
  return new RegExp(`${name}="([^"]*)"`).exec(labels)?.[1] ?? '';
}

test(`a ${SOAK_MS / 1000} s soak with 50 clients and 10% random upstream faults: every request ends well-formed, metrics add up, nothing leaks`, {
  timeout: SOAK_MS + 20_000,
}, async (t) => {
  const h = await startHarness({
    fake: { content: CONTENT, record: false, randomFaults: { rate: 0.1, seed: 42, faults: FAULTS } },
    env: {
      OPENROUTER_API_KEY: 'sk-or-server',
      RETRY_MAX_ATTEMPTS: '2',
      UPSTREAM_HEADERS_TIMEOUT_MS: '5000',
      UPSTREAM_IDLE_TIMEOUT_MS: '5000',
      // The harness keeps every log line in memory: only errors (a bug's stack), so the heap measures the proxy.
      LOG_LEVEL: 'error',
    },
  });
  t.after(() => h.close());
  const pool = new Pool(h.url, { connections: CONCURRENCY });
  t.after(() => pool.destroy());

  const gc = exposeGc();
  const heapBefore = await settledHeapUsed(gc);

  const counts: SoakCounts = { requests: 0, byStatus: new Map(), byKind: new Map(), failures: [] };
  const deadline = Date.now() + SOAK_MS;
  await Promise.all(Array.from({ length: CONCURRENCY }, (_, i) => clientLoop(pool, i % 2 === 1, deadline, counts)));

  const scrape = await (await fetch(`${h.url}/metrics`)).text();
  await pool.close();
  const heapAfter = await settledHeapUsed(gc);

  const successes = (counts.byKind.get('ok') ?? 0) + (counts.byKind.get('stream_ok') ?? 0);
  t.diagnostic(`soak: ${counts.requests} requests in ${SOAK_MS} ms, ${successes} complete, ${counts.requests - successes - counts.failures.length} well-formed errors, ${counts.failures.length} failures`);
  t.diagnostic(`outcomes: ${JSON.stringify(Object.fromEntries([...counts.byKind].sort()))}`);
  t.diagnostic(`heapUsed: ${(heapBefore / 2 ** 20).toFixed(1)} MiB before, ${(heapAfter / 2 ** 20).toFixed(1)} MiB after (forced gc: ${gc ? 'yes' : 'no'})`);

  assert.deepEqual(counts.failures.slice(0, 10), [], `${counts.failures.length} requests hung or ended malformed`);
  assert.ok(counts.requests >= CONCURRENCY, `only ${counts.requests} requests made`);
  // The faults did happen and were both retried away and passed on: the soak exercised them.
  assert.ok(successes < counts.requests, 'no request failed: the random faults did not fire');
  assert.ok(successes / counts.requests > 0.85, `only ${successes} of ${counts.requests} requests complete`);

  const perStatus = new Map<string, number>();
  let metered = 0;
  for (const [labels, value] of series(scrape, 'signalbox_requests_total')) {
    metered += value;
    const key = `${label(labels, 'status')}/${label(labels, 'stream')}`;
    perStatus.set(key, (perStatus.get(key) ?? 0) + value);
  }
  assert.equal(metered, counts.requests);
  assert.deepEqual(Object.fromEntries([...perStatus].sort()), Object.fromEntries([...counts.byStatus].sort()));

  assert.deepEqual([...series(scrape, 'signalbox_inflight_requests')], [['', 0]]);
  assert.deepEqual([...series(scrape, 'signalbox_active_streams')], [['', 0]]);
  assert.equal(h.lifecycle.inflightCount, 0);
  assert.deepEqual(h.logs.records.map((r) => r.msg), [], 'no error was logged');

  assert.ok(heapAfter <= heapBefore + HEAP_GROWTH_LIMIT, `heap grew by ${((heapAfter - heapBefore) / 2 ** 20).toFixed(1)} MiB`);
});
