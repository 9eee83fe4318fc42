import type { RewriteRoute } from './actions.js';

/**
 * `route.shadow` (issue 17, item 2), as the rules compile it: a candidate that gets a
 * non-streaming copy of a sample of the rule's requests, its answer optionally scored by a judge.
 * Pure data, one object per rule and rules load (the server's concurrency count for it is keyed by
 * its identity); the server sends the copies (src/experiments/shadow*.ts).
 */
export interface ShadowPlan {
  /** The rule the shadow belongs to (metrics, logs). */
  readonly rule: string;
  /** The candidate: a tier's route or a model's, applied to the client's body (not the routed one). */
  readonly route: RewriteRoute;
  /** Share of the rule's requests copied, 0 to 1. */
  readonly sample: number;
  /** Copies in flight at most; past it a copy is dropped (and counted). */
  readonly maxConcurrency: number;
  /** Compares the shadow's answer with the real one, when set. */
  readonly judge: { readonly model: string; readonly prompt: string } | undefined;
}

/** `max_concurrency` when the rule gives none. */
export const DEFAULT_SHADOW_CONCURRENCY = 4;
/** The most `max_concurrency` may be: each copy is a paid upstream call held open. */
export const MAX_SHADOW_CONCURRENCY = 64;
/** The judge's prompt when the rule gives none: a verdict the server can parse. */
export const DEFAULT_JUDGE_PROMPT = 'Compare two answers to the same request. Reply with JSON only: {"agree": true|false, "score": <0 to 1, how good answer B is compared with answer A>}.';
