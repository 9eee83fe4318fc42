/**
 * npm run bench [-- --quick]: Switchyard against the floor, measured side by side in one run.
 *
 * Targets, all in front of (or being) the same fast fake upstream:
 *   direct      the fake upstream itself
 *   floor       a bare node:http + undici pass-through (bench/floor.ts): what any Node proxy costs
 *   switchyard  dist/src/main.js with a realistic 32-rule file (bench/rules.bench.yaml, the request
 *               matching rule 31), metrics on and info logs to a file
 * Alternating rounds (5; --quick: 1), with the order rotated each round. Each round measures:
 *   - throughput, closed loop, keep-alive, no pipelining, at concurrency 1, 16, 64, 256;
 *   - latency at concurrency 1 (p50, p99, p99.9 from process.hrtime), and the latency added to direct;
 *   - CPU microseconds per request of the proxy process (from /proc) during the concurrency-64 run.
 * Prints a table, writes bench/results/proxy-<date>.json. Not measured yet (see docs/benchmarks.md):
 * the Portkey gateway, open-loop latency, streaming figures, memory per stream, cold start.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { Pool } from 'undici';
import { closedLoop, median } from './support/load.js';
import { CAN_PIN, ROOT, pinSelf, processCpuMicros, startFakeUpstream, startNode, startSwitchyard, type Child } from './support/processes.js';

const quick = process.argv.includes('--quick');
const ROUNDS = quick ? 1 : 5;
const SECONDS = quick ? 0.5 : 3;
const LATENCY_SECONDS = quick ? 0.5 : 3;
const CONCURRENCIES = quick ? [16] : [1, 16, 64, 256];
const CPU_CONCURRENCY = quick ? 16 : 64;

type Target = 'direct' | 'floor' | 'switchyard';
const TARGETS: Target[] = ['direct', 'floor', 'switchyard'];

const BODY = JSON.stringify({
  model: 'auto',
  messages: [{ role: 'user', content: 'Summarise the incident report in three bullet points.' }],
  metadata: { customer: { plan: 'enterprise', region: 'eu' } },
});
const HEADERS = { 'x-user-tier': 'pro' };

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
}

/** Sequential requests for `seconds` on one keep-alive connection; latencies in microseconds, sorted. */
async function latencies(origin: string, path: string, seconds: number): Promise<number[]> {
  const pool = new Pool(origin, { connections: 1, pipelining: 1 });
  const out: number[] = [];
  const deadline = process.hrtime.bigint() + BigInt(Math.round(seconds * 1e9));
  const headers = { 'content-type': 'application/json', authorization: 'Bearer bench', ...HEADERS };
  while (process.hrtime.bigint() < deadline) {
    const t0 = process.hrtime.bigint();
    const res = await pool.request({ method: 'POST', path, headers, body: BODY });
    await res.body.dump();
    if (res.statusCode !== 200) throw new Error(`${origin}${path}: status ${res.statusCode}`);
    out.push(Number(process.hrtime.bigint() - t0) / 1000);
  }
  await pool.close();
  return out.sort((a, b) => a - b);
}

interface RoundResult {
  rps: Record<number, number>;
  latency: { p50: number; p99: number; p999: number };
  cpuPerRequest?: number;
}

