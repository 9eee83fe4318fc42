import type { RetryOverride, RewriteRoute } from './actions.js';

/**
 * `route.cascade` (issue 17, item 3), as the rules compile it: the tiers to try in order and the
 * checks an answer must pass to stop there. Pure data; the server runs it
 * (src/experiments/cascade*.ts): the first tier is the decision's route, the next ones are built
 * with `cascadeStep` (src/rules/ruleset.ts) only when an answer fails.
 */

export interface CascadeChecks {
  /** An answer shorter than this many characters fails (`short`). */
  readonly minLength: number | undefined;
  /** An answer that starts with one of these (case-insensitive, after white space) fails (`refusal`). */
  readonly refusalPhrases: readonly string[];
  /** An answer that contains one of these (case-insensitive) fails (`uncertain`). */
  readonly uncertaintyPhrases: readonly string[];
  /** `auto`: an answer must be JSON when the request asked for JSON (`response_format`); `true`: always; `false`: never. */
  readonly json: 'auto' | boolean;
}

export interface StreamHold {
  /** Characters of content held before the window is checked and released. */
  readonly chars: number;
  /** Longest the first content is held, from the first content event, in milliseconds. */
  readonly ms: number;
}

export interface CascadePlan {
  /** The rule the cascade belongs to (metrics, logs). */
  readonly rule: string;
  /** Each tier's name and route, in order; the first is the decision's own route. */
  readonly steps: readonly { readonly tier: string; readonly route: RewriteRoute }[];
  readonly checks: CascadeChecks;
  /** At most this many escalations (tiers after the first), at most steps.length - 1. */
  readonly maxEscalations: number;
  readonly streamHold: StreamHold;
  /** The rule's own retry settings, for every tier (each tier's own otherwise). */
  readonly retry: RetryOverride | undefined;
}

export interface CascadeRoute {
  readonly kind: 'cascade';
  readonly plan: CascadePlan;
  readonly retry: RetryOverride | undefined;
}

/** `stream_hold` when the rule gives none: about two sentences, and at most 1.5 s of delay. */
export const DEFAULT_STREAM_HOLD: StreamHold = Object.freeze({ chars: 200, ms: 1500 });
/** Upper bounds of `stream_hold`: it delays the first token by up to this. */
export const MAX_STREAM_HOLD_CHARS = 8192;
export const MAX_STREAM_HOLD_MS = 30_000;
