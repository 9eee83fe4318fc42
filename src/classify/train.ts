import { mulberry32 } from '../seeded-random.js';
import { COMPLEXITY_LABELS, complexityRank, raisedComplexity, TASK_LABELS } from './labels.js';
import type { LabelledPrompt } from './dataset.js';
import { DENSE, extractFeatures, FeatureBuffer, GROUPS, maxSparseFeatures } from './features.js';
import { argmax, HEADS, LocalClassifier, softmax, weightRows } from './model.js';

/**
 * Training and evaluation of the local classifier: multinomial logistic regression, one softmax
 * per head over the same features, trained by AdaGrad (per-weight step sizes suit hashed sparse
 * features: rare n-grams keep large steps) with L2, in a seeded order so that a set always
 * trains to the same model.
 */

export interface TrainOptions {
  /** Hash buckets = 2^bits. */
  readonly bits: number;
  readonly epochs: number;
  readonly learningRate: number;
  /** L2 penalty per weight and step. */
  readonly l2: number;
  readonly seed: number;
}

/**
 * Chosen by 4-fold cross-validation on the training split only (never on the held-out one), among
 * 2^15..2^17 buckets, 10..25 epochs and rates 0.02..0.2 (docs/classifiers.md, "Training"): on the
 * 8,565-prompt split, 2^17 buckets agreed 0.7 points more often than 2^16 (2.8 MB of int8 artifact).
 */
export const DEFAULT_TRAIN_OPTIONS: TrainOptions = { bits: 17, epochs: 20, learningRate: 0.05, l2: 1e-6, seed: 1 };

/** One prompt's features, extracted once: a copy of the buffer's used part. */
interface Encoded {
  readonly buckets: Int32Array;
  readonly groupEnd: Int32Array;
  readonly dense: Float64Array;
  readonly complexity: number;
  readonly task: number;
}

function encode(prompts: readonly LabelledPrompt[], bits: number): Encoded[] {
  const buffer = new FeatureBuffer(1);
  return prompts.map((p) => {
    const needed = maxSparseFeatures(p.input.text.length);
    const b = buffer.buckets.length >= needed ? buffer : new FeatureBuffer(needed);
    extractFeatures(p.input, bits, b);
    const end = b.groupEnd[GROUPS - 1]!;
    return {
      buckets: b.buckets.slice(0, end),
      groupEnd: b.groupEnd.slice(),
      dense: b.dense.slice(),
      complexity: COMPLEXITY_LABELS.indexOf(p.complexity),
      task: TASK_LABELS.indexOf(p.task),
    };
  });
}

