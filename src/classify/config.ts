import { dirname, resolve } from 'node:path';
import type { ClassifierMethod } from './labels.js';
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
}

export interface ClassifierProblem {
  readonly path: (string | number)[];
  readonly message: string;
}

/** Paths in the block are relative to the rules file, as a team keeps them side by side. */
export function resolveBesideRules(rulesFile: string, path: string): string {
  return resolve(dirname(rulesFile), path);
}

export const DEFAULT_CLASSIFIER: ClassifierConfig = Object.freeze({ method: 'local', local: shippedClassifier, modelFile: undefined });

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
  return Object.freeze({ method, local, modelFile });
}
