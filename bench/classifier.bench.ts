/**
 * npm run bench:classifier [-- --quick] [--set heldout.jsonl] [--second heldout.second.jsonl]
 *                          [--model model.json] [--results dir]
 * (node --expose-gc dist/bench/classifier.bench.js: gc() for the allocation figure)
 *
 * The local classifier's figures of issue 15, on the held-out split (default
 * datasets/classifier/heldout.jsonl) with the shipped model (default models/classifier-v1.json):
 * - complexity agreement, under-routing, over-routing and task agreement at each
 *   raise_below_confidence setting, against the targets (>= 80%, <= 5%, task >= 75%);
 * - the ceiling: a second, blind labelling of the same prompts (`{"id", "complexity", "task"}`
 *   lines, default heldout.second.jsonl beside the set) against the first;
 * - the hybrid's LLM share: held-out prompts whose local confidence is below min_confidence;
 * - µs per classification (classifierInput from a messages array, then classify: what a request
 *   pays), p50 and p99 of single calls, at the full 4,096-character window and at 200 characters;
 *   heap bytes allocated per classification; the artifact's size. Target: < 100 µs p50 at the full window.
 * --quick: fewer runs, seconds in CI (proves the harness runs; its latency numbers are rough).
 * Prints tables, writes bench/results/classifier-<date>[-quick].json.
 */
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { readLabelledSet } from '../src/classify/dataset.js';
import { COMPLEXITY_LABELS, complexityRank, isComplexity, isTask } from '../src/classify/labels.js';
import { DEFAULT_MODEL_FILE, HEADS, LocalClassifier, argmax, readClassifierFile } from '../src/classify/model.js';
import { evaluate } from '../src/classify/train.js';
import { WINDOW_HEAD_CHARS, WINDOW_TAIL_CHARS, classifierInput } from '../src/classify/window.js';
import { ROOT } from './support/processes.js';

const args = process.argv.slice(2);
const quick = args.includes('--quick');
function arg(name: string, fallback: string): string {
  const i = args.indexOf(name);
  if (i === -1) return fallback;
  const value = args[i + 1];
  if (value === undefined) throw new Error(`${name} needs a value`);
  return resolve(value);
}
const setFile = arg('--set', resolve(ROOT, 'datasets/classifier/heldout.jsonl'));
const secondFile = arg('--second', join(dirname(setFile), 'heldout.second.jsonl'));
const modelFile = arg('--model', DEFAULT_MODEL_FILE);
const resultsDir = arg('--results', resolve(ROOT, 'bench/results'));

const RAISE_SETTINGS = [0, 0.5, 0.6, 0.7, 0.8, 0.9];
/** hybrid.min_confidence: 0.7 is the default. */
const LLM_THRESHOLDS = [0.5, 0.6, 0.7, 0.8];
const TARGETS = { complexityAgreement: 0.8, underRouting: 0.05, taskAgreement: 0.75, p50Us: 100 };
const WARMUP = quick ? 500 : 5_000;
const RUNS = quick ? 2_000 : 50_000;
const ALLOC_CALLS = 1_000;

const read = readClassifierFile(modelFile);
if (Array.isArray(read)) throw new Error(read.join('\n'));
const model: LocalClassifier = read;
const set = readLabelledSet(setFile);

// --- accuracy at each raise_below_confidence -------------------------------------------------
const accuracy = RAISE_SETTINGS.map((raise) => {
  const e = evaluate(model, set.prompts, raise);
  return { raise_below_confidence: raise, complexity_agreement: e.complexityAgreement, under_routing: e.underRouting, over_routing: e.overRouting, task_agreement: e.taskAgreement };
});

