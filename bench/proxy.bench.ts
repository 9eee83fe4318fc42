/**
 * npm run bench [-- --quick]: Signalbox against the floor and a peer, measured side by side in one run.
 *
 * Targets, all in front of (or being) the same fast fake upstream:
 *   direct          the fake upstream itself
 *   floor           a bare node:http + undici pass-through (bench/floor.ts): what any Node proxy costs
 *   signalbox      dist/src/main.js with a realistic 32-rule file (bench/rules.bench.yaml, the request
 *                   matching rule 31), metrics on and info logs to a file
 *   portkey         the Portkey gateway from npm (bench/support/portkey.ts); non-streaming only
 * and two references that split Signalbox's cost over the floor (throughput at 64, CPU, latency):
 *   fastify-floor   the floor's pass-through as a Fastify route (bench/floor-fastify.ts)
 *   signalbox-bare Signalbox with one rule, metrics and logs off
 *
 * Alternating rounds (5; --quick: 1), the order rotated each round. Each round measures, per target:
 *   - throughput, closed loop, keep-alive, no pipelining, at concurrency 1, 16, 64, 256, and the
 *     proxy process's CPU microseconds per request (from /proc) during the run at 64;
 *   - latency at concurrency 1 (p50, p99, p99.9 from process.hrtime), and the latency added to direct;
 *   - open-loop latency at a fixed rate, half of Signalbox's own peak (p50, p99, coordinated-omission free);
 *   - streaming at 1 and 256 concurrent streams: added time to first byte and to first token, the
 *     delay added to each frame, frames in = frames out.
 * Then, once: RSS per open stream with 1,000 and 5,000 slow streams, and V8's live heap per open
 * stream after a forced GC (bench/support/heap-probe.mjs, loaded into the floor and Signalbox
 * alike); cold start and idle RSS after the first request of Signalbox and the floor, on the
 * running Node and on Node 24 (bench/support/node24.ts) when it can be had.
 * Every figure is the median over the rounds with its spread (min-max), and ratios to the floor
 * are taken within a round. Prints tables; writes bench/results/proxy-<date>.json.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { resolve } from 'node:path';
import { Pool } from 'undici';
import { CHAT_BODY, CHAT_HEADERS, closedLoop, median } from './support/load.js';
import { fdLimit, heapProbe, measureStreamMemory, raiseFdLimit } from './support/memory.js';
import { node24 } from './support/node24.js';
import { openLoop } from './support/open-loop.js';
import { startPortkey } from './support/portkey.js';
import { CAN_PIN, ROOT, pinSelf, processCpuMicros, startFakeUpstream, startNode, startSignalbox, type Child } from './support/processes.js';
import { coldStart, type ColdStart } from './support/startup.js';
import { measureStreams, type StreamStats } from './support/streaming.js';

const quick = process.argv.includes('--quick');
const ROUNDS = quick ? 1 : 5;
const SECONDS = quick ? 0.5 : 2;
const LATENCY_SECONDS = quick ? 0.5 : 3;
const OPEN_LOOP_SECONDS = quick ? 0.5 : 3;
const CONCURRENCIES = quick ? [16] : [1, 16, 64, 256];
const PEAK_CONCURRENCY = quick ? 16 : 64;
const STREAM_COUNTS = quick ? [1, 16] : [1, 256];
/**
 * Per stream count: the upstream's gap between events (ms) and the requests each connection makes
 * one after the other (samples). At 256 streams an event every 10 ms would be 25,600 events/s,
 * which saturates both CPUs and measures queueing, not the proxy; every 50 ms does not.
 */
const STREAM_PLAN: Record<number, { intervalMs: number; requests: number }> = quick
  ? { 1: { intervalMs: 10, requests: 5 }, 16: { intervalMs: 10, requests: 1 } }
  : { 1: { intervalMs: 10, requests: 30 }, 256: { intervalMs: 50, requests: 2 } };
const MEMORY_STREAMS = quick ? [200] : [1000, 5000];
const COLD_STARTS = quick ? 1 : 5;
/** File descriptors: 5,000 streams hold 10,000 in the proxy, 5,000 here and 5,000 in the upstream. */
const FD_LIMIT = 65_536;

