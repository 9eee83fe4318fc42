/**
 * npm run bench:shapes [-- --quick]: what a Responses or Messages request costs the proxy next to
 * the same request in chat (issue 18). One Signalbox process in front of the fake upstream, one
 * rule that matches the request's text and rewrites the model and the cap in every shape (so
 * each shape does the same routing work: its view of the body, the rewrite, the re-serialisation,
 * its own tap), closed-loop load on keep-alive connections, the shapes in rotating order each
 * round so that a noisy machine's drift hits them alike. Measured: the proxy's CPU microseconds per
 * request (from /proc), JSON and streamed. Target: no shape costs more than 1.15x chat's CPU per
 * request in the same mode. Prints a table, writes bench/results/shapes-<date>.json.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { closedLoop, median } from './support/load.js';
import { CAN_PIN, ROOT, pinSelf, processCpuMicros, startFakeUpstream, startSignalbox, type Child } from './support/processes.js';

const quick = process.argv.includes('--quick');
const ROUNDS = quick ? 1 : 9;
const SECONDS = quick ? 0.5 : 3;
const CONCURRENCY = 16;
const TARGET = 1.15;

const RULES = `version: 1
rules:
  - name: summaries
    when: { request.text: { contains: incident } }
    route: { model: openai/gpt-4o-mini, max_tokens: 256, system_prompt: { prepend: "Be brief." } }
`;

const PROMPT = 'Summarise the incident report in three bullet points.';
type Shape = 'chat' | 'responses' | 'messages';
const SHAPES: readonly Shape[] = ['chat', 'responses', 'messages'];
const PATHS: Record<Shape, string> = { chat: '/v1/chat/completions', responses: '/v1/responses', messages: '/v1/messages' };

function bodyOf(shape: Shape, stream: boolean): string {
  if (shape === 'responses') return JSON.stringify({ model: 'auto', stream, instructions: 'You summarise.', input: [{ role: 'user', content: [{ type: 'input_text', text: PROMPT }] }], max_output_tokens: 1000 });
  if (shape === 'messages') return JSON.stringify({ model: 'auto', stream, system: 'You summarise.', max_tokens: 1000, messages: [{ role: 'user', content: [{ type: 'text', text: PROMPT }] }] });
  return JSON.stringify({ model: 'auto', stream, max_tokens: 1000, messages: [{ role: 'system', content: 'You summarise.' }, { role: 'user', content: PROMPT }] });
}

const children: Child[] = [];
const dir = mkdtempSync(join(tmpdir(), 'signalbox-bench-shapes-'));
pinSelf(0);
try {
  const rulesFile = join(dir, 'rules.yaml');
  writeFileSync(rulesFile, RULES);
  const upstream = await startFakeUpstream();
  children.push(upstream.child);
  const proxy = await startSignalbox({ OPENROUTER_BASE_URL: upstream.baseUrl, OPENROUTER_API_KEY: 'sk-bench', RULES_FILE: rulesFile, METRICS_ENABLED: 'true', LOG_LEVEL: 'info' });
  children.push(proxy.child);
  const pid = proxy.child.process.pid!;

  const runs = SHAPES.flatMap((shape) => [false, true].map((stream) => ({ shape, stream, key: `${shape}${stream ? ' stream' : ''}` })));
  for (const run of runs) await closedLoop(proxy.origin, { concurrency: CONCURRENCY, seconds: quick ? 0.3 : 1.5, path: PATHS[run.shape], body: bodyOf(run.shape, run.stream) });

  // How many SSE events (writes to the client) one response of each stream is: the relay's and the tap's work grows with it.
  const events: Record<string, number> = {};
  for (const run of runs.filter((r) => r.stream)) {
    const res = await fetch(`${proxy.origin}${PATHS[run.shape]}`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer bench' }, body: bodyOf(run.shape, true) });
    events[run.key] = ((await res.text()).match(/^data:/gm) ?? []).length;
  }

  const cpu: Record<string, number[]> = {};
  const rps: Record<string, number[]> = {};
  for (let round = 0; round < ROUNDS; round++) {
    // Rotate the order each round: no shape always runs first on a cooler machine.
    const order = runs.map((_, i) => runs[(i + round) % runs.length]!);
    for (const run of order) {
      const before = processCpuMicros(pid);
      const result = await closedLoop(proxy.origin, { concurrency: CONCURRENCY, seconds: SECONDS, path: PATHS[run.shape], body: bodyOf(run.shape, run.stream) });
      if (result.errors > 0) throw new Error(`${run.key}: ${result.errors} failed requests`);
      (cpu[run.key] ??= []).push((processCpuMicros(pid) - before) / result.requests);
      (rps[run.key] ??= []).push(result.rps);
    }
  }

  console.log(`shapes: ${ROUNDS} rotating rounds of ${SECONDS} s, concurrency ${CONCURRENCY}, ${process.version}, ${CAN_PIN ? 'proxy pinned to CPU 1, load and upstream to CPU 0' : 'no CPU pinning'}${quick ? ' (quick: numbers not meaningful)' : ''}`);
  console.log('| request              | req/s median | proxy CPU µs/req | vs chat, same mode | target   | met | SSE events | CPU µs/event vs chat |');
  console.log('| -------------------- | ------------ | ---------------- | ------------------ | -------- | --- | ---------- | -------------------- |');
  const ratios: Record<string, number> = {};
  const perEventRatios: Record<string, number> = {};
  let allMet = true;
  for (const run of runs) {
    const chatKey = `chat${run.stream ? ' stream' : ''}`;
    // Per-round ratios against chat of the same round: the machine's drift cancels.
    const ratio = median(cpu[run.key]!.map((v, i) => v / cpu[chatKey]![i]!));
    ratios[run.key] = ratio;
    const met = run.shape === 'chat' || ratio <= TARGET;
    if (!met) allMet = false;
    // A stream's cost per event it relays, against chat's: whether a shape costs more per event, or only has more of them.
    const perEvent = run.stream ? ratio * (events[chatKey]! / events[run.key]!) : undefined;
    if (perEvent !== undefined) perEventRatios[run.key] = perEvent;
    console.log(`| ${run.key.padEnd(20)} | ${median(rps[run.key]!).toFixed(0).padStart(12)} | ${median(cpu[run.key]!).toFixed(0).padStart(16)} | ${run.shape === 'chat' ? '1'.padStart(18) : ratio.toFixed(3).padStart(18)} | ${run.shape === 'chat' ? '-       ' : `≤ ${TARGET}×  `} | ${met ? 'yes' : 'NO '} | ${(run.stream ? String(events[run.key]) : '-').padStart(10)} | ${(perEvent === undefined ? '-' : perEvent.toFixed(3)).padStart(20)} |`);
  }
  console.log(`every shape within ${TARGET}× chat's proxy CPU per request: ${allMet ? 'met' : 'NOT met'}`);
  const date = new Date().toISOString();
  mkdirSync(resolve(ROOT, 'bench/results'), { recursive: true });
  const file = resolve(ROOT, `bench/results/shapes-${date.slice(0, 10)}${quick ? '-quick' : ''}.json`);
  writeFileSync(file, `${JSON.stringify({ date, node: process.version, quick, rounds: ROUNDS, seconds: SECONDS, concurrency: CONCURRENCY, pinned: CAN_PIN, target: TARGET, cpu_us_per_request: cpu, rps, ratio_to_chat: ratios, sse_events: events, per_event_ratio_to_chat: perEventRatios, met: allMet }, null, 2)}\n`);
  console.log(`written: ${file}`);
} finally {
  await Promise.all(children.map((c) => c.stop()));
  rmSync(dir, { recursive: true, force: true });
}
