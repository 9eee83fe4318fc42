import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import type { CatalogModel } from '../../src/catalog/catalog.js';
import { CatalogRefresher, type CatalogRefreshEvent, type CatalogSource, type RefreshClock } from '../../src/catalog/refresher.js';
import { CATALOG_FILE_NAME, CatalogStore, MAX_CATALOG_BYTES } from '../../src/catalog/store.js';
import { FakeOpenRouter } from '../../src/dev/fake-openrouter.js';
import { LogCapture, startHarness } from '../support/harness.js';
import { createLogger } from '../../src/server/logger.js';
import { spawnMain } from '../support/main-process.js';
import { withTimeout } from '../support/timeout.js';

const HOUR_MS = 3_600_000;

interface ManualTimer {
  readonly fn: () => void;
  readonly ms: number;
  cleared: boolean;
  unrefed: boolean;
  unref?: () => unknown;
}

/** Time and timers the test moves by hand. */
class ManualClock implements RefreshClock {
  time: number;
  readonly timers: ManualTimer[] = [];
  jitter = 0.5;

  constructor(time: number) {
    this.time = time;
  }

  now(): number {
    return this.time;
  }

  setTimeout(fn: () => void, ms: number): ManualTimer {
    const timer: ManualTimer = { fn, ms, cleared: false, unrefed: false };
    this.timers.push(timer);
    return Object.assign(timer, { unref: () => (timer.unrefed = true) });
  }

  clearTimeout(timer: unknown): void {
    (timer as ManualTimer).cleared = true;
  }

  random(): number {
    return this.jitter;
  }
}

function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'signalbox-catalog-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function startFake(t: TestContext): Promise<{ fake: FakeOpenRouter; baseUrl: string }> {
  const fake = new FakeOpenRouter({ record: true });
  const baseUrl = await fake.listen();
  t.after(() => fake.close());
  return { fake, baseUrl };
}

/** A base URL nothing listens on: a fake that listened once and was closed. */
async function deadUpstream(): Promise<string> {
  const fake = new FakeOpenRouter();
  const baseUrl = await fake.listen();
  await fake.close();
  return baseUrl;
}

function refresher(t: TestContext, source: CatalogSource, options: { store?: CatalogStore; clock?: ManualClock; logs?: LogCapture } = {}) {
  const logs = options.logs ?? new LogCapture();
  const clock = options.clock ?? new ManualClock(Date.now());
  const r = new CatalogRefresher({ source, store: options.store, refreshMs: HOUR_MS, logger: createLogger('info', logs), clock });
  const events: CatalogRefreshEvent[] = [];
  r.catalog.on('refresh', (e: CatalogRefreshEvent) => events.push(e));
  t.after(() => r.close());
  return { r, logs, clock, events };
}

test('fetches GET {upstream}/models at start with the server key, parses it, and schedules the next refresh, jittered and unref\'ed', async (t) => {
  const { fake, baseUrl } = await startFake(t);
  const { r, clock, events } = refresher(t, { kind: 'upstream', baseUrl, authorization: 'Bearer sk-or-server' });
  await r.start();
  const req = fake.received.find((x) => x.url.endsWith('/models'));
  assert.ok(req, 'the fake got GET /models');
  assert.equal(req.method, 'GET');
  assert.equal(req.headers.authorization, 'Bearer sk-or-server');
  const catalog = r.catalog.current;
  assert.ok(catalog && catalog.size > 0);
  // Only the shape: the fake's entries change (issue 14, item 9).
  const models: CatalogModel[] = [...catalog.ids()].map((id) => catalog.get(id)!);
  for (const model of models) assert.ok(model.contextLength === undefined || Number.isSafeInteger(model.contextLength), model.id);
  // Most have prices; a router priced "-1" (not known in advance) has none.
  assert.ok(models.filter((m) => m.pricing.prompt !== undefined).length > models.length / 2);
  assert.equal(r.catalog.fetchedAt, clock.time);
  assert.deepEqual(events, [{ result: 'success', source: 'upstream' }]);
  assert.equal(clock.timers.length, 1);
  assert.equal(clock.timers[0]!.ms, HOUR_MS);
  assert.equal(clock.timers[0]!.unrefed, true);

  clock.jitter = 0;
  clock.timers[0]!.fn();
  // A refresh asked for while one runs is that one.
  await withTimeout(r.refresh(), 'the timed refresh');
  assert.equal(fake.received.filter((x) => x.url.endsWith('/models')).length, 2, 'the timer refreshes, once');
  assert.equal(clock.timers.length, 2);
  assert.equal(clock.timers[1]!.ms, HOUR_MS * 0.9, '-10% at the low end of the jitter');
  clock.jitter = 0.999_999;
  await r.refresh();
  assert.equal(clock.timers[1]!.cleared, true, 'a refresh by hand replaces the pending timer: never two');
  assert.ok(clock.timers[2]!.ms > HOUR_MS * 1.0999 && clock.timers[2]!.ms <= HOUR_MS * 1.1, '+10% at the high end');
  r.close();
  assert.equal(clock.timers.at(-1)!.cleared, true, 'close() clears the timer');
});

