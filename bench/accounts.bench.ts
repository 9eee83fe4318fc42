/**
 * npm run bench:accounts [-- --quick] — what keys and rate limits add to a request (issue 16,
 * "Done when").
 *
 * (a) Key lookup: KeyRing.lookup in a ring of 1, 100 and 10,000 keys (MAX_KEYS), the presented key
 *     being the last one. The lookup hashes the key once and probes a map of the keys' digests:
 *     its cost should not grow with the ring.
 * (b) Rate limiting with the in-memory store: the GCRA take of the request's buckets and its headers
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
 * (e) Budgets, in memory and with Redis (sequential calls): the account step as the chat route
 *     runs it (Accounts.admit: token estimate, the catalog's worst case of the request, the store's
 *     admission) with the reservation only (key day and month budgets), and with the four
 *     rate-limit takes and the reservation in one admission (the usual request: with Redis one
 *     script, one round trip, so it should cost about what the take alone does); and the settle of
 *     a request afterwards (both reservations given back, the cost added to three counters), which
 *     runs off the request's path. The proxy variants with limits have the budgets too.
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
import { Accounts } from '../src/accounts/accounts.js';
import { PeriodClock } from '../src/accounts/spend.js';
import { spendCharges, spendLines } from '../src/accounts/budget.js';
import { parseCatalog } from '../src/catalog/catalog.js';
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
/** Far above what the runs spend: every reservation fits. */
const BUDGET_USD = 1_000_000;
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
    lines.push(`  - { name: key-${i}, sha256: ${digest}${last && limited ? `, team: bench-team, rpm: ${RPM}, tpm: ${TPM}, daily_usd: ${BUDGET_USD}, monthly_usd: ${BUDGET_USD}` : ''} }`);
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
/** The catalog the reservation is priced from: the model the benchmark's body names. */
const benchCatalog = parseCatalog({ data: [{ id: 'openai/gpt-4o-mini', context_length: 128_000, pricing: { prompt: '0.00000015', completion: '0.0000006' } }] });

interface BudgetTimings { readonly admit: Timing; readonly settle: Timing; readonly admit_with_takes: Timing }

/**
 * The account step as the chat route runs it (src/accounts/accounts.ts): `admit` with the
 * reservation only (the rate limits taken before, as when the rules read spend fields), then the
 * whole step with the four rate-limit takes and the reservation in one admission (the usual
 * request), each with its token estimate and the catalog's worst case for the reservation; and
 * the settle of the request afterwards (what the recorder does off the path).
 */
async function budgets(store: LimitStore, runs: number): Promise<BudgetTimings> {
  const accounts = new Accounts(store, {
    periods: new PeriodClock('UTC'), userSource: undefined, historyDays: 35, maxUsersPerKey: 1000, unpricedReserveUsd: 0.5,
  });
  const reserveFor = { models: ['openai/gpt-4o-mini'], catalog: benchCatalog };
  const step = async (limits: boolean) => {
    const outcome = await accounts.admit(accounts.open(caller, body, {}), { limits, reads: false, reserveFor });
    if (outcome.refusal !== undefined || outcome.settlement === undefined) throw new Error('the benchmark\'s budgets must admit every request');
  };
  const admit = await time(() => step(false), runs, Math.min(WARMUP, runs));
  // The settle of one such request (src/accounts/accounts.ts, SpendSettlement): both reservations
  // given back, its cost added to the key's day and month counters and the model's, in one store
  // call, timed to its end (with Redis, the script's round trip; off the request's path).
  const periods = new PeriodClock('UTC').at(Date.now());
  const lines = spendLines(caller, undefined, periods, { historyDays: 35, maxUsersPerKey: 1000, unpricedReserveUsd: 0.5 });
  const release = lines.filter((l) => l.capNano !== undefined).map((l) => ({ key: l.key, amountNano: 1 }));
  const charges = spendCharges(lines, 'openai/gpt-4o-mini', 1, periods, 35);
  const settle = await time(() => store.settle(release, charges, Date.now()), runs, Math.min(WARMUP, runs));
  const admitWithTakes = await time(() => step(true), runs, Math.min(WARMUP, runs));
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
const VARIANTS = ['no keys', 'key, no limits', 'key, limits in memory', 'key, limits in Redis'] as const; // limits: rpm, tpm and daily/monthly budgets
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
  row(`account step, ${where}: reservation only (key day + month)`, b.admit);
  row(`account step, ${where}: 4 rate-limit takes + reservation`, b.admit_with_takes);
  row(`settle, ${where} (2 released, 3 counters charged)`, b.settle);
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
