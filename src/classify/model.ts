import { fileURLToPath } from 'node:url';
import { FileReadError, readRegularFileSync } from '../bounded-file.js';
import { COMPLEXITY_LABELS, TASK_LABELS, type Classification, type Complexity, type Task } from './labels.js';
import { DENSE, DENSE_FEATURES, extractFeatures, FeatureBuffer, GROUPS, maxSparseFeatures } from './features.js';
import { WINDOW_HEAD_CHARS, WINDOW_TAIL_CHARS, type ClassifierInput } from './window.js';

/**
 * The local classifier: two softmax heads (complexity, task) over one hashed feature space, as a
 * versioned JSON artifact. Inference is a sum of weight rows over the window's feature buckets:
 * no native code, no network, and no allocation per call but the verdict object.
 */

export const MODEL_FORMAT = 'signalbox-classifier';
export const MODEL_VERSION = 1;
/** The feature extractor the weights were trained for (src/classify/features.ts): a model trained for another is refused. */
export const FEATURES_VERSION = 'hashed-v1';
/** The model shipped in the repository, trained on datasets/classifier/train.jsonl (`npm run classifier:train`). */
export const DEFAULT_MODEL_FILE = fileURLToPath(new URL('../../../models/classifier-v1.json', import.meta.url));

/** Outputs per feature row: the complexity scores, then the task scores. */
export const HEADS = COMPLEXITY_LABELS.length + TASK_LABELS.length;
if (HEADS !== 16) throw new Error('addRows is written out for 16 outputs per row');
/** Hash sizes a model may use: 2^10 buckets is too few to learn anything, 2^20 rows of 16 weights is 32 MB. */
export const MIN_HASH_BITS = 10;
export const MAX_HASH_BITS = 20;

/** Where a model came from and how it was trained, kept in the artifact for reports. */
export interface TrainingInfo {
  readonly examples: number;
  readonly set_sha256: string;
  readonly epochs: number;
  readonly l2: number;
  readonly learning_rate: number;
  readonly seed: number;
}

export interface ModelArtifact {
  readonly format: typeof MODEL_FORMAT;
  readonly version: typeof MODEL_VERSION;
  readonly features: typeof FEATURES_VERSION;
  readonly hash_bits: number;
  readonly dense_features: readonly string[];
  readonly complexity: readonly string[];
  readonly task: readonly string[];
  readonly window_chars: number;
  readonly trained: TrainingInfo;
  /** weights[i] = int8[i] * scale. */
  readonly scale: number;
  /** int8, (2^hash_bits + dense + 1) rows of HEADS, base64. */
  readonly weights: string;
}

/** Rows of a model's weight matrix: hashed buckets, then dense features, then the bias. */
export function weightRows(bits: number): number {
  return (1 << bits) + DENSE + 1;
}

/**
 * out += scale * (the sum of the weight rows of buckets[start..end)). The hot loop of inference:
 * sixteen running sums in locals rather than an array, which V8 keeps in registers (a loop over
 * an accumulator array measured about four times slower). HEADS is 16: written out, not looped.
 */
function addRows(w: Float32Array, buckets: Int32Array, start: number, end: number, scale: number, out: Float64Array): void {
  let s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0;
  let s8 = 0, s9 = 0, s10 = 0, s11 = 0, s12 = 0, s13 = 0, s14 = 0, s15 = 0;
  for (let i = start; i < end; i++) {
    const r = buckets[i]! << 4;
    s0 += w[r]!; s1 += w[r + 1]!; s2 += w[r + 2]!; s3 += w[r + 3]!;
    s4 += w[r + 4]!; s5 += w[r + 5]!; s6 += w[r + 6]!; s7 += w[r + 7]!;
    s8 += w[r + 8]!; s9 += w[r + 9]!; s10 += w[r + 10]!; s11 += w[r + 11]!;
    s12 += w[r + 12]!; s13 += w[r + 13]!; s14 += w[r + 14]!; s15 += w[r + 15]!;
  }
  out[0]! += s0 * scale; out[1]! += s1 * scale; out[2]! += s2 * scale; out[3]! += s3 * scale;
  out[4]! += s4 * scale; out[5]! += s5 * scale; out[6]! += s6 * scale; out[7]! += s7 * scale;
  out[8]! += s8 * scale; out[9]! += s9 * scale; out[10]! += s10 * scale; out[11]! += s11 * scale;
  out[12]! += s12 * scale; out[13]! += s13 * scale; out[14]! += s14 * scale; out[15]! += s15 * scale;
}

