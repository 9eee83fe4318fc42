/**
 * npm run bench:accounts [-- --quick] — what keys and rate limits add to a request (issue 16,
 * "Done when").
 *
 * (a) Key lookup: KeyRing.lookup in a ring of 1, 100 and 10,000 keys (MAX_KEYS), the presented key
 *     being the last one. The lookup hashes the key once and probes a map of the keys' digests:
 *     its cost should not grow with the ring.
 * (b) Rate limiting with the in-memory store: RateLimiter.take (token estimate, GCRA take, headers)
 *     and the settle of the token buckets afterwards (store.adjust per tpm bucket, what
 *     TokenCharge.settle does off the request path), for a key with rpm and tpm in a team with rpm
 *     and tpm: four buckets, the most a request takes.
 * (c) The same with the Redis store, against a real redis-server on loopback started and stopped
 *     here (skipped with a line saying so when redis-server is not installed). Sequential calls:
 *     one Lua script round trip per take and per settle.
 * (d) Through the proxy: closed-loop requests/s and proxy CPU µs per request of Signalbox with no
 *     client keys, with a keys file of one key (no limits), with that key limited (memory store) and
 *     limited with REDIS_URL. Limits are far above the load, so nothing is refused. Alternating
 *     rounds, as bench:observability.
 * (e) Budgets, in memory and with Redis (sequential calls): admit with two reservations (the key's
 *     day and month counters) and the settle afterwards (both released, both charged: what the
 *     request's settlement does off its path), and admit with the four rate-limit takes AND the two
 *     reservations together: with Redis still one script, one round trip, so it should cost about
 *     what the take alone does. A store whose admit is not built reports the row as skipped.
 * Single calls are timed with process.hrtime (about 0.1 µs of it is the timer itself).
 * --quick: seconds in CI (proves the harness runs; its numbers are rough).
 * Prints a table, writes bench/results/accounts-<date>[-quick].json.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Caller } from '../src/accounts/caller.js';
import { compileKeys, sha256, type KeyRing } from '../src/accounts/keys-file.js';
import type { LimitStore } from '../src/accounts/limit-store.js';
import { MemoryLimitStore } from '../src/accounts/memory-limit-store.js';
import { rateLimitHeaders, rateLimitTakes, requestTokenEstimate } from '../src/accounts/rate-limit.js';
import { RedisLimitStore } from '../src/accounts/redis-limit-store.js';
import { closedLoop, median } from './support/load.js';
import { CAN_PIN, ROOT, pinSelf, processCpuMicros, startFakeUpstream, startSignalbox, type Child } from './support/processes.js';
import { hasRedisServer, startRedisServer, type RedisServer } from './support/redis-server.js';

const quick = process.argv.includes('--quick');
const WARMUP = quick ? 200 : 5_000;
const RUNS = quick ? 1_000 : 20_000;
const REDIS_RUNS = quick ? 300 : 5_000;
const RINGS = [1, 100, 10_000];
const ROUNDS = quick ? 1 : 5;
const SECONDS = quick ? 0.5 : 3;
const CONCURRENCY = 16;
/** Far above any load this machine makes: the limits are taken, never hit. */
const RPM = 1_000_000_000;
const TPM = 1_000_000_000_000;
const BENCH_KEY = 'bench'; // what closedLoop presents (Authorization: Bearer bench)
const body = { model: 'auto', messages: [{ role: 'user', content: 'Say hello in one word.' }] };

interface Timing { readonly p50_us: number; readonly p99_us: number; readonly runs: number }

function percentile(sorted: Float64Array, p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
}

/** p50 and p99 of `runs` single calls of `fn`, after `warmup` untimed ones. */
async function time(fn: () => unknown, runs: number, warmup: number): Promise<Timing> {
  for (let i = 0; i < warmup; i++) await fn();
  const us = new Float64Array(runs);
  for (let i = 0; i < runs; i++) {
    const t0 = process.hrtime.bigint();
    await fn();
    us[i] = Number(process.hrtime.bigint() - t0) / 1e3;
  }
  us.sort();
  return { p50_us: percentile(us, 0.5), p99_us: percentile(us, 0.99), runs };
}