// --- the ceiling: the second labelling against the first ------------------------------------
interface Ceiling { prompts: number; missing: number; complexity_agreement: number; task_agreement: number; under_routing: number }
function ceiling(): Ceiling | undefined {
  if (!existsSync(secondFile)) return undefined;
  const first = new Map(set.prompts.map((p) => [p.id, p]));
  let prompts = 0;
  let complexity = 0;
  let task = 0;
  let under = 0;
  readFileSync(secondFile, 'utf8').split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    const row = JSON.parse(line) as { id?: unknown; complexity?: unknown; task?: unknown };
    if (typeof row.id !== 'string' || !isComplexity(row.complexity) || !isTask(row.task)) throw new Error(`${secondFile}:${i + 1}: expected {"id", "complexity", "task"}`);
    const p = first.get(row.id);
    if (p === undefined) throw new Error(`${secondFile}:${i + 1}: id ${row.id} is not in ${setFile}`);
    prompts++;
    if (row.complexity === p.complexity) complexity++;
    if (row.task === p.task) task++;
    if (complexityRank(row.complexity) < complexityRank(p.complexity)) under++;
  });
  return { prompts, missing: set.prompts.length - prompts, complexity_agreement: complexity / prompts, task_agreement: task / prompts, under_routing: under / prompts };
}
const secondLabelling = ceiling();

// --- the hybrid's LLM share --------------------------------------------------------------------
const probs = new Float64Array(HEADS);
const confidences = set.prompts.map((p) => {
  model.probabilities(p.input, probs);
  return probs[argmax(probs, 0, COMPLEXITY_LABELS.length)]!;
});
const llmShare = LLM_THRESHOLDS.map((min) => ({ min_confidence: min, share: confidences.filter((c) => c < min).length / confidences.length }));

// --- latency and allocation ------------------------------------------------------------------
const WINDOW = WINDOW_HEAD_CHARS + WINDOW_TAIL_CHARS;
/** A last user turn of prose, code and CJK, longer than the window so that the cut is paid too. */
function fullTurn(): string {
  const prose = 'Our quarterly report shows revenue grew 12% while churn fell; the board asks whether to expand into two new regions next year. ';
  const code = '```ts\nexport function merge(a: number[], b: number[]): number[] {\n  const out = [];\n  let i = 0, j = 0;\n  while (i < a.length && j < b.length) out.push(a[i] < b[j] ? a[i++] : b[j++]);\n  return out.concat(a.slice(i), b.slice(j));\n}\n```\n';
  const cjk = '请根据上面的数据分析公司的增长趋势，并给出三条具体的建议。日本市場への進出についても検討してください。';
  let text = '';
  while (text.length < WINDOW + 1_000) text += prose + code + cjk + '\n';
  return `${text}\nGiven all of the above, what should we do first, and why?`;
}
function conversation(turn: string): unknown[] {
  return [
    { role: 'system', content: 'You are a careful analyst.' },
    { role: 'user', content: 'I will paste our figures next.' },
    { role: 'assistant', content: 'Go ahead.' },
    { role: 'user', content: turn },
  ];
}
const full = fullTurn();
const cases = [
  { name: `full window (${WINDOW} chars of a ${full.length}-char turn)`, key: 'full_window', messages: conversation(full) },
  { name: '200 chars', key: 'chars_200', messages: conversation(full.slice(0, 200)) },
];
if (classifierInput(cases[0]!.messages).text.length < WINDOW) throw new Error('the full-window case must fill the window');

/** With `node --expose-gc` (as npm run bench:classifier and CI run it): the allocation is measured after a full GC. */
const gc = (globalThis as { gc?: () => void }).gc;

function percentile(sorted: Float64Array, p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
}

let sink = 0;
const latency = cases.map(({ name, key, messages }) => {
  const once = (): void => {
    const verdict = model.classify(classifierInput(messages));
    sink += verdict.confidence;
  };
  for (let i = 0; i < WARMUP; i++) once();
  const us = new Float64Array(RUNS);
  for (let i = 0; i < RUNS; i++) {
    const t0 = process.hrtime.bigint();
    once();
    us[i] = Number(process.hrtime.bigint() - t0) / 1e3;
  }
  us.sort();
  // Heap growth over a batch small enough that no scavenge runs in it (1,000 calls of a few KiB
  // against a young generation of MiBs): what a classification allocates.
  let bytes: number | undefined;
  if (gc !== undefined) {
    gc();
    const before = process.memoryUsage().heapUsed;
    for (let i = 0; i < ALLOC_CALLS; i++) once();
    bytes = Math.max(0, (process.memoryUsage().heapUsed - before) / ALLOC_CALLS);
  }
  return { case: name, key, runs: RUNS, p50_us: percentile(us, 0.5), p99_us: percentile(us, 0.99), bytes_per_classification: bytes };
});
if (Number.isNaN(sink)) throw new Error('unreachable: keeps the calls alive');

