import { createHash } from 'node:crypto';
import type { CompiledRoute, RetryOverride } from './actions.js';
import type { FieldGetter } from './fields.js';

/**
 * `route.split` (issue 17, item 1): a rule's traffic divided between arms by weight, each arm a
 * route of its own. Pure: the subject's arm is a function of the subject, the rule and the arms.
 *
 * Assignment is weighted rendezvous hashing (highest random weight, Thaler and Ravishankar 1998,
 * with the -w / ln(u) weighting of Schindelhauer and Schomaker's "weighted distributed hash
 * tables"): each arm scores the subject with a hash of (subject, rule, arm), scaled by its weight,
 * and the best score wins. So a subject keeps its arm across requests, replicas and restarts; an
 * arm's share of subjects is its share of the weight; and moving weight between arms moves only
 * the subjects it must (a 90/10 split changed to 80/20 moves about 10% of subjects, all into the
 * arm that grew), where `hash mod 100` would reshuffle many more. Renaming an arm reshuffles its
 * subjects (its name is in the hash).
 */

export interface SplitArm {
  readonly name: string;
  /** Relative weight, > 0 (an arm of weight 0 gets no subject; at least one arm weighs more). */
  readonly weight: number;
  /** The arm's route (not a split). */
  readonly route: CompiledRoute;
  /** Mixed into the subject's hash: the rule's and the arm's names. */
  readonly seed: number;
}

export interface SplitRoute {
  readonly kind: 'split';
  /** The field whose value is the subject (`header.x-session-id`, `key.name`...); undefined: random per request. */
  readonly sticky: { readonly field: string; readonly read: FieldGetter } | undefined;
  readonly arms: readonly SplitArm[];
  readonly totalWeight: number;
  readonly retry: RetryOverride | undefined;
}

/** How a request got its arm: by its subject, at random (no `sticky`), or at random because its subject was missing. */
export type SplitAssignment = 'sticky' | 'random' | 'missing';

export interface SplitChoice {
  readonly arm: SplitArm;
  readonly assignment: SplitAssignment;
}

/** A 32-bit seed of a string (the rule's and the arm's names, at load). */
export function seedOf(text: string): number {
  return createHash('sha256').update(text).digest().readUInt32LE(0);
}

/** MurmurHash3's 32-bit finaliser: every input bit reaches every output bit. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

const TWO_POW_21 = 2 ** 21;
const TWO_POW_53 = 2 ** 53;

/** The subject's 64-bit digest as two 32-bit words: one SHA-256 per request, whatever the number of arms. */
function subjectWords(subject: string): readonly [number, number] {
  const digest = createHash('sha256').update(subject).digest();
  return [digest.readUInt32LE(0), digest.readUInt32LE(4)];
}

/** A uniform number in (0, 1) from the subject's words and an arm's seed. */
function unitOf(words: readonly [number, number], seed: number): number {
  const high = fmix32(words[0] ^ seed);
  const low = fmix32(words[1] ^ Math.imul(seed ^ high, 0x9e3779b1));
  return ((high >>> 0) * TWO_POW_21 + (low >>> 11) + 0.5) / TWO_POW_53;
}

/** The arm a subject lands in: the highest `weight / -ln(u)`. */
export function armOfSubject(route: SplitRoute, subject: string): SplitArm {
  const words = subjectWords(subject);
  let best = route.arms[0]!;
  let bestScore = -1;
  for (const arm of route.arms) {
    if (arm.weight <= 0) continue;
    const score = arm.weight / -Math.log(unitOf(words, arm.seed));
    if (score > bestScore) {
      best = arm;
      bestScore = score;
    }
  }
  return best;
}

/** An arm drawn by weight from `u` in [0, 1). */
function armOfDraw(route: SplitRoute, u: number): SplitArm {
  let left = u * route.totalWeight;
  for (const arm of route.arms) {
    if (arm.weight <= 0) continue;
    left -= arm.weight;
    if (left < 0) return arm;
  }
  return route.arms.findLast((arm) => arm.weight > 0) ?? route.arms[0]!;
}

/**
 * The request's arm: by the sticky field's value when the split has one and the request has a
 * value there (a string, a number or a boolean, as text), else drawn with `random`.
 */
export function chooseArm(route: SplitRoute, read: (get: FieldGetter) => unknown, random: () => number): SplitChoice {
  if (route.sticky === undefined) return { arm: armOfDraw(route, random()), assignment: 'random' };
  const value = read(route.sticky.read);
  const subject = typeof value === 'string' ? value : typeof value === 'number' || typeof value === 'boolean' ? String(value) : undefined;
  if (subject === undefined || subject === '') return { arm: armOfDraw(route, random()), assignment: 'missing' };
  return { arm: armOfSubject(route, subject), assignment: 'sticky' };
}
