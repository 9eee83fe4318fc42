/**
 * npm run bench:profile [-- --requests 20000] [-- --quick]: where Signalbox's CPU goes, per function
 * and per area, from V8's sampling profiler (`node --cpu-prof`).
 *
 * The same set-up as `npm run bench`'s "signalbox" target: dist/src/main.js with the realistic
 * 32-rule file (bench/rules.bench.yaml), metrics on and info logs to a file, in front of the fake
 * OpenRouter, pinned to CPU 1 (the load and the upstream to CPU 0). Warm-up, then a fixed number of
 * non-streaming requests at concurrency 64 (closed loop, keep-alive); then SIGTERM, on which the
 * proxy shuts down and calls process.exit(0), and Node writes the profile at exit.
 *
 * Only the samples taken while the measured requests ran are counted (start-up, warm-up and
 * shutdown are left out): V8's profile clock and process.hrtime are both CLOCK_MONOTONIC in µs on
 * Linux, so the window taken here selects the child's samples. If they ever disagree, every sample
 * is counted and the output says so.
 *
 * Prints and writes bench/results/profile-<time>-<commit>.{md,json}: the top 30 functions by self
 * time, self time per area, and CPU µs per request (busy sampled time / requests; /proc's figure
 * beside it, which also counts V8's and libuv's other threads). The .cpuprofile itself is deleted.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { areaTable, functionTable, summariseProfile, type CpuProfile } from './support/cpu-profile.js';
import { CHAT_BODY, CHAT_HEADERS, closedLoop } from './support/load.js';
import { CAN_PIN, ROOT, pinSelf, processCpuMicros, startFakeUpstream, startSignalbox, type Child } from './support/processes.js';

function flag(name: string, fallback: number): number {
  const at = process.argv.indexOf(name);
  if (at < 0) return fallback;
  const value = Number(process.argv[at + 1]);
  if (!Number.isInteger(value) || value <= 0) throw new Error(`${name} needs a positive integer`);
  return value;
}

const quick = process.argv.includes('--quick');
const REQUESTS = flag('--requests', quick ? 3_000 : 20_000);
const WARMUP_REQUESTS = flag('--warmup', quick ? 1_000 : 5_000);
/**
 * Sampling interval: Node's default (1000 µs) gives only a few thousand samples for 20k requests;
 * 100 µs gives tens of thousands, for a few percent of overhead.
 */
const INTERVAL_US = flag('--interval-us', 100);
const CONCURRENCY = 64;
const TOP = 30;
/** A bound on each load phase: the request count ends it long before on any working machine. */
const LOAD_SECONDS_LIMIT = 300;

const BODY = CHAT_BODY;
const HEADERS = CHAT_HEADERS;
const PATH = '/v1/chat/completions';

const git = (...args: string[]): string => spawnSync('git', args, { cwd: ROOT, encoding: 'utf8' }).stdout.trim();
const commit = `${git('rev-parse', '--short', 'HEAD')}${git('status', '--porcelain', '--', 'src') === '' ? '' : '+dirty'}`;
/** The last commit that changed src/: what was measured, when only bench/ or docs/ changed since. */
const srcCommit = git('log', '-1', '--format=%h', '--', 'src');