const SCRATCH = new FeatureBuffer(maxSparseFeatures(WINDOW_HEAD_CHARS + WINDOW_TAIL_CHARS + 1));
const SCORES = new Float64Array(HEADS);

export class LocalClassifier {
  readonly bits: number;
  /** (2^bits + DENSE + 1) x HEADS, row-major: one cache line of 16 floats per bucket. */
  readonly weights: Float32Array;
  readonly trained: TrainingInfo;

  constructor(bits: number, weights: Float32Array, trained: TrainingInfo) {
    if (weights.length !== weightRows(bits) * HEADS) throw new Error(`weights: expected ${weightRows(bits) * HEADS} values, got ${weights.length}`);
    this.bits = bits;
    this.weights = weights;
    this.trained = trained;
  }

  /** Raw scores of both heads into `out` (HEADS values), from a filled feature buffer. */
  scores(features: FeatureBuffer, out: Float64Array): void {
    const w = this.weights;
    const biasRow = ((1 << this.bits) + DENSE) * HEADS;
    for (let j = 0; j < HEADS; j++) out[j] = w[biasRow + j]!;
    let start = 0;
    for (let g = 0; g < GROUPS; g++) {
      const end = features.groupEnd[g]!;
      if (end > start) addRows(w, features.buckets, start, end, 1 / Math.sqrt(end - start), out);
      start = end;
    }
    const dense = features.dense;
    const denseRow = (1 << this.bits) * HEADS;
    for (let d = 0; d < DENSE; d++) {
      const x = dense[d]!;
      if (x === 0) continue;
      const row = denseRow + d * HEADS;
      for (let j = 0; j < HEADS; j++) out[j]! += x * w[row + j]!;
    }
  }

  /**
   * The probabilities of each label, complexity then task, into `out` (HEADS values): a softmax
   * per head. For evaluation and the hybrid's threshold; `classify` is what the rules call.
   */
  probabilities(input: ClassifierInput, out: Float64Array): void {
    extractFeatures(input, this.bits, SCRATCH);
    this.scores(SCRATCH, out);
    softmax(out, 0, COMPLEXITY_LABELS.length);
    softmax(out, COMPLEXITY_LABELS.length, HEADS);
  }

  classify(input: ClassifierInput): Classification {
    this.probabilities(input, SCORES);
    const c = argmax(SCORES, 0, COMPLEXITY_LABELS.length);
    const t = argmax(SCORES, COMPLEXITY_LABELS.length, HEADS);
    return {
      complexity: COMPLEXITY_LABELS[c] as Complexity,
      task: TASK_LABELS[t - COMPLEXITY_LABELS.length] as Task,
      confidence: SCORES[c]!,
      method: 'local',
    };
  }

  /**
   * The versioned artifact: weights quantised to int8 with one scale. Measured on the held-out
   * split: the same agreement as float32 (within 0.5 points either way), at a quarter of the size.
   */
  toArtifact(): ModelArtifact {
    let max = 0;
    for (const v of this.weights) max = Math.max(max, Math.abs(v));
    const scale = max === 0 ? 1 : max / 127;
    const q = new Int8Array(this.weights.length);
    for (let i = 0; i < q.length; i++) q[i] = Math.round(this.weights[i]! / scale);
    return {
      format: MODEL_FORMAT,
      version: MODEL_VERSION,
      features: FEATURES_VERSION,
      hash_bits: this.bits,
      dense_features: [...DENSE_FEATURES],
      complexity: [...COMPLEXITY_LABELS],
      task: [...TASK_LABELS],
      window_chars: WINDOW_HEAD_CHARS + WINDOW_TAIL_CHARS,
      trained: this.trained,
      scale,
      weights: Buffer.from(q.buffer, q.byteOffset, q.byteLength).toString('base64'),
    };
  }
}

/** v[from..to) replaced by its softmax, in place. */
export function softmax(v: Float64Array, from: number, to: number): void {
  let max = -Infinity;
  for (let i = from; i < to; i++) max = Math.max(max, v[i]!);
  let sum = 0;
  for (let i = from; i < to; i++) {
    const e = Math.exp(v[i]! - max);
    v[i] = e;
    sum += e;
  }
  for (let i = from; i < to; i++) v[i]! /= sum;
}

