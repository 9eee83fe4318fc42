/**
 * npm run bench:observability [-- --quick]: what metrics and logs cost in throughput.
 *
 * Two Signalbox processes with the example rules.yaml in front of the same fake upstream:
 * "on" (metrics enabled, request log at info, written to a file as in production) and "off"
 * (metrics disabled, log level silent). Closed-loop load, keep-alive, in alternating rounds so
 * that drift of a noisy machine hits both alike. Target (issue #4): "on" costs at most 10% of
 * the throughput of "off". Prints a table, writes bench/results/observability-<date>.json.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { closedLoop, median } from './support/load.js';
import { CAN_PIN, ROOT, pinSelf, processCpuMicros, startFakeUpstream, startSignalbox, type Child } from './support/processes.js';

const quick = process.argv.includes('--quick');
const ROUNDS = quick ? 1 : 11;
const SECONDS = quick ? 1 : 4;
const CONCURRENCY = 16;
const body = JSON.stringify({ model: 'auto', messages: [{ role: 'user', content: 'Say hello in one word.' }] });

const children: Child[] = [];
pinSelf(0);
try {
  const upstream = await startFakeUpstream();
  children.push(upstream.child);
  const common = { OPENROUTER_BASE_URL: upstream.baseUrl, OPENROUTER_API_KEY: 'sk-bench', RULES_FILE: resolve(ROOT, 'rules.yaml') };
  const on = await startSignalbox({ ...common, METRICS_ENABLED: 'true', LOG_LEVEL: 'info' });
  children.push(on.child);
  const off = await startSignalbox({ ...common, METRICS_ENABLED: 'false', LOG_LEVEL: 'silent' });
  children.push(off.child);

  // Warm up both (JIT, connection pools).
  for (const origin of [on.origin, off.origin]) await closedLoop(origin, { concurrency: CONCURRENCY, seconds: quick ? 0.5 : 2, path: '/v1/chat/completions', body });

  const rps: Record<'on' | 'off', number[]> = { on: [], off: [] };
  /** CPU microseconds the proxy process spent per request: the cost without the machine's noise. */
  const cpuPerRequest: Record<'on' | 'off', number[]> = { on: [], off: [] };
  for (let round = 0; round < ROUNDS; round++) {
    // Alternate which goes first, so neither always runs on a warmer or cooler machine.
    const order: ('on' | 'off')[] = round % 2 === 0 ? ['on', 'off'] : ['off', 'on'];
    for (const variant of order) {
      const target = variant === 'on' ? on : off;
      const cpuBefore = processCpuMicros(target.child.process.pid!);
      const result = await closedLoop(target.origin, { concurrency: CONCURRENCY, seconds: SECONDS, path: '/v1/chat/completions', body });
      if (result.errors > 0) throw new Error(`${variant}: ${result.errors} failed requests`);
      rps[variant].push(result.rps);
      cpuPerRequest[variant].push((processCpuMicros(target.child.process.pid!) - cpuBefore) / result.requests);
    }
  }
  const onMedian = median(rps.on);
  const offMedian = median(rps.off);
  // Each round measures both variants back to back: the median of the per-round ratios cancels
  // the slow drift of a shared machine that separate medians would keep.
  const cost = 1 - median(rps.on.map((on, i) => on / rps.off[i]!));
  const spread = (v: number[]): string => `${Math.round(Math.min(...v))}-${Math.round(Math.max(...v))}`;
  console.log(`observability cost: ${ROUNDS} alternating rounds of ${SECONDS} s, concurrency ${CONCURRENCY}, ${process.version}, ${CAN_PIN ? 'proxy pinned to CPU 1, load and upstream to CPU 0' : 'no CPU pinning'}${quick ? ' (quick: numbers not meaningful)' : ''}`);
  const cpuOn = median(cpuPerRequest.on);
  const cpuOff = median(cpuPerRequest.off);
  console.log('| variant                         | req/s median | req/s spread | proxy CPU µs/req |');
  console.log('| ------------------------------- | ------------ | ------------ | ---------------- |');
  console.log(`| metrics on, info logs to a file | ${onMedian.toFixed(0).padStart(12)} | ${spread(rps.on).padEnd(12)} | ${cpuOn.toFixed(0).padStart(16)} |`);
  console.log(`| metrics off, logs silent        | ${offMedian.toFixed(0).padStart(12)} | ${spread(rps.off).padEnd(12)} | ${cpuOff.toFixed(0).padStart(16)} |`);
  const cpuCost = median(cpuPerRequest.on.map((on, i) => on / cpuPerRequest.off[i]!)) - 1;
  console.log(`cost of observability (median of per-round ratios): ${(cost * 100).toFixed(1)}% of throughput (target: at most 10%): ${cost <= 0.1 ? 'met' : 'NOT met'}; ${(cpuCost * 100).toFixed(1)}% more proxy CPU per request`);
  const date = new Date().toISOString();
  mkdirSync(resolve(ROOT, 'bench/results'), { recursive: true });
  const file = resolve(ROOT, `bench/results/observability-${date.slice(0, 10)}${quick ? '-quick' : ''}.json`);
  writeFileSync(file, `${JSON.stringify({ date, node: process.version, quick, rounds: ROUNDS, seconds: SECONDS, concurrency: CONCURRENCY, rps, cpu_us_per_request: cpuPerRequest, on_median: onMedian, off_median: offMedian, cost, cpu_cost: cpuCost, cpu_on_us: cpuOn, cpu_off_us: cpuOff, pinned: CAN_PIN, target: 0.1 }, null, 2)}\n`);
  console.log(`written: ${file}`);
} finally {
  await Promise.all(children.map((c) => c.stop()));
}