/** A keys file of `size` keys, the last one `BENCH_KEY`, that key limited when `limited`. */
function keysFile(size: number, limited: boolean): string {
  const lines = ['version: 1', 'teams:', `  bench-team: { rpm: ${RPM}, tpm: ${TPM} }`, 'keys:'];
  for (let i = 0; i < size; i++) {
    const last = i === size - 1;
    const digest = sha256(last ? BENCH_KEY : `bench-key-${i}`).toString('hex');
    lines.push(`  - { name: key-${i}, sha256: ${digest}${last && limited ? `, team: bench-team, rpm: ${RPM}, tpm: ${TPM}` : ''} }`);
  }
  return `${lines.join('\n')}\n`;
}

// --- (a) key lookup --------------------------------------------------------------------------
const lookup = [];
for (const size of RINGS) {
  const ring: KeyRing = compileKeys(keysFile(size, false), `generated-${size}-keys.yaml`, {});
  if (ring.lookup(BENCH_KEY)?.name !== `key-${size - 1}`) throw new Error('the presented key must be the ring\'s last');
  const runs = size >= 10_000 ? Math.ceil(RUNS / 20) : RUNS;
  lookup.push({ keys: size, ...(await time(() => ring.lookup(BENCH_KEY), runs, Math.ceil(WARMUP / (size >= 10_000 ? 20 : 1)))) });
}

// --- (b), (c) rate limiting ------------------------------------------------------------------
const caller: Caller = compileKeys(keysFile(1, true), 'limited-key.yaml', {}).lookup(BENCH_KEY)!;
const tokens = requestTokenEstimate(body);
const tokenTakes = rateLimitTakes(caller, tokens).filter((take) => take.key.endsWith(':tpm'));

/** take, then settle of the token buckets (the real count, 20 tokens, replaces the estimate). */
async function rateLimit(store: LimitStore, runs: number): Promise<{ take: Timing; settle: Timing }> {
  const takes = rateLimitTakes(caller, requestTokenEstimate(body));
  const take = await time(async () => {
    const result = await store.take(takes, Date.now());
    rateLimitHeaders(result.states);
    if (!result.allowed) throw new Error('the benchmark\'s limits must admit every request');
  }, runs, Math.min(WARMUP, runs));
  const settle = await time(() => Promise.all(tokenTakes.map((t) => store.adjust(t.key, t.limit, t.periodMs, 20 - t.cost, Date.now()))), runs, Math.min(WARMUP, runs));
  return { take, settle };
}

// --- (e) budgets -----------------------------------------------------------------------------
const allTakes = rateLimitTakes(caller, tokens);
const MONTH_MS = 31 * 86_400_000;
/** Caps far above what the runs reserve (runs x 1,000 nano-USD): every admission fits. */
const reserves = (now: number) => [
  { key: 'sp:key:bench:d:2026-11-30', capNano: 1e15, amountNano: 1_000, expireAt: now + MONTH_MS },
  { key: 'sp:key:bench:m:2026-11', capNano: 1e15, amountNano: 1_000, expireAt: now + MONTH_MS },
];

interface BudgetTimings { readonly admit: Timing; readonly settle: Timing; readonly admit_with_takes: Timing }

async function budgets(store: LimitStore, runs: number): Promise<BudgetTimings | string> {
  try {
    await store.admit({ takes: [], reserves: [], reads: [] }, Date.now());
  } catch (err) {
    return `skipped: ${err instanceof Error ? err.message : String(err)}`;
  }
  const admitOnce = async (takes: typeof allTakes) => {
    const result = await store.admit({ takes, reserves: reserves(Date.now()), reads: [] }, Date.now());
    if (!result.limits.allowed || result.budget !== undefined) throw new Error('the benchmark\'s budgets must admit every request');
  };
  const admit = await time(() => admitOnce([]), runs, Math.min(WARMUP, runs));
  const settle = await time(() => {
    const now = Date.now();
    const counters = reserves(now);
    return store.settle(counters.map((c) => ({ key: c.key, amountNano: c.amountNano })), counters.map((c) => ({ key: c.key, amountNano: 800, expireAt: c.expireAt })), now);
  }, runs, Math.min(WARMUP, runs));
  const admitWithTakes = await time(() => admitOnce(allTakes), runs, Math.min(WARMUP, runs));
  return { admit, settle, admit_with_takes: admitWithTakes };
}