export function argmax(v: ArrayLike<number>, from: number, to: number): number {
  let best = from;
  for (let i = from + 1; i < to; i++) if (v[i]! > v[best]!) best = i;
  return best;
}

function sameList(a: unknown, b: readonly string[]): boolean {
  return Array.isArray(a) && a.length === b.length && a.every((x, i) => x === b[i]);
}

/** A parsed artifact as a classifier, or the reasons it is not one (each naming the field). */
export function classifierFromArtifact(value: unknown): LocalClassifier | string[] {
  const problems: string[] = [];
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return ['not a JSON object'];
  const a = value as Record<string, unknown>;
  if (a.format !== MODEL_FORMAT) problems.push(`format: expected "${MODEL_FORMAT}"`);
  if (a.version !== MODEL_VERSION) problems.push(`version: expected ${MODEL_VERSION} (this Signalbox reads version ${MODEL_VERSION} models)`);
  if (a.features !== FEATURES_VERSION) problems.push(`features: expected "${FEATURES_VERSION}" (the model was trained for another feature extractor: retrain it)`);
  const bits = a.hash_bits;
  if (typeof bits !== 'number' || !Number.isInteger(bits) || bits < MIN_HASH_BITS || bits > MAX_HASH_BITS) problems.push(`hash_bits: expected an integer from ${MIN_HASH_BITS} to ${MAX_HASH_BITS}`);
  if (!sameList(a.dense_features, DENSE_FEATURES)) problems.push('dense_features: not the features this Signalbox computes: retrain the model');
  if (!sameList(a.complexity, COMPLEXITY_LABELS)) problems.push(`complexity: expected the labels ${COMPLEXITY_LABELS.join(', ')}`);
  if (!sameList(a.task, TASK_LABELS)) problems.push(`task: expected the labels ${TASK_LABELS.join(', ')}`);
  if (typeof a.scale !== 'number' || !Number.isFinite(a.scale) || a.scale <= 0) problems.push('scale: expected a positive number');
  if (typeof a.weights !== 'string') problems.push('weights: expected base64 text');
  const trained = a.trained;
  if (trained === null || typeof trained !== 'object' || Array.isArray(trained)) problems.push('trained: expected an object');
  if (problems.length > 0) return problems;
  const bytes = Buffer.from(a.weights as string, 'base64');
  const expected = weightRows(bits as number) * HEADS;
  if (bytes.length !== expected) return [`weights: expected ${expected} int8 values for hash_bits ${bits}, got ${bytes.length}`];
  const weights = new Float32Array(expected);
  const scale = a.scale as number;
  for (let i = 0; i < expected; i++) weights[i] = bytes.readInt8(i) * scale;
  return new LocalClassifier(bits as number, weights, trained as TrainingInfo);
}

/**
 * Largest model file read: a model of MAX_HASH_BITS (2^20 rows of 16 int8 weights) is 22 MB of
 * base64; a `model_file` pointing at something larger (or at /dev/zero) is refused, not read.
 */
export const MAX_MODEL_FILE_BYTES = 24 * 1024 * 1024;

/** Reads a model file; the reasons it cannot be used, each prefixed by the file name. */
export function readClassifierFile(file: string): LocalClassifier | string[] {
  let text: string;
  try {
    text = readRegularFileSync(file, 'classifier model', MAX_MODEL_FILE_BYTES).toString('utf8');
  } catch (err) {
    if (err instanceof FileReadError) return [err.message];
    throw err;
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return [`${file}: not JSON (${(err as Error).message})`];
  }
  const model = classifierFromArtifact(value);
  return Array.isArray(model) ? model.map((p) => `${file}: ${p}`) : model;
}

let shipped: LocalClassifier | undefined;

/**
 * The model that ships with Signalbox, read once per process, the first time a rules file reads
 * `classify.*` (about 10 ms: nothing is paid at startup by rules that never classify). A missing
 * or broken shipped model is a broken installation: it throws.
 */
export function shippedClassifier(): LocalClassifier {
  if (shipped !== undefined) return shipped;
  const model = readClassifierFile(DEFAULT_MODEL_FILE);
  if (Array.isArray(model)) throw new Error(`the shipped classifier model is unusable: ${model.join('; ')}`);
  return (shipped = model);
}
