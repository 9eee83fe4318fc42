import { dirname, resolve } from 'node:path';
import { FileReadError, readRegularFileSync } from '../bounded-file.js';
import { DatasetError, readLabelledSet, type LabelledPrompt } from './dataset.js';
import { TASK_LABELS, type ClassifierMethod } from './labels.js';
import { readClassifierFile, shippedClassifier, type LocalClassifier } from './model.js';

/**
 * The rules file's `classifier:` block, compiled once per load. Everything a method needs from
 * disk (a user-trained model, a prompt, labelled examples) is read and checked here, so that a bad
 * file is a load error like any other and the request path never touches the disk.
 */

/** The block as the schema admits it (src/rules/schema.ts). */
export interface ClassifierSpec {
  method?: ClassifierMethod;
  model_file?: string;
  llm?: { model?: string; prompt_file?: string; timeout_ms?: number; cache_entries?: number; max_tokens?: number };
  hybrid?: { min_confidence?: number };
  embedding?: { model?: string; examples_file?: string; k?: number };
}

export interface ClassifierConfig {
  readonly method: ClassifierMethod;
  /**
   * The local model: the user's `model_file`, else the shipped one. A getter, so that rules which
   * never read `classify.*` never load a model (the shipped one is read once per process).
   */
  readonly local: () => LocalClassifier;
  /** Where `model_file` came from, for explain and logs; undefined for the shipped model. */
  readonly modelFile: string | undefined;
  /** `llm:` with its defaults; used by the llm and hybrid methods. */
  readonly llm: LlmSettings;
  /** `hybrid:` with its defaults. */
  readonly hybrid: { readonly minConfidence: number };
  /** `embedding:`, its examples read; undefined unless the method is embedding. */
  readonly embedding: EmbeddingSettings | undefined;
}

export interface LlmSettings {
  readonly model: string;
  /** The classification prompt (the system message): `prompt_file`'s text, else DEFAULT_LLM_PROMPT. */
  readonly prompt: string;
  readonly timeoutMs: number;
  readonly cacheEntries: number;
  readonly maxTokens: number;
}

export interface EmbeddingSettings {
  readonly model: string;
  readonly examplesFile: string;
  /** The file's bytes, hashed with the model to name the vectors' cache file in DATA_DIR. */
  readonly examplesBytes: Buffer;
  readonly examples: readonly LabelledPrompt[];
  readonly k: number;
}

/**
 * The defaults of the `classifier:` block, in one place (docs/classifiers.md lists them).
 * - llm.model: a cheap, fast model that follows a JSON instruction well.
 * - llm.timeout_ms (ms): the whole classification call; a request waits for it before routing, so
 *   past 1.5 s the local verdict is worth more than a better one.
 * - llm.cache_entries (answers): 10,000 verdicts of a few hundred bytes each, about 3 MB.
 * - llm.max_tokens (tokens): the answer is one line of JSON, about 20 tokens; 60 leaves room for
 *   a fenced answer and stops a rambling model early (the caller pays for every token).
 * - hybrid.min_confidence (0-1): 0.7, as the example; the local verdict then decides 57%
 *   of the held-out prompts and the LLM 43% (docs/classifiers.md); 0.5 sends 14% to the LLM.
 * - embedding.model, embedding.k (neighbours): a small embedding model, and the usual k-NN vote.
 */
export const CLASSIFIER_DEFAULTS = Object.freeze({
  llm: Object.freeze({ model: 'openai/gpt-4o-mini', timeoutMs: 1500, cacheEntries: 10_000, maxTokens: 60 }),
  hybrid: Object.freeze({ minConfidence: 0.7 }),
  embedding: Object.freeze({ model: 'openai/text-embedding-3-small', k: 5 }),
});

/** Largest `prompt_file` read: a classification prompt is a page; it is sent with every uncached classification. */
export const MAX_PROMPT_FILE_BYTES = 16 * 1024;
/** Largest `examples_file` read: its examples are embedded (paid) once and held in memory with their vectors. */
export const MAX_EXAMPLES_FILE_BYTES = 8 * 1024 * 1024;
/** Most examples: each is a vector in memory and a distance per classification (a linear scan). */
export const MAX_EXAMPLES = 10_000;

/** The built-in classification prompt: the labels of datasets/classifier/LABELLING.md, and the answer's shape. */
export const DEFAULT_LLM_PROMPT = [
  'You classify a request to an AI assistant so that it can be routed to the cheapest model tier that handles it reliably.',
  'Judge what the model must do next: the user text you are given (the last user turn). Length and words such as "explain" or "analyze" are not difficulty.',
  'complexity, one of:',
  '- simple: greetings, yes/no, one fact or definition, a word or a sentence translated, a trivial lookup in pasted text;',
  '- medium: summarise, extract, fill a template, rewrite or translate a paragraph, a short email, short standard code, a one- or two-step word problem;',
  '- complex: multi-step reasoning, real code (a module, a non-obvious bug, a refactoring), long-form writing, analysis with trade-offs, textbook proofs;',
  '- frontier: research-grade work, competition or research proofs, large constraint problems, designing and building a whole system, autonomous multi-part tasks.',
  `task, one of: ${TASK_LABELS.join(', ')}.`,
  'confidence: how sure you are of complexity, from 0 to 1.',
  'Answer with one line of JSON and nothing else: {"complexity": "...", "task": "...", "confidence": 0.0}',
].join('\n');