export function train(prompts: readonly LabelledPrompt[], options: TrainOptions = DEFAULT_TRAIN_OPTIONS): LocalClassifier {
  const { bits, epochs, learningRate, l2 } = options;
  const rows = weightRows(bits);
  const w = new Float64Array(rows * HEADS);
  const g2 = new Float64Array(rows * HEADS);
  const data = encode(prompts, bits);
  const order = data.map((_, i) => i);
  const next = mulberry32(options.seed);
  const scores = new Float64Array(HEADS);
  const grad = new Float64Array(HEADS);
  const groupSum = new Float64Array(HEADS);
  const scale = new Float64Array(GROUPS);
  const denseRow = (1 << bits) * HEADS;
  const biasRow = ((1 << bits) + DENSE) * HEADS;
  const C = COMPLEXITY_LABELS.length;

  const step = (row: number, x: number): void => {
    for (let j = 0; j < HEADS; j++) {
      const i = row + j;
      const g = grad[j]! * x + l2 * w[i]!;
      if (g === 0) continue;
      g2[i]! += g * g;
      w[i]! -= (learningRate * g) / (Math.sqrt(g2[i]!) + 1e-8);
    }
  };

  for (let epoch = 0; epoch < epochs; epoch++) {
    for (let i = order.length - 1; i > 0; i--) {
      const j = Math.floor(next() * (i + 1));
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    for (const index of order) {
      const ex = data[index]!;
      // Forward: the same sums as LocalClassifier.scores.
      for (let j = 0; j < HEADS; j++) scores[j] = w[biasRow + j]!;
      let start = 0;
      for (let g = 0; g < GROUPS; g++) {
        const end = ex.groupEnd[g]!;
        scale[g] = end > start ? 1 / Math.sqrt(end - start) : 0;
        groupSum.fill(0);
        for (let k = start; k < end; k++) {
          const row = ex.buckets[k]! * HEADS;
          for (let j = 0; j < HEADS; j++) groupSum[j]! += w[row + j]!;
        }
        for (let j = 0; j < HEADS; j++) scores[j]! += groupSum[j]! * scale[g]!;
        start = end;
      }
      for (let d = 0; d < DENSE; d++) {
        const x = ex.dense[d]!;
        if (x !== 0) for (let j = 0; j < HEADS; j++) scores[j]! += x * w[denseRow + d * HEADS + j]!;
      }
      softmax(scores, 0, C);
      softmax(scores, C, HEADS);
      // Cross-entropy gradient of each head: p - y.
      for (let j = 0; j < HEADS; j++) grad[j] = scores[j]!;
      grad[ex.complexity]! -= 1;
      grad[C + ex.task]! -= 1;
      // Backward.
      step(biasRow, 1);
      start = 0;
      for (let g = 0; g < GROUPS; g++) {
        const end = ex.groupEnd[g]!;
        for (let k = start; k < end; k++) step(ex.buckets[k]! * HEADS, scale[g]!);
        start = end;
      }
      for (let d = 0; d < DENSE; d++) {
        const x = ex.dense[d]!;
        if (x !== 0) step(denseRow + d * HEADS, x);
      }
    }
  }
  return new LocalClassifier(bits, Float32Array.from(w), {
    examples: prompts.length, set_sha256: '', epochs, l2, learning_rate: learningRate, seed: options.seed,
  });
}

export interface Evaluation {
  readonly prompts: number;
  readonly raiseBelowConfidence: number;
  /** Share of prompts whose complexity verdict equals the label. */
  readonly complexityAgreement: number;
  /** Share given a lower tier than their label: the requests a cheaper model may fail. */
  readonly underRouting: number;
  /** Share given a higher tier than their label: money spent for nothing. */
  readonly overRouting: number;
  readonly taskAgreement: number;
  /** confusion[label][verdict], in COMPLEXITY_LABELS order. */
  readonly complexityConfusion: number[][];
  /** confusion[label][verdict], in TASK_LABELS order. */
  readonly taskConfusion: number[][];
  /** Complexity agreement per `lang` and per tag. */
  readonly byGroup: Record<string, { prompts: number; complexityAgreement: number; underRouting: number; taskAgreement: number }>;
}

/** Verdicts of a classifier on a set (the probabilities are the model's own: no network method here). */
export function evaluate(classifier: LocalClassifier, prompts: readonly LabelledPrompt[], raiseBelowConfidence = 0): Evaluation {
  const C = COMPLEXITY_LABELS.length;
  const probs = new Float64Array(HEADS);
  const cc = COMPLEXITY_LABELS.map(() => COMPLEXITY_LABELS.map(() => 0));
  const tc = TASK_LABELS.map(() => TASK_LABELS.map(() => 0));
  let agree = 0;
  let under = 0;
  let over = 0;
  let taskAgree = 0;
  const groups = new Map<string, { prompts: number; agree: number; under: number; task: number }>();
  for (const p of prompts) {
    classifier.probabilities(p.input, probs);
    const c = argmax(probs, 0, C);
    const verdict = raisedComplexity({ complexity: COMPLEXITY_LABELS[c]!, confidence: probs[c]! }, raiseBelowConfidence);
    const t = argmax(probs, C, HEADS) - C;
    const label = complexityRank(p.complexity);
    const given = complexityRank(verdict);
    cc[label]![given]!++;
    tc[TASK_LABELS.indexOf(p.task)]![t]!++;
    const ok = given === label;
    const low = given < label;
    if (ok) agree++;
    if (low) under++;
    if (given > label) over++;
    if (TASK_LABELS[t] === p.task) taskAgree++;
    for (const key of [`lang:${p.lang ?? '?'}`, ...p.tags.map((tag) => `tag:${tag}`)]) {
      const g = groups.get(key) ?? { prompts: 0, agree: 0, under: 0, task: 0 };
      g.prompts++;
      if (ok) g.agree++;
      if (low) g.under++;
      if (TASK_LABELS[t] === p.task) g.task++;
      groups.set(key, g);
    }
  }
  const n = prompts.length;
  const byGroup: Evaluation['byGroup'] = {};
  for (const [key, g] of [...groups].sort(([a], [b]) => a.localeCompare(b))) {
    byGroup[key] = { prompts: g.prompts, complexityAgreement: g.agree / g.prompts, underRouting: g.under / g.prompts, taskAgreement: g.task / g.prompts };
  }
  return {
    prompts: n,
    raiseBelowConfidence,
    complexityAgreement: agree / n,
    underRouting: under / n,
    overRouting: over / n,
    taskAgreement: taskAgree / n,
    complexityConfusion: cc,
    taskConfusion: tc,
    byGroup,
  };
}