const profileDir = mkdtempSync(join(tmpdir(), 'signalbox-profile-'));
const children: Child[] = [];
pinSelf(0);
try {
  const upstream = await startFakeUpstream();
  children.push(upstream.child);
  const signalbox = await startSignalbox({
    OPENROUTER_BASE_URL: upstream.baseUrl, OPENROUTER_API_KEY: 'sk-bench', RULES_FILE: resolve(ROOT, 'bench/rules.bench.yaml'),
    METRICS_ENABLED: 'true', LOG_LEVEL: 'info',
  }, 1, ['--cpu-prof', `--cpu-prof-dir=${profileDir}`, `--cpu-prof-interval=${INTERVAL_US}`]);
  children.push(signalbox.child);
  const pid = signalbox.child.process.pid!;
  const load = async (requests: number) => {
    const result = await closedLoop(signalbox.origin, { concurrency: CONCURRENCY, seconds: LOAD_SECONDS_LIMIT, requests, path: PATH, body: BODY, headers: HEADERS });
    if (result.errors > 0) throw new Error(`${result.errors} failed requests`);
    return result;
  };

  process.stderr.write(`warm-up: ${WARMUP_REQUESTS} requests\n`);
  await load(WARMUP_REQUESTS);
  process.stderr.write(`profiled: ${REQUESTS} requests at concurrency ${CONCURRENCY}\n`);
  const cpuBefore = processCpuMicros(pid);
  const fromUs = Number(process.hrtime.bigint() / 1000n);
  const run = await load(REQUESTS);
  const toUs = Number(process.hrtime.bigint() / 1000n);
  const procCpuPerRequest = (processCpuMicros(pid) - cpuBefore) / run.requests;

  await signalbox.child.stop();
  const { exitCode, signalCode } = signalbox.child.process;
  if (exitCode !== 0) throw new Error(`signalbox exited with ${exitCode ?? signalCode} on SIGTERM; no profile to trust`);
  const file = readdirSync(profileDir).find((f) => f.endsWith('.cpuprofile') && f.includes(`.${pid}.`));
  if (file === undefined) throw new Error(`no .cpuprofile for pid ${pid} in ${profileDir}`);
  const profile = JSON.parse(readFileSync(join(profileDir, file), 'utf8')) as CpuProfile;
  const clocksAgree = fromUs >= profile.startTime && toUs <= profile.endTime;
  const summary = summariseProfile(profile, ROOT, clocksAgree ? { fromUs, toUs } : {});
  const cpuPerRequest = summary.busyUs / run.requests;

  const date = new Date().toISOString();
  const heading = [
    `CPU profile of ${run.requests} requests at concurrency ${CONCURRENCY} (${run.rps.toFixed(0)} req/s), after ${WARMUP_REQUESTS} warm-up requests;`,
    `${date}, commit ${commit} (src/ of ${srcCommit}), ${process.version}, sampling every ${INTERVAL_US} µs, ${summary.samples} samples,`,
    `${CAN_PIN ? 'proxy pinned to CPU 1, load and upstream to CPU 0' : 'no CPU pinning'}${quick ? ' (quick: numbers not meaningful)' : ''}.`,
    clocksAgree ? 'Samples: the measured requests only.' : 'WARNING: the profile clock did not match process.hrtime; all samples counted (start-up and warm-up included).',
    '',
    `CPU per request: ${cpuPerRequest.toFixed(0)} µs sampled (busy ${(summary.busyUs / 1000).toFixed(0)} ms / ${run.requests} requests); ${procCpuPerRequest.toFixed(0)} µs from /proc (all threads).`,
  ].join('\n');
  const markdown = `${heading}\n\nSelf time by area:\n\n${areaTable(summary)}\n\nTop ${TOP} functions by self time:\n\n${functionTable(summary, TOP)}\n`;
  console.log(markdown);

  mkdirSync(resolve(ROOT, 'bench/results'), { recursive: true });
  const base = resolve(ROOT, `bench/results/profile-${date.slice(0, 19).replaceAll(':', '-')}-${commit}${quick ? '-quick' : ''}`);
  writeFileSync(`${base}.md`, markdown);
  writeFileSync(`${base}.json`, `${JSON.stringify({
    date, commit, src_commit: srcCommit, node: process.version, quick, pinned: CAN_PIN, concurrency: CONCURRENCY, requests: run.requests,
    warmup_requests: WARMUP_REQUESTS, rps: run.rps, interval_us: INTERVAL_US, samples: summary.samples, window_only: clocksAgree,
    cpu_us_per_request: cpuPerRequest, proc_cpu_us_per_request: procCpuPerRequest, total_ms: summary.totalUs / 1000, busy_ms: summary.busyUs / 1000,
    areas: summary.areas.map((a) => ({ area: a.area, self_ms: a.selfUs / 1000 })),
    // The top 100: enough to compare before and after, without the long tail of one-sample functions.
    functions: summary.functions.slice(0, 100).map((f) => ({ function: f.function, location: f.location, area: f.area, self_ms: f.selfUs / 1000 })),
  }, null, 2)}\n`);
  console.log(`written: ${base}.md, ${base}.json`);
} finally {
  await Promise.all(children.map((c) => c.stop()));
  rmSync(profileDir, { recursive: true, force: true });
}
