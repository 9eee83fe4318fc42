import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomically } from '../atomic-file.js';
import type { EmbeddingSettings } from './config.js';
import { COMPLEXITY_LABELS, TASK_LABELS, type Classification } from './labels.js';
import { AnswerCache } from './lru.js';
import { answerCost, postJson, type ClassifierOutcome, type RemoteDeps, type RemoteVerdict } from './remote.js';

/**
 * `method: embedding`: the k labelled examples nearest to the window of the last user turn vote.
 * The examples are embedded once (through the upstream's POST /embeddings), their vectors cached in
 * DATA_DIR and held in memory; each request embeds its window (cached) and scans the examples.
 */

/** Inputs per /embeddings call while embedding the examples: a bounded request body, and few calls. */
export const EXAMPLES_BATCH = 128;
/** One batch of examples may take this long (ms): off the request path, which waits at most its own timeout. */
export const EXAMPLES_BATCH_TIMEOUT_MS = 30_000;
/** A request waits this long (ms) for the examples and then for its own embedding, each: the llm method's default timeout. */
export const EMBEDDING_TIMEOUT_MS = 1500;
/** Windows' vectors kept: at 1,536 dimensions, about 6 MB. */
export const EMBEDDING_CACHE_ENTRIES = 1000;
/** Largest vector accepted from the upstream (text-embedding-3-large has 3,072). */
export const MAX_DIMENSIONS = 8192;

/** The cache file of `settings`' vectors: named by SHA-256 of the model and the examples file's bytes. */
export function vectorsFile(dataDir: string, settings: Pick<EmbeddingSettings, 'model' | 'examplesBytes'>): string {
  const key = createHash('sha256').update(settings.model).update('\0').update(settings.examplesBytes).digest('hex');
  return join(dataDir, `embeddings-${key}.f32`);
}

/** `v` scaled to length 1 (a zero vector stays zero): cosine similarity is then a dot product. */
function normalised(v: Float32Array): Float32Array {
  let sum = 0;
  for (let i = 0; i < v.length; i++) sum += v[i]! * v[i]!;
  const norm = Math.sqrt(sum);
  if (norm > 0) for (let i = 0; i < v.length; i++) v[i]! /= norm;
  return v;
}

/** The vectors of an /embeddings answer, in input order, or undefined when it is not `count` vectors of one size. */
export function vectorsOf(json: unknown, count: number): Float32Array[] | undefined {
  const data = (json as { data?: unknown } | null)?.data;
  if (!Array.isArray(data) || data.length !== count) return undefined;
  const vectors: Float32Array[] = new Array(count);
  let dimensions = -1;
  for (const item of data) {
    const index = (item as { index?: unknown } | null)?.index;
    const embedding = (item as { embedding?: unknown } | null)?.embedding;
    if (typeof index !== 'number' || !Number.isInteger(index) || index < 0 || index >= count || vectors[index] !== undefined) return undefined;
    if (!Array.isArray(embedding) || embedding.length === 0 || embedding.length > MAX_DIMENSIONS) return undefined;
    if (dimensions !== -1 && embedding.length !== dimensions) return undefined;
    dimensions = embedding.length;
    if (!embedding.every((x) => typeof x === 'number' && Number.isFinite(x))) return undefined;
    vectors[index] = normalised(Float32Array.from(embedding as number[]));
  }
  return vectors;
}

/** Vectors read back from the cache file; undefined when it is absent or not `count` vectors (a corrupt file is recomputed). */
async function readVectors(file: string, count: number): Promise<Float32Array[] | undefined> {
  let bytes: Buffer;
  try {
    const handle = await open(file, 'r');
    try {
      const stat = await handle.stat();
      if (!stat.isFile() || stat.size > count * MAX_DIMENSIONS * 4) return undefined;
      bytes = await handle.readFile();
    } finally {
      await handle.close();
    }
  } catch {
    return undefined;
  }
  const dimensions = bytes.length / 4 / count;
  if (!Number.isInteger(dimensions) || dimensions < 1 || dimensions > MAX_DIMENSIONS) return undefined;
  const vectors: Float32Array[] = [];
  for (let i = 0; i < count; i++) {
    const v = new Float32Array(dimensions);
    for (let d = 0; d < dimensions; d++) v[d] = bytes.readFloatLE((i * dimensions + d) * 4);
    if (!v.every(Number.isFinite)) return undefined;
    vectors.push(normalised(v));
  }
  return vectors;
}

function vectorsBytes(vectors: readonly Float32Array[]): Buffer {
  const dimensions = vectors[0]!.length;
  const bytes = Buffer.alloc(vectors.length * dimensions * 4);
  vectors.forEach((v, i) => v.forEach((x, d) => bytes.writeFloatLE(x, (i * dimensions + d) * 4)));
  return bytes;
}

/** What the examples' embedding tells whoever waits for it. */
interface Examples {
  readonly vectors: readonly Float32Array[] | undefined;
}

interface Embedded {
  readonly vector: Float32Array | undefined;
  readonly outcome: ClassifierOutcome;
  readonly costUsd: number | undefined;
}

export class EmbeddingClassifier {
  private examples: Promise<Examples> | undefined;
  private readonly cache = new AnswerCache<Embedded>(EMBEDDING_CACHE_ENTRIES);

  constructor(
    private readonly settings: EmbeddingSettings,
    private readonly dataDir: string,
    private readonly deps: RemoteDeps,
    /** A failure to write the cache file (the vectors are still used): the app's log. */
    private readonly onCacheWriteError: (err: unknown) => void = () => {},
  ) {}