type Target = 'direct' | 'floor' | 'signalbox' | 'portkey' | 'fastify-floor' | 'signalbox-bare';
const MAIN: Target[] = ['direct', 'floor', 'signalbox', 'portkey'];
const REFERENCES: Target[] = ['fastify-floor', 'signalbox-bare'];
const STREAMING: Target[] = ['direct', 'floor', 'signalbox'];

const BODY = CHAT_BODY;
const HEADERS = CHAT_HEADERS;

function percentile(sorted: ArrayLike<number>, p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
}

/** Sequential requests for `seconds` on one keep-alive connection; latencies in microseconds, sorted. */
async function latencies(origin: string, path: string, headers: Record<string, string>, seconds: number): Promise<number[]> {
  const pool = new Pool(origin, { connections: 1, pipelining: 1 });
  const out: number[] = [];
  const deadline = process.hrtime.bigint() + BigInt(Math.round(seconds * 1e9));
  const all = { 'content-type': 'application/json', authorization: 'Bearer bench', ...headers };
  while (process.hrtime.bigint() < deadline) {
    const t0 = process.hrtime.bigint();
    const res = await pool.request({ method: 'POST', path, headers: all, body: BODY });
    await res.body.dump();
    if (res.statusCode !== 200) throw new Error(`${origin}${path}: status ${res.statusCode}`);
    out.push(Number(process.hrtime.bigint() - t0) / 1000);
  }
  await pool.close();
  return out.sort((a, b) => a - b);
}

interface StreamRound {
  ttfbP50: number;
  firstTokenP50: number;
  /** Transit of the first-token frame (receive - upstream send stamp), p50, µs. */
  firstTokenTransitP50: number;
  transitP50: number;
  transitP99: number;
  /** p99 of |transit_i - transit_i-1|: how much the path bends the gaps the upstream made, µs. */
  gapJitterP99: number;
  frames: number;
  coalescedChunks: number;
  errors: number;
}

interface RoundResult {
  rps: Record<number, number>;
  cpuPerRequest?: number;
  latency?: { p50: number; p99: number; p999: number };
  openLoop?: { p50: number; p99: number; errors: number; sendLagP99: number } | 'over capacity';
  streams: Record<number, StreamRound>;
}

function streamRound(s: StreamStats): StreamRound {
  if (s.errors > 0) throw new Error(`streaming: ${s.errors} failed streams (${s.errorSamples.slice(0, 3).join('; ')})`);
  return {
    ttfbP50: s.ttfbUs.p50, firstTokenP50: s.firstTokenUs.p50, firstTokenTransitP50: s.firstTokenTransitUs.p50,
    transitP50: s.transitUs.p50, transitP99: s.transitUs.p99, gapJitterP99: s.gapJitterAbsUs.p99,
    frames: s.frames, coalescedChunks: s.coalescedChunks, errors: s.errors,
  };
}

/** Median and spread of a figure over the rounds (undefined values left out). */
function stat(values: (number | undefined)[]): { median: number; min: number; max: number } | undefined {
  const v = values.filter((x): x is number => x !== undefined && Number.isFinite(x));
  return v.length === 0 ? undefined : { median: median(v), min: Math.min(...v), max: Math.max(...v) };
}

