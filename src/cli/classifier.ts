import { writeFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { DatasetError, readLabelledSet } from '../classify/dataset.js';
import { COMPLEXITY_LABELS, TASK_LABELS } from '../classify/labels.js';
import { LocalClassifier, MAX_HASH_BITS, MIN_HASH_BITS, readClassifierFile, shippedClassifier } from '../classify/model.js';
import { DEFAULT_TRAIN_OPTIONS, evaluate, train, type Evaluation } from '../classify/train.js';
import type { CliIo } from './commands.js';

/**
 * `signalbox classifier train|eval`: retrain the local classifier on a labelled set (JSON Lines,
 * datasets/classifier/LABELLING.md) and measure a model on one (docs/classifiers.md). Exit codes
 * as the other commands: 0 ok, 1 invalid set or model file, 2 wrong usage.
 */

export const CLASSIFIER_USAGE = `usage:
  signalbox classifier train --set data.jsonl --out model.json [--bits N] [--epochs N] [--seed N]
                                                    train a local classifier model on a labelled set
  signalbox classifier eval --set test.jsonl [--model model.json] [--raise-below-confidence X] [--json]
                                                    agreement, under-routing and confusion matrices of a model
                                                    (default: the shipped one) on a labelled set
  set lines: datasets/classifier/LABELLING.md ({"text"|"messages", "complexity", "task", ...})
`;

/** More epochs than this is a typo, not a training plan (each epoch is a pass over the whole set). */
const MAX_EPOCHS = 1000;

class UsageError extends Error {}

type FlagKind = 'value' | 'switch';

/** `--name value` and `--name` flags, each at most once; anything else is a usage error. */
function parseFlags(args: readonly string[], spec: Record<string, FlagKind>): Map<string, string> {
  const flags = new Map<string, string>();
  for (let i = 0; i < args.length; i++) {
    const name = args[i]!;
    const kind = spec[name];
    if (kind === undefined) throw new UsageError(`unknown argument "${name}"`);
    if (flags.has(name)) throw new UsageError(`${name} given twice`);
    if (kind === 'switch') {
      flags.set(name, '');
      continue;
    }
    const value = args[++i];
    if (value === undefined) throw new UsageError(`${name} needs a value`);
    flags.set(name, value);
  }
  return flags;
}

function required(flags: Map<string, string>, name: string): string {
  const value = flags.get(name);
  if (value === undefined) throw new UsageError(`${name} is required`);
  return value;
}

function integerFlag(flags: Map<string, string>, name: string, fallback: number, min: number, max: number): number {
  const text = flags.get(name);
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < min || n > max) throw new UsageError(`${name}: expected an integer from ${min} to ${max}, got "${text}"`);
  return n;
}

export function classifierCommand(args: readonly string[], io: CliIo): number {
  const [sub, ...rest] = args;
  try {
    switch (sub) {
      case 'train':
        return trainCommand(rest, io);
      case 'eval':
        return evalCommand(rest, io);
      default:
        throw new UsageError(sub === undefined ? 'a subcommand is required' : `unknown subcommand "${sub}"`);
    }
  } catch (err) {
    if (err instanceof UsageError) {
      io.err(`signalbox classifier: ${err.message}\n${CLASSIFIER_USAGE}`);
      return 2;
    }
    if (err instanceof DatasetError) {
      // The message lists the problems, each `file:line: field: what is wrong`.
      io.err(err.message);
      return 1;
    }
    throw err;
  }
}

