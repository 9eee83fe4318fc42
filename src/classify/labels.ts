/**
 * The classifier's two verdicts and their labels, in one place: the rules fields, the model
 * artifact, the training set and the metrics all use these lists (datasets/classifier/LABELLING.md
 * defines each label).
 */

/** Model tiers, cheapest first: the order `raise_below_confidence` moves along and under-routing is measured on. */
export const COMPLEXITY_LABELS = ['simple', 'medium', 'complex', 'frontier'] as const;
export type Complexity = (typeof COMPLEXITY_LABELS)[number];

export const TASK_LABELS = [
  'chat', 'simple_qa', 'classification', 'translation', 'summarization', 'extraction',
  'creative_writing', 'code_generation', 'code_review', 'analysis', 'math', 'deep_reasoning',
] as const;
export type Task = (typeof TASK_LABELS)[number];

/** How a rules file asks for verdicts (`classifier.method`). */
export const CLASSIFIER_METHODS = ['local', 'llm', 'hybrid', 'embedding'] as const;
export type ClassifierMethod = (typeof CLASSIFIER_METHODS)[number];

/** What produced a verdict: `hybrid` is local or llm per request, so a verdict names the one that answered. */
export type VerdictSource = 'local' | 'llm' | 'embedding';

/** One request's verdict: what the rules read as `classify.*`. */
export interface Classification {
  readonly complexity: Complexity;
  readonly task: Task;
  /** 0 to 1: how sure the classifier is of `complexity`. */
  readonly confidence: number;
  readonly method: VerdictSource;
}

export function complexityRank(label: Complexity): number {
  return COMPLEXITY_LABELS.indexOf(label);
}

export function isComplexity(value: unknown): value is Complexity {
  return typeof value === 'string' && (COMPLEXITY_LABELS as readonly string[]).includes(value);
}

export function isTask(value: unknown): value is Task {
  return typeof value === 'string' && (TASK_LABELS as readonly string[]).includes(value);
}

/**
 * `raise_below_confidence`: a complexity verdict less sure than `threshold` moves one tier up
 * (frontier stays): trading cost for fewer under-routed requests. A threshold of 0 raises nothing.
 */
export function raisedComplexity(verdict: Pick<Classification, 'complexity' | 'confidence'>, threshold: number): Complexity {
  if (!(verdict.confidence < threshold)) return verdict.complexity;
  const rank = complexityRank(verdict.complexity);
  return COMPLEXITY_LABELS[Math.min(rank + 1, COMPLEXITY_LABELS.length - 1)]!;
}