const memory = await rateLimit(new MemoryLimitStore(), RUNS);
const memoryBudgets = await budgets(new MemoryLimitStore(), RUNS);
const redisPresent = hasRedisServer();
let redis: { take: Timing; settle: Timing } | undefined;
let redisBudgets: BudgetTimings | string = 'skipped: redis-server not installed';
if (redisPresent) {
  const server = await startRedisServer(10_000);
  try {
    const store = new RedisLimitStore({ url: server.url, failureMode: 'closed', commandTimeoutMs: 1000, logger: { warn: (o, m) => console.warn(m, o), info: () => {} } });
    try {
      await store.ready();
      redis = await rateLimit(store, REDIS_RUNS);
      redisBudgets = await budgets(store, REDIS_RUNS);
      if (store.stats.outages > 0) throw new Error('Redis became unreachable during the benchmark');
    } finally {
      await store.close();
    }
  } finally {
    await server.kill();
  }
}

// --- (d) through the proxy -------------------------------------------------------------------
const VARIANTS = ['no keys', 'key, no limits', 'key, limits in memory', 'key, limits in Redis'] as const;
type Variant = (typeof VARIANTS)[number];
const rps = new Map<Variant, number[]>();
const cpu = new Map<Variant, number[]>();
const children: Child[] = [];
let redisForProxy: RedisServer | undefined;
const dir = mkdtempSync(join(tmpdir(), 'signalbox-bench-accounts-'));
pinSelf(0);
try {
  const upstream = await startFakeUpstream();
  children.push(upstream.child);
  const common = { OPENROUTER_BASE_URL: upstream.baseUrl, OPENROUTER_API_KEY: 'sk-bench', RULES_FILE: resolve(ROOT, 'rules.yaml'), METRICS_ENABLED: 'true', LOG_LEVEL: 'info' };
  writeFileSync(join(dir, 'plain.yaml'), keysFile(1, false));
  writeFileSync(join(dir, 'limited.yaml'), keysFile(1, true));
  const envs: [Variant, Record<string, string>][] = [
    ['no keys', {}],
    ['key, no limits', { KEYS_FILE: join(dir, 'plain.yaml') }],
    ['key, limits in memory', { KEYS_FILE: join(dir, 'limited.yaml') }],
  ];
  if (redisPresent) {
    redisForProxy = await startRedisServer(10_000);
    envs.push(['key, limits in Redis', { KEYS_FILE: join(dir, 'limited.yaml'), REDIS_URL: redisForProxy.url, REDIS_FAILURE_MODE: 'closed' }]);
  }
  const targets: [Variant, { child: Child; origin: string }][] = [];
  for (const [variant, env] of envs) {
    const started = await startSignalbox({ ...common, ...env });
    children.push(started.child);
    targets.push([variant, started]);
    rps.set(variant, []);
    cpu.set(variant, []);
  }
  const path = '/v1/chat/completions';
  const payload = JSON.stringify(body);
  for (const [, target] of targets) await closedLoop(target.origin, { concurrency: CONCURRENCY, seconds: quick ? 0.3 : 2, path, body: payload });
  for (let round = 0; round < ROUNDS; round++) {
    // Rotate the order, so no variant always runs on a warmer or cooler machine.
    const order = targets.map((_, i) => targets[(i + round) % targets.length]!);
    for (const [variant, target] of order) {
      const cpuBefore = processCpuMicros(target.child.process.pid!);
      const result = await closedLoop(target.origin, { concurrency: CONCURRENCY, seconds: SECONDS, path, body: payload });
      if (result.errors > 0) throw new Error(`${variant}: ${result.errors} failed requests`);
      rps.get(variant)!.push(result.rps);
      cpu.get(variant)!.push((processCpuMicros(target.child.process.pid!) - cpuBefore) / result.requests);
    }
  }
} finally {
  await Promise.all(children.map((c) => c.stop()));
  await redisForProxy?.kill();
  rmSync(dir, { recursive: true, force: true });
}