export interface ClassifierProblem {
  readonly path: (string | number)[];
  readonly message: string;
}

/** Paths in the block are relative to the rules file, as a team keeps them side by side. */
export function resolveBesideRules(rulesFile: string, path: string): string {
  return resolve(dirname(rulesFile), path);
}

const DEFAULT_LLM: LlmSettings = Object.freeze({ ...CLASSIFIER_DEFAULTS.llm, prompt: DEFAULT_LLM_PROMPT });

export const DEFAULT_CLASSIFIER: ClassifierConfig = Object.freeze({
  method: 'local', local: shippedClassifier, modelFile: undefined, llm: DEFAULT_LLM, hybrid: CLASSIFIER_DEFAULTS.hybrid, embedding: undefined,
});

/** `prompt_file`'s text, or a problem: read at load, bounded, never empty. */
function readPromptFile(file: string, problems: ClassifierProblem[]): string | undefined {
  const path = ['classifier', 'llm', 'prompt_file'];
  try {
    const text = readRegularFileSync(file, 'classification prompt', MAX_PROMPT_FILE_BYTES).toString('utf8').trim();
    if (text === '') problems.push({ path, message: `${file}: empty` });
    return text === '' ? undefined : text;
  } catch (err) {
    if (!(err instanceof FileReadError)) throw err;
    problems.push({ path, message: err.message });
    return undefined;
  }
}

function compileEmbedding(spec: ClassifierSpec['embedding'], rulesFile: string, problems: ClassifierProblem[]): EmbeddingSettings | undefined {
  const model = spec?.model ?? CLASSIFIER_DEFAULTS.embedding.model;
  const k = spec?.k ?? CLASSIFIER_DEFAULTS.embedding.k;
  if (spec?.examples_file === undefined) {
    problems.push({ path: ['classifier', 'embedding'], message: 'method embedding needs embedding.examples_file: labelled examples (JSON Lines, as for `signalbox classifier train`)' });
    return undefined;
  }
  const path = ['classifier', 'embedding', 'examples_file'];
  const examplesFile = resolveBesideRules(rulesFile, spec.examples_file);
  try {
    const set = readLabelledSet(examplesFile, MAX_EXAMPLES_FILE_BYTES);
    if (set.prompts.length > MAX_EXAMPLES) {
      problems.push({ path, message: `${examplesFile}: ${set.prompts.length} examples, at most ${MAX_EXAMPLES}` });
      return undefined;
    }
    return Object.freeze({ model, examplesFile, examplesBytes: set.bytes, examples: set.prompts, k });
  } catch (err) {
    if (!(err instanceof DatasetError)) throw err;
    for (const message of err.problems.slice(0, 20)) problems.push({ path, message });
    return undefined;
  }
}

export function compileClassifier(spec: ClassifierSpec | undefined, rulesFile: string, problems: ClassifierProblem[]): ClassifierConfig {
  if (spec === undefined) return DEFAULT_CLASSIFIER;
  const method = spec.method ?? 'local';
  let local: () => LocalClassifier = shippedClassifier;
  let modelFile: string | undefined;
  if (spec.model_file !== undefined) {
    modelFile = resolveBesideRules(rulesFile, spec.model_file);
    const model = readClassifierFile(modelFile);
    if (Array.isArray(model)) {
      for (const message of model) problems.push({ path: ['classifier', 'model_file'], message });
    } else {
      local = () => model;
    }
  }
  const llmSpec = spec.llm ?? {};
  const promptFile = llmSpec.prompt_file === undefined ? undefined : resolveBesideRules(rulesFile, llmSpec.prompt_file);
  const llm: LlmSettings = Object.freeze({
    model: llmSpec.model ?? DEFAULT_LLM.model,
    prompt: (promptFile === undefined ? undefined : readPromptFile(promptFile, problems)) ?? DEFAULT_LLM_PROMPT,
    timeoutMs: llmSpec.timeout_ms ?? DEFAULT_LLM.timeoutMs,
    cacheEntries: llmSpec.cache_entries ?? DEFAULT_LLM.cacheEntries,
    maxTokens: llmSpec.max_tokens ?? DEFAULT_LLM.maxTokens,
  });
  const hybrid = Object.freeze({ minConfidence: spec.hybrid?.min_confidence ?? CLASSIFIER_DEFAULTS.hybrid.minConfidence });
  const embedding = method === 'embedding' ? compileEmbedding(spec.embedding, rulesFile, problems) : undefined;
  return Object.freeze({ method, local, modelFile, llm, hybrid, embedding });
}