const children: Child[] = [];
pinSelf(0);
try {
  const upstream = await startFakeUpstream();
  children.push(upstream.child);
  const floorPort = await startNode('dist/bench/floor.js', { PORT: '0', UPSTREAM: upstream.baseUrl }, (line) => /listening on (\d+)/.exec(line)?.[1], 15_000, undefined, 1);
  children.push(floorPort.child);
  const switchyard = await startSwitchyard({
    OPENROUTER_BASE_URL: upstream.baseUrl, OPENROUTER_API_KEY: 'sk-bench', RULES_FILE: resolve(ROOT, 'bench/rules.bench.yaml'),
    METRICS_ENABLED: 'true', LOG_LEVEL: 'info',
  });
  children.push(switchyard.child);

  const where: Record<Target, { origin: string; path: string; pid?: number }> = {
    direct: { origin: new URL(upstream.baseUrl).origin, path: `${new URL(upstream.baseUrl).pathname}/chat/completions` },
    floor: { origin: `http://127.0.0.1:${floorPort.value}`, path: '/v1/chat/completions', pid: floorPort.child.process.pid! },
    switchyard: { origin: switchyard.origin, path: '/v1/chat/completions', pid: switchyard.child.process.pid! },
  };

  // Warm up every target (JIT, connection pools).
  for (const t of TARGETS) await closedLoop(where[t].origin, { concurrency: 16, seconds: quick ? 0.3 : 2, path: where[t].path, body: BODY, headers: HEADERS });

  const rounds: Record<Target, RoundResult[]> = { direct: [], floor: [], switchyard: [] };
  for (let round = 0; round < ROUNDS; round++) {
    const order = TARGETS.map((_, i) => TARGETS[(i + round) % TARGETS.length]!);
    for (const target of order) {
      const { origin, path, pid } = where[target];
      const result: RoundResult = { rps: {}, latency: { p50: 0, p99: 0, p999: 0 } };
      for (const concurrency of CONCURRENCIES) {
        const cpuBefore = pid !== undefined && concurrency === CPU_CONCURRENCY ? processCpuMicros(pid) : undefined;
        const load = await closedLoop(origin, { concurrency, seconds: SECONDS, path, body: BODY, headers: HEADERS });
        if (load.errors > 0) throw new Error(`${target} at concurrency ${concurrency}: ${load.errors} failed requests`);
        result.rps[concurrency] = load.rps;
        if (cpuBefore !== undefined) result.cpuPerRequest = (processCpuMicros(pid!) - cpuBefore) / load.requests;
      }
      const lat = await latencies(origin, path, LATENCY_SECONDS);
      result.latency = { p50: percentile(lat, 0.5), p99: percentile(lat, 0.99), p999: percentile(lat, 0.999) };
      rounds[target].push(result);
    }
  }

  const summary = Object.fromEntries(TARGETS.map((t) => {
    const rs = rounds[t];
    return [t, {
      rps: Object.fromEntries(CONCURRENCIES.map((c) => [c, median(rs.map((r) => r.rps[c]!))])),
      rps_spread: Object.fromEntries(CONCURRENCIES.map((c) => [c, [Math.min(...rs.map((r) => r.rps[c]!)), Math.max(...rs.map((r) => r.rps[c]!))]])),
      latency_us: { p50: median(rs.map((r) => r.latency.p50)), p99: median(rs.map((r) => r.latency.p99)), p999: median(rs.map((r) => r.latency.p999)) },
      cpu_us_per_request: rs[0]?.cpuPerRequest === undefined ? undefined : median(rs.map((r) => r.cpuPerRequest!)),
    }];
  })) as Record<Target, { rps: Record<number, number>; rps_spread: Record<number, number[]>; latency_us: { p50: number; p99: number; p999: number }; cpu_us_per_request: number | undefined }>;

  const f = (n: number | undefined, d = 0): string => (n === undefined ? '-' : n.toFixed(d));
  console.log(`proxy benchmark: ${ROUNDS} rotating rounds, ${SECONDS} s per load, ${process.version}, ${CAN_PIN ? 'proxies on CPU 1, load and upstream on CPU 0' : 'no CPU pinning'}${quick ? ' (quick: numbers not meaningful)' : ''}`);
  console.log(`| target     | ${CONCURRENCIES.map((c) => `req/s c=${c}`.padStart(11)).join(' | ')} | ratio to floor c=${CPU_CONCURRENCY} | p50 µs | p99 µs | p99.9 µs | added p50 µs | added p99 µs | CPU µs/req |`);
  console.log(`| ---------- | ${CONCURRENCIES.map(() => '-----------').join(' | ')} | ------------------ | ------ | ------ | -------- | ------------ | ------------ | ---------- |`);
  for (const t of TARGETS) {
    const s = summary[t];
    const ratio = s.rps[CPU_CONCURRENCY]! / summary.floor.rps[CPU_CONCURRENCY]!;
    const added = (p: 'p50' | 'p99'): string => (t === 'direct' ? '-' : f(s.latency_us[p] - summary.direct.latency_us[p]));
    console.log(`| ${t.padEnd(10)} | ${CONCURRENCIES.map((c) => f(s.rps[c]).padStart(11)).join(' | ')} | ${ratio.toFixed(2).padStart(18)} | ${f(s.latency_us.p50).padStart(6)} | ${f(s.latency_us.p99).padStart(6)} | ${f(s.latency_us.p999).padStart(8)} | ${added('p50').padStart(12)} | ${added('p99').padStart(12)} | ${f(s.cpu_us_per_request).padStart(10)} |`);
  }
  const sy = summary.switchyard;
  const fl = summary.floor;
  console.log(`switchyard/floor: throughput ${(sy.rps[CPU_CONCURRENCY]! / fl.rps[CPU_CONCURRENCY]!).toFixed(2)}x at c=${CPU_CONCURRENCY}, CPU per request ${(sy.cpu_us_per_request! / fl.cpu_us_per_request!).toFixed(2)}x, added p50 latency ${((sy.latency_us.p50 - summary.direct.latency_us.p50) / (fl.latency_us.p50 - summary.direct.latency_us.p50)).toFixed(2)}x`);

  const date = new Date().toISOString();
  mkdirSync(resolve(ROOT, 'bench/results'), { recursive: true });
  const file = resolve(ROOT, `bench/results/proxy-${date.slice(0, 10)}${quick ? '-quick' : ''}.json`);
  writeFileSync(file, `${JSON.stringify({ date, node: process.version, quick, pinned: CAN_PIN, rounds: ROUNDS, seconds: SECONDS, concurrencies: CONCURRENCIES, summary, raw: rounds }, null, 2)}\n`);
  console.log(`written: ${file}`);
} finally {
  await Promise.all(children.map((c) => c.stop()));
}