function trainCommand(args: readonly string[], io: CliIo): number {
  const flags = parseFlags(args, { '--set': 'value', '--out': 'value', '--bits': 'value', '--epochs': 'value', '--seed': 'value' });
  const setFile = required(flags, '--set');
  const outFile = required(flags, '--out');
  const options = {
    ...DEFAULT_TRAIN_OPTIONS,
    bits: integerFlag(flags, '--bits', DEFAULT_TRAIN_OPTIONS.bits, MIN_HASH_BITS, MAX_HASH_BITS),
    epochs: integerFlag(flags, '--epochs', DEFAULT_TRAIN_OPTIONS.epochs, 1, MAX_EPOCHS),
    seed: integerFlag(flags, '--seed', DEFAULT_TRAIN_OPTIONS.seed, 0, 0xffffffff),
  };
  const set = readLabelledSet(setFile);
  const started = performance.now();
  const trained = train(set.prompts, options);
  // The artifact names the set it was trained on; train() itself does not know the file.
  const model = new LocalClassifier(trained.bits, trained.weights, { ...trained.trained, set_sha256: set.sha256 });
  const seconds = (performance.now() - started) / 1000;
  // No time or date in the file: the same set and options give the same bytes.
  const text = `${JSON.stringify(model.toArtifact())}\n`;
  try {
    writeFileSync(outFile, text);
  } catch (err) {
    io.err(`${outFile}: cannot write the model (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
    return 1;
  }
  io.out(`trained: ${set.prompts.length} examples from ${setFile} (sha256 ${set.sha256.slice(0, 12)}), ${options.epochs} epochs, 2^${options.bits} buckets, seed ${options.seed}`);
  io.out(`time: ${seconds.toFixed(1)} s`);
  io.out(`written: ${outFile} (${Buffer.byteLength(text)} bytes)`);
  return 0;
}

function evalCommand(args: readonly string[], io: CliIo): number {
  const flags = parseFlags(args, { '--set': 'value', '--model': 'value', '--raise-below-confidence': 'value', '--json': 'switch' });
  const setFile = required(flags, '--set');
  const raiseText = flags.get('--raise-below-confidence');
  const raise = raiseText === undefined ? 0 : Number(raiseText);
  if (raiseText !== undefined && (raiseText.trim() === '' || !(raise >= 0 && raise <= 1))) {
    throw new UsageError(`--raise-below-confidence: expected a number from 0 to 1, got "${raiseText}"`);
  }
  const modelFile = flags.get('--model');
  let model: LocalClassifier;
  if (modelFile === undefined) {
    try {
      model = shippedClassifier();
    } catch (err) {
      io.err((err as Error).message);
      return 1;
    }
  } else {
    const read = readClassifierFile(modelFile);
    if (Array.isArray(read)) {
      for (const p of read) io.err(p);
      return 1;
    }
    model = read;
  }
  const set = readLabelledSet(setFile);
  const result = evaluate(model, set.prompts, raise);
  if (flags.has('--json')) {
    io.out(JSON.stringify(result, null, 2));
    return 0;
  }
  for (const line of formatEvaluation(result, modelFile ?? 'shipped model', setFile)) io.out(line);
  return 0;
}

const pct = (x: number): string => `${(x * 100).toFixed(1)}%`;

/** A confusion matrix as a Markdown table: rows are labels, columns verdicts. */
function confusionTable(labels: readonly string[], matrix: readonly (readonly number[])[]): string[] {
  return [
    `| label \\ verdict | ${labels.join(' | ')} |`,
    `| --- |${labels.map(() => ' ---: |').join('')}`,
    ...matrix.map((row, i) => `| ${labels[i]} | ${row.join(' | ')} |`),
  ];
}

/** The evaluation as text: the figures, both confusion matrices, and the figures per language and tag. */
export function formatEvaluation(e: Evaluation, model: string, set: string): string[] {
  return [
    `model: ${model}`,
    `set: ${set}`,
    `raise_below_confidence: ${e.raiseBelowConfidence}`,
    `prompts: ${e.prompts}`,
    `complexity agreement: ${pct(e.complexityAgreement)}`,
    `under-routing: ${pct(e.underRouting)} (verdict below the label)`,
    `over-routing: ${pct(e.overRouting)} (verdict above the label)`,
    `task agreement: ${pct(e.taskAgreement)}`,
    '',
    'complexity confusion (rows: label, columns: verdict)',
    ...confusionTable(COMPLEXITY_LABELS, e.complexityConfusion),
    '',
    'task confusion (rows: label, columns: verdict)',
    ...confusionTable(TASK_LABELS, e.taskConfusion),
    '',
    'per language and tag',
    '| group | prompts | complexity agreement | under-routing | task agreement |',
    '| --- | ---: | ---: | ---: | ---: |',
    ...Object.entries(e.byGroup).map(([key, g]) => `| ${key} | ${g.prompts} | ${pct(g.complexityAgreement)} | ${pct(g.underRouting)} | ${pct(g.taskAgreement)} |`),
  ];
}