const children: Child[] = [];
// Children inherit the limit; raising it needs CAP_SYS_RESOURCE (not every container has it).
raiseFdLimit(process.pid, FD_LIMIT);
pinSelf(0);
try {
  const upstream = await startFakeUpstream();
  children.push(upstream.child);
  const floorEnv = { UPSTREAM: upstream.baseUrl };
  const startFloor = async (script: string, nodeArgs: string[] = [], env: Record<string, string> = {}): Promise<{ child: Child; origin: string }> => {
    const started = await startNode(script, { env: { PORT: '0', ...floorEnv, ...env }, ready: (line) => /listening on (\d+)/.exec(line)?.[1], cpu: 1, nodeArgs });
    children.push(started.child);
    return { child: started.child, origin: `http://127.0.0.1:${started.value}` };
  };
  const floor = await startFloor('dist/bench/floor.js');
  const fastifyFloor = await startFloor('dist/bench/floor-fastify.js');
  const signalboxEnv = {
    OPENROUTER_BASE_URL: upstream.baseUrl, OPENROUTER_API_KEY: 'sk-bench', RULES_FILE: resolve(ROOT, 'bench/rules.bench.yaml'),
    METRICS_ENABLED: 'true', LOG_LEVEL: 'info',
  };
  const signalbox = await startSignalbox(signalboxEnv);
  children.push(signalbox.child);
  const bare = await startSignalbox({ ...signalboxEnv, RULES_FILE: resolve(ROOT, 'bench/support/one-rule.yaml'), METRICS_ENABLED: 'false', LOG_LEVEL: 'silent' });
  children.push(bare.child);
  const portkey = await startPortkey(upstream.baseUrl, 1);
  children.push(portkey.child);

  const upstreamUrl = new URL(upstream.baseUrl);
  const where: Record<Target, { origin: string; path: string; headers: Record<string, string>; pid?: number }> = {
    direct: { origin: upstreamUrl.origin, path: `${upstreamUrl.pathname}/chat/completions`, headers: HEADERS },
    floor: { origin: floor.origin, path: '/v1/chat/completions', headers: HEADERS, pid: floor.child.process.pid! },
    signalbox: { origin: signalbox.origin, path: '/v1/chat/completions', headers: HEADERS, pid: signalbox.child.process.pid! },
    portkey: { origin: portkey.origin, path: portkey.path, headers: { ...HEADERS, ...portkey.headers }, pid: portkey.child.process.pid! },
    'fastify-floor': { origin: fastifyFloor.origin, path: '/v1/chat/completions', headers: HEADERS, pid: fastifyFloor.child.process.pid! },
    'signalbox-bare': { origin: bare.origin, path: '/v1/chat/completions', headers: HEADERS, pid: bare.child.process.pid! },
  };
  const load = async (t: Target, concurrency: number, seconds: number) => {
    const { origin, path, headers } = where[t];
    const result = await closedLoop(origin, { concurrency, seconds, path, body: BODY, headers });
    if (result.errors > 0) throw new Error(`${t} at concurrency ${concurrency}: ${result.errors} failed requests`);
    return result;
  };

  // Warm up every target (JIT, connection pools); Portkey keeps getting faster for a few seconds.
  for (const t of [...MAIN, ...REFERENCES]) await load(t, 16, quick ? 0.3 : t === 'portkey' ? 6 : 2);
  // The open-loop rate: half of Signalbox's own peak, fixed for the whole run.
  const peak = (await load('signalbox', PEAK_CONCURRENCY, quick ? 0.5 : 3)).rps;
  const openLoopRate = Math.round(peak / 2);

  const rounds = Object.fromEntries([...MAIN, ...REFERENCES].map((t) => [t, [] as RoundResult[]])) as Record<Target, RoundResult[]>;
  for (let round = 0; round < ROUNDS; round++) {
    const all = [...MAIN, ...REFERENCES];
    const order = all.map((_, i) => all[(i + round) % all.length]!);
    for (const target of order) {
      process.stderr.write(`round ${round + 1}/${ROUNDS}: ${target}\n`);
      const { origin, path, headers, pid } = where[target];
      const reference = REFERENCES.includes(target);
      const result: RoundResult = { rps: {}, streams: {} };
      for (const concurrency of reference ? [PEAK_CONCURRENCY] : CONCURRENCIES) {
        const cpuBefore = pid !== undefined && concurrency === PEAK_CONCURRENCY ? processCpuMicros(pid) : undefined;
        const run = await load(target, concurrency, SECONDS);
        result.rps[concurrency] = run.rps;
        if (cpuBefore !== undefined) result.cpuPerRequest = (processCpuMicros(pid!) - cpuBefore) / run.requests;
      }
      const lat = await latencies(origin, path, headers, LATENCY_SECONDS);
      result.latency = { p50: percentile(lat, 0.5), p99: percentile(lat, 0.99), p999: percentile(lat, 0.999) };
      if (!reference) {
        if (result.rps[PEAK_CONCURRENCY]! < openLoopRate) {
          // Its queue would only grow: every latency would be the length of the run.
          result.openLoop = 'over capacity';
        } else {
          const ol = await openLoop(origin, { rate: openLoopRate, seconds: OPEN_LOOP_SECONDS, path, body: BODY, headers });
          result.openLoop = { p50: percentile(ol.latencies, 0.5), p99: percentile(ol.latencies, 0.99), errors: ol.errors, sendLagP99: ol.sendLagP99 };
        }
      }
      if (STREAMING.includes(target)) {
        for (const streams of STREAM_COUNTS) {
          const plan = STREAM_PLAN[streams]!;
          const s = await measureStreams(origin, path, { streams, intervalMs: plan.intervalMs, requestsPerStream: plan.requests, headers });
          result.streams[streams] = streamRound(s);
        }
      }
      rounds[target].push(result);
    }
  }

  // Memory per open stream, on fresh processes (warmed up a little): in one that has run the
  // rounds, V8's heap has grown and RSS readings swing with GC timing. Then cold start and idle RSS.
  type MemoryFigures = { idleRssBytes: number; loadedRssBytes: number; perStreamBytes: number; marginalPerStreamBytes: number; idleHeapBytes?: number; loadedHeapBytes?: number; heapPerStreamBytes?: number };
  const memory: Record<string, Record<number, MemoryFigures | string>> = {};
  const fds = fdLimit(process.pid).soft;
  for (const t of ['floor', 'signalbox'] as const) {
    process.stderr.write(`memory: ${t}\n`);
    memory[t] = {};
    // Both with the heap probe (--expose-gc and a SIGUSR2 listener), so that it costs both alike.
    const probe = heapProbe(t);
    const fresh = t === 'floor' ? await startFloor('dist/bench/floor.js', probe.nodeArgs, probe.env) : await startSignalbox({ ...signalboxEnv, ...probe.env }, 1, probe.nodeArgs);
    children.push(fresh.child);
    const pid = fresh.child.process.pid!;
    await closedLoop(fresh.origin, { concurrency: 16, seconds: quick ? 0.3 : 1, path: '/v1/chat/completions', body: BODY, headers: HEADERS });
    for (const streams of MEMORY_STREAMS) {
      // The proxy holds two descriptors per stream (client and upstream), this process one.
      if (streams * 2 + 200 > fds) {
        memory[t][streams] = `skipped: ${streams} streams need ${streams * 2 + 200} open files, the limit is ${fds}`;
        continue;
      }
      const m = await measureStreamMemory(fresh.origin, '/v1/chat/completions', pid, { streams, headers: HEADERS, readHeap: () => probe.read(pid) });
      memory[t][streams] = {
        idleRssBytes: m.idleRssBytes, loadedRssBytes: m.loadedRssBytes, perStreamBytes: m.perStreamBytes, marginalPerStreamBytes: m.marginalPerStreamBytes,
        idleHeapBytes: m.idleHeapBytes, loadedHeapBytes: m.loadedHeapBytes, heapPerStreamBytes: m.heapPerStreamBytes,
      };
    }
    await fresh.child.stop();
  }
  // Cold starts, alternating Signalbox and the floor (same Node, same machine moment), on the
  // running Node and on Node 24, the image's runtime, which the cold-start target is for.
  process.stderr.write('cold starts\n');
  const node24Binary = node24();
  const nodes: { name: string; execPath?: string }[] = [{ name: process.version }, ...('execPath' in node24Binary ? [{ name: `v${node24Binary.version}`, execPath: node24Binary.execPath }] : [])];
  const starts: Record<string, { signalbox: ColdStart[]; floor: ColdStart[] }> = {};
  const request = { path: '/v1/chat/completions', body: BODY, headers: HEADERS };
  for (const node of nodes) {
    const on = node.execPath === undefined ? {} : { execPath: node.execPath };
    const byTarget = (starts[node.name] = { signalbox: [] as ColdStart[], floor: [] as ColdStart[] });
    for (let i = 0; i < COLD_STARTS; i++) {
      byTarget.signalbox.push(await coldStart(signalboxEnv, request, 1, on));
      byTarget.floor.push(await coldStart(floorEnv, request, 1, { ...on, script: 'dist/bench/floor.js' }));
    }
  }

  // ---- Summary: medians over the rounds, ratios within a round.
  const ratio = (t: Target, f: (r: RoundResult) => number | undefined, of: Target = 'floor') =>
    stat(rounds[t].map((r, i) => {
      const a = f(r);
      const b = f(rounds[of][i]!);
      return a === undefined || b === undefined ? undefined : a / b;
    }));
  /** Latency at concurrency 1 over direct's in the same round. */
  const added = (r: RoundResult, i: number, p: 'p50' | 'p99'): number | undefined => (r.latency ? r.latency[p] - rounds.direct[i]!.latency![p] : undefined);
  const addedOf = (t: Target, p: 'p50' | 'p99') => stat(rounds[t].map((r, i) => added(r, i, p)));
  const addedRatio = stat(rounds.signalbox.map((r, i) => added(r, i, 'p50')! / added(rounds.floor[i]!, i, 'p50')!));
  const openLoopOf = (t: Target, p: 'p50' | 'p99') => stat(rounds[t].map((r) => (typeof r.openLoop === 'object' ? r.openLoop[p] : undefined)));
  const streamAdded = (t: Target, n: number, f: (s: StreamRound) => number) =>
    stat(rounds[t].map((r, i) => (r.streams[n] ? f(r.streams[n]!) - f(rounds.direct[i]!.streams[n]!) : undefined)));
  const streamStat = (t: Target, n: number, f: (s: StreamRound) => number) => stat(rounds[t].map((r) => (r.streams[n] ? f(r.streams[n]!) : undefined)));

  const summary = Object.fromEntries([...MAIN, ...REFERENCES].map((t) => [t, {
    rps: Object.fromEntries(CONCURRENCIES.map((c) => [c, stat(rounds[t].map((r) => r.rps[c]))])),
    rps_ratio_to_floor: stat(rounds[t].map((r, i) => r.rps[PEAK_CONCURRENCY]! / rounds.floor[i]!.rps[PEAK_CONCURRENCY]!)),
    cpu_us_per_request: stat(rounds[t].map((r) => r.cpuPerRequest)),
    cpu_ratio_to_floor: t === 'direct' ? undefined : ratio(t, (r) => r.cpuPerRequest),
    latency_us: { p50: stat(rounds[t].map((r) => r.latency?.p50)), p99: stat(rounds[t].map((r) => r.latency?.p99)), p999: stat(rounds[t].map((r) => r.latency?.p999)) },
    added_latency_us: t === 'direct' ? undefined : { p50: addedOf(t, 'p50'), p99: addedOf(t, 'p99') },
    open_loop_us: rounds[t].some((r) => r.openLoop === 'over capacity') ? 'over capacity' : { p50: openLoopOf(t, 'p50'), p99: openLoopOf(t, 'p99') },
    streaming: STREAMING.includes(t) ? Object.fromEntries(STREAM_COUNTS.map((n) => [n, {
      ttfb_p50_us: streamStat(t, n, (s) => s.ttfbP50),
      first_token_p50_us: streamStat(t, n, (s) => s.firstTokenP50),
      added_ttfb_p50_us: t === 'direct' ? undefined : streamAdded(t, n, (s) => s.ttfbP50),
      added_first_token_p50_us: t === 'direct' ? undefined : streamAdded(t, n, (s) => s.firstTokenTransitP50),
      frame_transit_p99_us: streamStat(t, n, (s) => s.transitP99),
      gap_jitter_p99_us: streamStat(t, n, (s) => s.gapJitterP99),
      added_gap_p99_us: t === 'direct' ? undefined : streamAdded(t, n, (s) => s.gapJitterP99),
      frames: rounds[t].map((r) => r.streams[n]!.frames),
      merged_chunks: rounds[t].map((r) => r.streams[n]!.coalescedChunks),
    }])) : undefined,
  }])) as Record<Target, any>; // a report's shape, read only by the tables below and written as JSON

  // ---- Tables.
  const f = (n: number | undefined, d = 0): string => (n === undefined || !Number.isFinite(n) ? '-' : n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d }));
  const m = (s: { median: number; min: number; max: number } | undefined, d = 0): string => (s === undefined ? '-' : `${f(s.median, d)} (${f(s.min, d)}–${f(s.max, d)})`);
  const row = (cells: string[]): string => `| ${cells.join(' | ')} |`;
  const table = (head: string[], rows: string[][]): void => {
    console.log(row(head));
    console.log(row(head.map(() => '---')));
    for (const r of rows) console.log(row(r));
    console.log('');
  };
  const show = (v: number | undefined, unit: string): string => (v === undefined || !Number.isFinite(v) ? '-' : unit === '' ? (v === 1 ? 'yes' : 'no') : `${f(v, unit === '×' ? 2 : unit === 'MiB' || unit === 'KiB' ? 1 : 0)} ${unit}`);
  const judge = (v: number | undefined, ok: (v: number) => boolean): boolean | undefined => (v === undefined || !Number.isFinite(v) ? undefined : ok(v));
  const kib = (bytes: number | undefined): number | undefined => (bytes === undefined ? undefined : bytes / 1024);
  const ratioCheck = (a: number | undefined, b: number | undefined, most: number): { ratio: number | undefined; met: boolean | undefined } => {
    const r = a === undefined || b === undefined ? undefined : a / b;
    return { ratio: r, met: judge(r, (v) => v <= most) };
  };
  const cpuInfo = cpus()[0]?.model ?? 'unknown CPU';
  console.log(`\nproxy benchmark: ${ROUNDS} rotating rounds, ${process.version}, ${cpus().length} × ${cpuInfo}, ${CAN_PIN ? 'proxies on CPU 1, load and upstream on CPU 0' : 'no CPU pinning'}${quick ? ' (quick: numbers not meaningful)' : ''}`);
  console.log('medians over the rounds, (min–max) across them; ratios are taken to the floor of the same round\n');
  console.log(`Throughput (req/s, closed loop) and CPU per request of the proxy process at concurrency ${PEAK_CONCURRENCY}`);
  table(['target', ...CONCURRENCIES.map((c) => `c=${c}`), `× floor at c=${PEAK_CONCURRENCY}`, 'CPU µs/req', 'CPU × floor'],
    [...MAIN, ...REFERENCES].map((t) => [t, ...CONCURRENCIES.map((c) => m(summary[t].rps[c])), m(summary[t].rps_ratio_to_floor, 2), m(summary[t].cpu_us_per_request), m(summary[t].cpu_ratio_to_floor, 2)]));
  console.log(`Latency (µs): concurrency 1, and open loop at ${openLoopRate.toLocaleString('en-US')} req/s (half of Signalbox's peak), from each request's intended send time`);
  table(['target', 'c=1 p50', 'c=1 p99', 'c=1 p99.9', 'added p50', 'added p99', 'open p50', 'open p99'],
    [...MAIN, ...REFERENCES].map((t) => {
      const s = summary[t];
      const ol = s.open_loop_us;
      return [t, m(s.latency_us.p50), m(s.latency_us.p99), m(s.latency_us.p999), m(s.added_latency_us?.p50), m(s.added_latency_us?.p99),
        ol === 'over capacity' ? 'over capacity' : m(ol.p50), ol === 'over capacity' ? '' : m(ol.p99)];
    }));
  console.log(`Streaming (µs; an upstream event every ${STREAM_COUNTS.map((n) => `${STREAM_PLAN[n]!.intervalMs} ms at ${n}`).join(', ')}; added = target − direct; added first token and gap from the upstream's send stamps)`);
  table(['target', 'streams', 'TTFB p50', 'added TTFB', 'first token p50', 'added first token', 'gap jitter p99', 'added gap p99', 'frames (per round)', 'merged chunks'],
    STREAMING.flatMap((t) => STREAM_COUNTS.map((n) => {
      const s = summary[t].streaming[n];
      return [t, String(n), m(s.ttfb_p50_us), m(s.added_ttfb_p50_us), m(s.first_token_p50_us), m(s.added_first_token_p50_us, 1), m(s.gap_jitter_p99_us, 1), m(s.added_gap_p99_us, 1), s.frames.join('/'), s.merged_chunks.join('/')];
    })));
  console.log('Memory with open slow streams (RSS of the proxy process; V8 used heap after a forced full GC, through bench/support/heap-probe.mjs)');
  table(['target', 'streams', 'idle RSS MiB', 'loaded RSS MiB', 'KiB per stream', 'marginal KiB per stream', 'idle heap MiB', 'live heap KiB per stream'],
    Object.entries(memory).flatMap(([t, byCount]) => Object.entries(byCount).map(([n, v]) => typeof v === 'string'
      ? [t, n, v, '', '', '', '', '']
      : [t, n, f(v.idleRssBytes / 2 ** 20, 1), f(v.loadedRssBytes / 2 ** 20, 1), f(v.perStreamBytes / 1024, 1), f(v.marginalPerStreamBytes / 1024, 1),
        f(v.idleHeapBytes === undefined ? undefined : v.idleHeapBytes / 2 ** 20, 1), f(v.heapPerStreamBytes === undefined ? undefined : v.heapPerStreamBytes / 1024, 1)])));
  const startStats = Object.fromEntries(Object.entries(starts).map(([node, byTarget]) => [node, {
    signalbox_ms: stat(byTarget.signalbox.map((s) => s.ms)), floor_ms: stat(byTarget.floor.map((s) => s.ms)),
    signalbox_idle_rss_mib: stat(byTarget.signalbox.map((s) => s.rssBytes / 2 ** 20)), floor_idle_rss_mib: stat(byTarget.floor.map((s) => s.rssBytes / 2 ** 20)),
    // Start i of Signalbox and of the floor ran one after the other: the ratio is taken per pair.
    idle_rss_ratio_to_floor: stat(byTarget.signalbox.map((s, i) => s.rssBytes / byTarget.floor[i]!.rssBytes)),
  }]));
  console.log(`Cold start to the first answered chat completion (ms), and idle RSS right after it (MiB); ${COLD_STARTS} starts each${'reason' in node24Binary ? `; Node 24: - (${node24Binary.reason})` : ''}`);
  table(['node', 'signalbox cold start', 'floor cold start', 'signalbox idle RSS', 'floor idle RSS', 'idle RSS × floor'],
    Object.entries(startStats).map(([node, s]) => [node, m(s.signalbox_ms), m(s.floor_ms), m(s.signalbox_idle_rss_mib, 1), m(s.floor_idle_rss_mib, 1), m(s.idle_rss_ratio_to_floor, 2)]));

  // ---- Issue 13's targets, each with the floor's own figure where it has one: a target the floor
  // misses too is this machine's, not the proxy's. `ratio` is what a ratio target judges.
  const sy = summary.signalbox;
  const fl = summary.floor;
  const heapOf = (t: string): number | undefined => {
    const v = memory[t]?.[MEMORY_STREAMS[0]!];
    return typeof v === 'object' ? v.heapPerStreamBytes : undefined;
  };
  const framesOneToOne = (t: Target, n: number): number => (rounds[t].every((r, i) => r.streams[n]!.frames === rounds.direct[i]!.streams[n]!.frames && r.streams[n]!.coalescedChunks === 0) ? 1 : 0);
  const mostStreams = STREAM_COUNTS.at(-1)!;
  const here = startStats[process.version]!;
  const on24 = nodes[1] === undefined ? undefined : startStats[nodes[1].name];
  const portkeyRatio = stat(rounds.signalbox.map((r, i) => r.rps[PEAK_CONCURRENCY]! / rounds.portkey[i]!.rps[PEAK_CONCURRENCY]!))?.median;
  /** `ratio`: signalbox's figure over the floor's (medians of per-round ratios where the rounds pair them). */
  type Check = { figure: string; target: string; unit: string; signalbox: number | undefined; floor?: number | undefined; ratio?: number | undefined; portkeyRatio?: number | undefined; met: boolean | undefined; note?: string };
  const checks: Check[] = [
    { figure: `CPU per request at c=${PEAK_CONCURRENCY}, non-streaming`, target: '≤ 1.2× the floor’s', unit: 'µs', signalbox: sy.cpu_us_per_request?.median, floor: fl.cpu_us_per_request?.median,
      ratio: sy.cpu_ratio_to_floor?.median, met: judge(sy.cpu_ratio_to_floor?.median, (v) => v <= 1.2) },
    { figure: `throughput at c=${PEAK_CONCURRENCY}`, target: '≥ 0.85× the floor’s and ≥ 8× Portkey’s', unit: 'req/s', signalbox: sy.rps[PEAK_CONCURRENCY]?.median, floor: fl.rps[PEAK_CONCURRENCY]?.median,
      ratio: sy.rps_ratio_to_floor?.median, portkeyRatio,
      met: sy.rps_ratio_to_floor === undefined || portkeyRatio === undefined ? undefined : sy.rps_ratio_to_floor.median >= 0.85 && portkeyRatio >= 8 },
    { figure: 'added p50 latency at c=1', target: '≤ 1.15× the floor’s added p50', unit: 'µs', signalbox: sy.added_latency_us.p50?.median, floor: fl.added_latency_us.p50?.median,
      ratio: addedRatio?.median, met: judge(addedRatio?.median, (v) => v <= 1.15) },
    { figure: `added first token p50, ${mostStreams} streams`, target: '< 350 µs', unit: 'µs', signalbox: sy.streaming[mostStreams].added_first_token_p50_us?.median, floor: fl.streaming[mostStreams].added_first_token_p50_us?.median,
      met: judge(sy.streaming[mostStreams].added_first_token_p50_us?.median, (v) => v < 350) },
    { figure: `live heap per open stream (V8 heap after a forced GC, ${MEMORY_STREAMS[0]} streams)`, target: '≤ 1.5× the floor’s', unit: 'KiB',
      signalbox: kib(heapOf('signalbox')), floor: kib(heapOf('floor')), ...ratioCheck(heapOf('signalbox'), heapOf('floor'), 1.5) },
    { figure: `idle RSS after the first request (${process.version})`, target: '≤ 1.15× the floor’s, same Node', unit: 'MiB', signalbox: here.signalbox_idle_rss_mib?.median, floor: here.floor_idle_rss_mib?.median,
      ratio: here.idle_rss_ratio_to_floor?.median, met: judge(here.idle_rss_ratio_to_floor?.median, (v) => v <= 1.15) },
    { figure: 'cold start to first answered request, Node 24', target: '< 300 ms', unit: 'ms', signalbox: on24?.signalbox_ms?.median, floor: on24?.floor_ms?.median,
      met: judge(on24?.signalbox_ms?.median, (v) => v < 300), ...('reason' in node24Binary && { note: `no Node 24: ${node24Binary.reason}` }) },
    { figure: `cold start to first answered request, ${process.version}`, target: 'reported', unit: 'ms', signalbox: here.signalbox_ms?.median, floor: here.floor_ms?.median, met: undefined },
    ...STREAM_COUNTS.map((n): Check => ({
      figure: `frames 1:1 at ${n} stream(s) (as many as direct, none merged)`, target: 'kept', unit: '', signalbox: framesOneToOne('signalbox', n), floor: framesOneToOne('floor', n),
      met: framesOneToOne('signalbox', n) === 1,
    })),
  ];
  table(['figure', 'target', 'signalbox', 'floor', 'ratio', 'met'],
    checks.map((c) => [c.figure, c.target, show(c.signalbox, c.unit), show(c.floor, c.unit), `${c.ratio === undefined ? '' : show(c.ratio, '×')}${c.portkeyRatio === undefined ? '' : ` floor, ${show(c.portkeyRatio, '×')} Portkey`}`, c.note ?? (c.met === undefined ? '-' : c.met ? 'yes' : 'NO')]));

  const date = new Date().toISOString();
  mkdirSync(resolve(ROOT, 'bench/results'), { recursive: true });
  const file = resolve(ROOT, `bench/results/proxy-${date.slice(0, 10)}${quick ? '-quick' : ''}.json`);
  writeFileSync(file, `${JSON.stringify({
    date, node: process.version, cpu: cpuInfo, cpus: cpus().length, quick, pinned: CAN_PIN, rounds: ROUNDS, seconds: SECONDS,
    concurrencies: CONCURRENCIES, open_loop_rate: openLoopRate, stream_plan: STREAM_PLAN,
    summary, memory, cold_start: startStats, node24: node24Binary,
    targets: checks.map((c) => ({ figure: c.figure, target: c.target, unit: c.unit, signalbox: c.signalbox, floor: c.floor, ratio: c.ratio, portkey_ratio: c.portkeyRatio, met: c.met, note: c.note })),
    raw: rounds, cold_starts: starts,
  }, null, 2)}\n`);
  console.log(`written: ${file}`);
} finally {
  await Promise.all(children.map((c) => c.stop()));
}