const artifactBytes = statSync(modelFile).size;

// --- report ----------------------------------------------------------------------------------
const pct = (x: number): string => `${(x * 100).toFixed(1)}%`.padStart(7);
const met = (ok: boolean): string => (ok ? 'met' : 'MISSED');
console.log(`classifier: ${set.prompts.length} held-out prompts (${setFile}), model ${modelFile}, ${process.version}${quick ? ' (quick: latency numbers rough)' : ''}`);
console.log('| raise_below_confidence | complexity agreement (>= 80%) | under-routing (<= 5%) | over-routing | task agreement (>= 75%) |');
console.log('| ---------------------- | ----------------------------- | --------------------- | ------------ | ----------------------- |');
for (const a of accuracy) {
  console.log(`| ${(a.raise_below_confidence === 0 ? '0 (off)' : String(a.raise_below_confidence)).padEnd(22)} | ${pct(a.complexity_agreement)} ${met(a.complexity_agreement >= TARGETS.complexityAgreement).padEnd(21)} | ${pct(a.under_routing)} ${met(a.under_routing <= TARGETS.underRouting).padEnd(13)} | ${pct(a.over_routing).padEnd(12)} | ${pct(a.task_agreement)} ${met(a.task_agreement >= TARGETS.taskAgreement).padEnd(15)} |`);
}
if (secondLabelling === undefined) {
  console.log(`ceiling: no second labelling (${secondFile} does not exist)`);
} else {
  const s = secondLabelling;
  console.log(`ceiling (second labelling vs first, ${s.prompts} prompts${s.missing > 0 ? `, ${s.missing} not labelled twice` : ''}): complexity ${pct(s.complexity_agreement).trim()}, task ${pct(s.task_agreement).trim()}, under-routing of the second vs the first ${pct(s.under_routing).trim()}`);
}
console.log(`hybrid LLM share (local confidence < min_confidence): ${llmShare.map((l) => `${l.min_confidence}${l.min_confidence === 0.7 ? ' (default)' : ''}: ${pct(l.share).trim()}`).join(', ')}`);
console.log('| classification (classifierInput + classify) | runs   | p50 µs   | p99 µs   | heap bytes/call |');
console.log('| ------------------------------------------- | ------ | -------- | -------- | --------------- |');
for (const l of latency) {
  console.log(`| ${l.case.padEnd(43)} | ${String(l.runs).padEnd(6)} | ${l.p50_us.toFixed(2).padStart(8)} | ${l.p99_us.toFixed(2).padStart(8)} | ${(l.bytes_per_classification === undefined ? 'n/a: --expose-gc' : Math.round(l.bytes_per_classification).toString()).padStart(15)} |`);
}
const fullP50 = latency[0]!.p50_us;
console.log(`target: p50 < ${TARGETS.p50Us} µs at the full window: ${met(fullP50 < TARGETS.p50Us)} (${fullP50.toFixed(2)} µs)`);
console.log(`artifact: ${artifactBytes} bytes (2^${model.bits} buckets)`);

const date = new Date().toISOString();
mkdirSync(resultsDir, { recursive: true });
const file = join(resultsDir, `classifier-${date.slice(0, 10)}${quick ? '-quick' : ''}.json`);
writeFileSync(file, `${JSON.stringify({
  date, node: process.version, quick, set: setFile, prompts: set.prompts.length, set_sha256: set.sha256, model: modelFile,
  model_trained_on: model.trained.set_sha256, artifact_bytes: artifactBytes, hash_bits: model.bits,
  accuracy, ceiling: secondLabelling ?? null, llm_share: llmShare, latency, targets: TARGETS,
}, null, 2)}\n`);
console.log(`written: ${file}`);