  /**
   * The examples' vectors: from the DATA_DIR cache file, else embedded now (the calls paid with
   * `authorization`) and written there. Concurrent first requests share one embedding; after a
   * failure the next request tries again.
   */
  vectors(authorization: string | undefined): Promise<Examples> {
    this.examples ??= this.load(authorization).then((examples) => {
      if (examples.vectors === undefined) this.examples = undefined;
      return examples;
    });
    return this.examples;
  }

  private async load(authorization: string | undefined): Promise<Examples> {
    const { examples, model } = this.settings;
    const file = vectorsFile(this.dataDir, this.settings);
    const cached = await readVectors(file, examples.length);
    if (cached !== undefined) return { vectors: cached };
    const vectors: Float32Array[] = [];
    for (let from = 0; from < examples.length; from += EXAMPLES_BATCH) {
      const input = examples.slice(from, from + EXAMPLES_BATCH).map((e) => e.input.text);
      const started = this.deps.now?.() ?? performance.now();
      const result = await postJson(this.deps, '/embeddings', { model, input }, authorization, EXAMPLES_BATCH_TIMEOUT_MS);
      const batch = result.ok ? vectorsOf(result.json, input.length) : undefined;
      const costUsd = result.ok ? answerCost(result.json, model, this.deps.catalog()) : undefined;
      const outcome = result.ok ? (batch === undefined ? 'unparseable' : 'ok') : result.outcome;
      this.deps.observe?.('embedding', outcome, ((this.deps.now?.() ?? performance.now()) - started) / 1000, costUsd);
      if (batch === undefined || (vectors.length > 0 && batch[0]!.length !== vectors[0]!.length)) return { vectors: undefined };
      vectors.push(...batch);
    }
    try {
      await writeFileAtomically(file, vectorsBytes(vectors));
    } catch (err) {
      this.onCacheWriteError(err);
    }
    return { vectors };
  }

  /** The examples' vote on `window`, or `local` (method 'local') when the embeddings cannot be had in time. */
  async classify(window: string, local: Classification, authorization: string | undefined): Promise<RemoteVerdict> {
    const started = this.deps.now?.() ?? performance.now();
    const seconds = (): number => ((this.deps.now?.() ?? performance.now()) - started) / 1000;
    const examples = await withTimeout(this.vectors(authorization), EMBEDDING_TIMEOUT_MS);
    if (examples?.vectors === undefined) {
      this.deps.observe?.('embedding', examples === undefined ? 'timeout' : 'error', seconds(), undefined);
      return { classification: local, outcome: examples === undefined ? 'timeout' : 'error', costUsd: undefined };
    }
    const key = createHash('sha256').update(this.settings.model).update('\0').update(window).digest('hex');
    const { value: embedded, shared } = await this.cache.answer(key, () => this.embed(window, authorization), (e) => e.vector !== undefined);
    const vector = embedded.vector;
    const usable = vector !== undefined && vector.length === examples.vectors[0]!.length;
    const outcome: ClassifierOutcome = !usable ? (vector === undefined ? embedded.outcome : 'unparseable') : shared ? 'cached' : embedded.outcome;
    const costUsd = shared ? undefined : embedded.costUsd;
    this.deps.observe?.('embedding', outcome, seconds(), costUsd);
    return { classification: usable ? this.vote(vector, examples.vectors) : local, outcome, costUsd };
  }

  private async embed(window: string, authorization: string | undefined): Promise<Embedded> {
    const { model } = this.settings;
    const result = await postJson(this.deps, '/embeddings', { model, input: [window] }, authorization, EMBEDDING_TIMEOUT_MS);
    if (!result.ok) return { vector: undefined, outcome: result.outcome, costUsd: undefined };
    const vector = vectorsOf(result.json, 1)?.[0];
    return { vector, outcome: vector === undefined ? 'unparseable' : 'ok', costUsd: answerCost(result.json, model, this.deps.catalog()) };
  }

  /**
   * The k nearest examples by cosine similarity vote, each with weight (1 + cosine) / 2 (0 to 1, so
   * an opposite example still counts a little and a tie of k opposite ones is still decided):
   * complexity and task are the heaviest labels, confidence the complexity winner's share of the votes.
   */
  vote(vector: Float32Array, vectors: readonly Float32Array[]): Classification {
    const k = Math.min(this.settings.k, vectors.length);
    const nearest: { index: number; similarity: number }[] = [];
    for (let i = 0; i < vectors.length; i++) {
      const v = vectors[i]!;
      let similarity = 0;
      for (let d = 0; d < v.length; d++) similarity += v[d]! * vector[d]!;
      if (nearest.length < k) nearest.push({ index: i, similarity });
      else if (similarity > nearest[k - 1]!.similarity) nearest[k - 1] = { index: i, similarity };
      else continue;
      nearest.sort((a, b) => b.similarity - a.similarity);
    }
    const complexity = new Float64Array(COMPLEXITY_LABELS.length);
    const task = new Float64Array(TASK_LABELS.length);
    let total = 0;
    for (const { index, similarity } of nearest) {
      const example = this.settings.examples[index]!;
      const weight = (1 + similarity) / 2;
      complexity[COMPLEXITY_LABELS.indexOf(example.complexity)]! += weight;
      task[TASK_LABELS.indexOf(example.task)]! += weight;
      total += weight;
    }
    const c = heaviest(complexity);
    return { complexity: COMPLEXITY_LABELS[c]!, task: TASK_LABELS[heaviest(task)]!, confidence: total > 0 ? complexity[c]! / total : 0, method: 'embedding' };
  }
}

/** Index of the largest weight; the first (the cheaper tier, the earlier task) on a tie. */
function heaviest(weights: Float64Array): number {
  let best = 0;
  for (let i = 1; i < weights.length; i++) if (weights[i]! > weights[best]!) best = i;
  return best;
}

/** `promise`'s value, or undefined once `ms` have passed (the promise goes on, for the next request). */
function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), ms);
    timer.unref();
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