test('a failed refresh keeps the old catalog, logs, and shows in the failure counter and the age gauge', async (t) => {
  const { fake, baseUrl } = await startFake(t);
  const clock = new ManualClock(Date.now() - HOUR_MS);
  const { r, logs, events } = refresher(t, { kind: 'upstream', baseUrl, authorization: undefined }, { clock });
  const h = await startHarness({ catalog: r.catalog });
  t.after(() => h.close());
  const scrape = async (): Promise<string> => (await fetch(`${h.url}/metrics`)).text();
  assert.match(await scrape(), /^signalbox_catalog_age_seconds \+Inf$/m, 'no catalog yet: +Inf, so an age alert fires');

  await r.start();
  const first = r.catalog.current;
  assert.ok(first);
  for (const fault of [
    { type: 'status', status: 503 } as const,
    { type: 'garbage' } as const,
    { type: 'garbage', body: '{"data":[{"id":7}]}' } as const,
    { type: 'reset-before-headers' } as const,
  ]) {
    fake.enqueue(fault);
    await r.refresh();
    assert.equal(r.catalog.current, first, `${fault.type}: the old catalog is kept`);
  }
  assert.deepEqual(events.map((e) => e.result), ['success', 'failure', 'failure', 'failure', 'failure']);
  assert.match(events[1]!.error!, /503/);
  const warned = await logs.waitFor((l) => l.msg === 'model catalog refresh failed: the catalog in force is kept');
  assert.equal(warned.level, 40);
  const text = await scrape();
  assert.match(text, /^signalbox_catalog_refresh_failures_total 4$/m);
  const age = Number(/^signalbox_catalog_age_seconds (\S+)$/m.exec(text)![1]);
  assert.ok(age >= 3600 && age < 3600 + 300, `the catalog was fetched an hour ago (${age} s)`);
});

test('a response over the size bound is refused while it streams', async (t) => {
  const { fake, baseUrl } = await startFake(t);
  const { r, events } = refresher(t, { kind: 'upstream', baseUrl, authorization: undefined });
  fake.enqueue({ type: 'manual' });
  const done = r.start();
  const res = await fake.nextManual();
  res.writeHead(200, { 'content-type': 'application/json' });
  void res.write(Buffer.alloc(MAX_CATALOG_BYTES + 1, 0x20)).catch(() => undefined);
  await done;
  assert.equal(r.catalog.current, undefined);
  assert.match(events[0]!.error!, /larger than/);
});

test('the last good catalog is kept on disk, atomically, and used at start when the upstream is down', async (t) => {
  const dir = tempDir(t);
  const store = new CatalogStore(join(dir, 'nested'));
  const { baseUrl } = await startFake(t);
  const fetchedAt = Date.parse('2026-01-01T00:00:00Z');
  const first = refresher(t, { kind: 'upstream', baseUrl, authorization: undefined }, { store, clock: new ManualClock(fetchedAt) });
  await first.r.start();
  assert.ok(first.r.catalog.current);
  const saved = JSON.parse(readFileSync(join(dir, 'nested', CATALOG_FILE_NAME), 'utf8')) as { fetched_at: number; response: { data: unknown[] } };
  assert.equal(saved.fetched_at, fetchedAt);
  assert.equal(saved.response.data.length, first.r.catalog.current.size);
  assert.deepEqual(readdirSync(join(dir, 'nested')), [CATALOG_FILE_NAME], 'no temporary file is left');
  first.r.close();

  // A restart two days later, without network.
  const clock = new ManualClock(fetchedAt + 48 * HOUR_MS);
  const second = refresher(t, { kind: 'upstream', baseUrl: await deadUpstream(), authorization: undefined }, { store, clock });
  await second.r.start();
  assert.deepEqual(second.events.map((e) => [e.source, e.result]), [['disk', 'success'], ['upstream', 'failure']]);
  assert.equal(second.r.catalog.current?.size, first.r.catalog.current.size);
  assert.equal(second.r.catalog.fetchedAt, fetchedAt, 'the stored catalog keeps its fetch time');
  assert.equal(second.r.catalog.ageSeconds(clock.now()), 48 * 3600);
  assert.equal(saved.fetched_at, JSON.parse(readFileSync(store.path, 'utf8')).fetched_at, 'a failed refresh does not touch the stored catalog');
});