// --- report ----------------------------------------------------------------------------------
const num = (n: number): string => n.toFixed(2).padStart(8);
const REDIS_ABSENT = 'skipped: redis-server is not installed (apt-get install redis-server)';
console.log(`accounts: added cost per request, ${process.version}${quick ? ' (quick: numbers rough)' : ''}`);
console.log('| step                                                        | runs   |   p50 µs |   p99 µs |');
console.log('| ----------------------------------------------------------- | ------ | -------- | -------- |');
const row = (name: string, t: Timing): void => console.log(`| ${name.padEnd(59)} | ${String(t.runs).padEnd(6)} | ${num(t.p50_us)} | ${num(t.p99_us)} |`);
for (const l of lookup) row(`key lookup, ring of ${l.keys.toLocaleString('en')} (one hash, one map probe)`, l);
row('rate limit take, memory (key + team, rpm + tpm)', memory.take);
row('rate limit settle, memory (2 tpm buckets)', memory.settle);
if (redis !== undefined) {
  row('rate limit take, Redis (one Lua script, loopback)', redis.take);
  row('rate limit settle, Redis (one script per tpm bucket)', redis.settle);
} else {
  console.log(`| ${'rate limit, Redis'.padEnd(59)} | ${REDIS_ABSENT} |`);
}
const budgetRows = (where: string, b: BudgetTimings | string): void => {
  if (typeof b === 'string') {
    console.log(`| ${`budgets, ${where}`.padEnd(59)} | ${b} |`);
    return;
  }
  row(`budget admit, ${where} (2 reservations: key day + month)`, b.admit);
  row(`budget settle, ${where} (2 released, 2 charged)`, b.settle);
  row(`admit, ${where}: 4 rate-limit takes + 2 reservations`, b.admit_with_takes);
};
budgetRows('memory', memoryBudgets);
budgetRows('Redis', redisBudgets);
const baseRps = median(rps.get('no keys')!);
const baseCpu = median(cpu.get('no keys')!);
console.log(`through the proxy: ${ROUNDS} rotating round(s) of ${SECONDS} s, closed loop at concurrency ${CONCURRENCY}, ${CAN_PIN ? 'proxy pinned to CPU 1, load and upstream to CPU 0' : 'no CPU pinning'}`);
console.log('| variant                  | req/s median | vs no keys | proxy CPU µs/req | added CPU µs/req |');
console.log('| ------------------------ | ------------ | ---------- | ---------------- | ---------------- |');
const proxy = [];
for (const variant of VARIANTS) {
  const r = rps.get(variant);
  if (r === undefined) {
    console.log(`| ${variant.padEnd(24)} | ${REDIS_ABSENT} |`);
    continue;
  }
  const m = median(r);
  const c = median(cpu.get(variant)!);
  proxy.push({ variant, rps: r, rps_median: m, cpu_us_per_request: c });
  console.log(`| ${variant.padEnd(24)} | ${m.toFixed(0).padStart(12)} | ${`${((m / baseRps - 1) * 100).toFixed(1)}%`.padStart(10)} | ${c.toFixed(0).padStart(16)} | ${(c - baseCpu).toFixed(0).padStart(16)} |`);
}

const date = new Date().toISOString();
mkdirSync(resolve(ROOT, 'bench/results'), { recursive: true });
const file = resolve(ROOT, `bench/results/accounts-${date.slice(0, 10)}${quick ? '-quick' : ''}.json`);
writeFileSync(file, `${JSON.stringify({
  date, node: process.version, quick, pinned: CAN_PIN,
  key_lookup: lookup,
  rate_limit: { buckets: rateLimitTakes(caller, tokens).length, memory, redis: redis ?? 'skipped: redis-server not installed' },
  budgets: { reservations: 2, takes_with_reservations: allTakes.length, memory: memoryBudgets, redis: redisBudgets },
  proxy: { rounds: ROUNDS, seconds: SECONDS, concurrency: CONCURRENCY, variants: proxy },
}, null, 2)}\n`);
console.log(`written: ${file}`);