test('a stored catalog that is broken is logged and ignored; start-up goes on', async (t) => {
  const dir = tempDir(t);
  const store = new CatalogStore(dir);
  writeFileSync(store.path, '{"fetched_at":1,"response":{"data":[');
  const { r, events } = refresher(t, { kind: 'upstream', baseUrl: await deadUpstream(), authorization: undefined }, { store });
  await r.start();
  assert.deepEqual(events.map((e) => [e.source, e.result]), [['disk', 'failure'], ['upstream', 'failure']]);
  assert.equal(r.catalog.current, undefined);
});

test('CATALOG_FILE: the file is served, re-read at each refresh, and nothing is fetched', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'models.json');
  writeFileSync(file, JSON.stringify({ data: [{ id: 'acme/a', pricing: { prompt: '0.000001', completion: '0.000002' } }] }));
  const { r, events } = refresher(t, { kind: 'file', path: file });
  await r.start();
  assert.deepEqual([...r.catalog.current!.ids()], ['acme/a']);
  writeFileSync(file, JSON.stringify({ data: [{ id: 'acme/a' }, { id: 'acme/b' }] }));
  await r.refresh();
  assert.deepEqual([...r.catalog.current!.ids()], ['acme/a', 'acme/b']);
  rmSync(file);
  await r.refresh();
  assert.equal(r.catalog.current!.size, 2, 'a missing file keeps the catalog in force');
  assert.deepEqual(events.map((e) => [e.source, e.result]), [['file', 'success'], ['file', 'success'], ['file', 'failure']]);
});

test('the server starts with a catalog that cannot be read, and keeps the fetched catalog in DATA_DIR', { timeout: 30_000 }, async (t) => {
  const dir = tempDir(t);
  const rules = join(dir, 'rules.yaml');
  writeFileSync(rules, 'version: 1\nrules: []\n');
  const config = join(dir, 'signalbox.yaml');
  writeFileSync(config, `rules_file: ${JSON.stringify(rules)}\nlog:\n  level: info\n`);

  const missing = spawnMain(t, { PORT: '0', HOST: '127.0.0.1', CONFIG_FILE: config, OPENROUTER_BASE_URL: await deadUpstream(), CATALOG_FILE: join(dir, 'none.json') });
  await missing.waitForLog((l) => l.msg === 'signalbox ready');
  const failed = await missing.waitForLog((l) => l.msg === 'model catalog refresh failed: the catalog in force is kept');
  assert.equal(failed.source, 'file');
  missing.child.kill('SIGTERM');
  await missing.exit;

  const { fake, baseUrl } = await startFake(t);
  const dataDir = join(dir, 'data');
  const main = spawnMain(t, { PORT: '0', HOST: '127.0.0.1', CONFIG_FILE: config, OPENROUTER_BASE_URL: baseUrl, OPENROUTER_API_KEY: 'sk-or-secret', DATA_DIR: dataDir });
  const loaded = await main.waitForLog((l) => l.msg === 'model catalog loaded');
  assert.ok(Number(loaded.models) > 0);
  assert.equal(fake.received.find((x) => x.url.endsWith('/models'))?.headers.authorization, 'Bearer sk-or-secret');
  assert.equal(main.logs.text.includes('sk-or-secret'), false, 'the key is never logged');
  main.child.kill('SIGTERM');
  await main.exit;
  assert.ok(JSON.parse(readFileSync(join(dataDir, CATALOG_FILE_NAME), 'utf8')).response.data.length > 0);
});
