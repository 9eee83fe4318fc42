import { createHash } from 'node:crypto';
import { isComplexity, raisedComplexity, type Complexity } from '../classify/labels.js';
import type { RetryOverride, RewriteRoute } from './actions.js';
import { shown } from './conditions.js';
import type { EvalInput, FieldGetter } from './fields.js';

/**
 * `tier_from: { field, map, default, raise_below_confidence, stick_by, stick_ttl_ms }`: the tier
 * named by what a field reads (`model: auto` routed on `classify.complexity`). Pure: a sticky tier
 * is read from the request context's `stickyTiers`, and one to keep is returned with the decision
 * for the server to store (src/server/sticky-tiers.ts).
 */

/**
 * How long a conversation keeps its tier after its last request, by default: half an hour covers
 * the pauses of a working session (reading an answer, running the code it gave), and is well
 * beyond prompt caches' lifetimes (Anthropic's 5 minutes, OpenAI's 5 to 60), so the cache a
 * conversation built is never lost to a tier switch while it is alive.
 */
export const DEFAULT_STICK_TTL_MS = 30 * 60_000;
/** The schema's maximum `stick_ttl_ms` (a day): a "conversation" idle longer is a new one. */
export const MAX_STICK_TTL_MS = 24 * 60 * 60_000;
/**
 * A stick_by value longer than this is keyed by its SHA-256 digest: session ids are 16 to 64
 * characters, and a client may send a 16 KB header; the store's keys stay short.
 */
export const MAX_STICK_VALUE_CHARS = 128;

/** Where the proxy keeps the tiers of conversations (src/server/sticky-tiers.ts); read-only to the engine. */
export interface StickyTierReader {
  get(key: string): string | undefined;
}

export interface TierFromRoute {
  readonly kind: 'tier_from';
  readonly field: string;
  readonly read: FieldGetter;
  /** Each mapped value's route (a tier's, compiled as `route: { tier }` is); a Map, so `__proto__` is a value like any other. */
  readonly map: ReadonlyMap<string, RewriteRoute>;
  readonly otherwise: RewriteRoute | undefined;
  /** Every tier this rule routes to, by name: a sticky tier it no longer routes to is ignored. */
  readonly tiers: ReadonlyMap<string, RewriteRoute>;
  /** Only for `classify.complexity`: a verdict less sure than this moves one label up. */
  readonly raiseBelow: number | undefined;
  /** `classify.confidence`, read only when `raiseBelow` is set. */
  readonly confidence: FieldGetter | undefined;
  readonly stickBy: { readonly field: string; readonly read: FieldGetter; readonly ttlMs: number } | undefined;
  readonly retry: RetryOverride | undefined;
}

/** A tier to keep for a conversation: the server stores it after the decision. */
export interface StickyTier {
  readonly key: string;
  readonly tier: string;
  readonly ttlMs: number;
}

/** What explain shows of a `tier_from` rule. */
export interface TierFromExplanation {
  readonly field: string;
  /** The value read; absent on a sticky hit (the field was not read). */
  readonly value?: unknown;
  /** For `classify.*`: how sure the verdict is and what made it. */
  readonly confidence?: number;
  readonly method?: string;
  /** The label the verdict had before `raise_below_confidence` moved it. */
  readonly raised_from?: Complexity;
  readonly tier: string | undefined;
  readonly sticky?: 'hit' | 'stored';
}

export interface TierFromResult {
  /** undefined: the rule does not decide (a value the map does not name, no default). */
  readonly route: RewriteRoute | undefined;
  readonly stick: StickyTier | undefined;
  readonly explanation: TierFromExplanation;
  /** Why the rule let evaluation go on, for the trace. */
  readonly skipped: string | undefined;
}

/**
 * The store's key of a conversation: the rule, the caller's key name when keys are configured, then
 * the value (rule and key names have no `@`, `:` or `#`). Per caller, since clients pick their
 * session ids: another caller sending the same id must not read, or set, this conversation's tier.
 */
export function stickyKey(rule: string, value: string, caller?: string): string {
  const scope = caller === undefined ? rule : `${rule}@${caller}`;
  return value.length > MAX_STICK_VALUE_CHARS ? `${scope}#${createHash('sha256').update(value).digest('hex')}` : `${scope}:${value}`;
}

/** A scalar as the map and the store key read it; anything else names no tier. */
function asKey(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return undefined;
}

export function tierFrom(route: TierFromRoute, rule: string, input: EvalInput, store: StickyTierReader | undefined): TierFromResult {
  const session = route.stickBy === undefined ? undefined : asKey(route.stickBy.read(input));
  // An empty session id names no conversation.
  const key = session === undefined || session === '' ? undefined : stickyKey(rule, session, input.caller?.name);
  if (key !== undefined && store !== undefined) {
    const kept = store.get(key);
    const keptRoute = kept === undefined ? undefined : route.tiers.get(kept);
    // The field is not read: a conversation's later turns cost no classification.
    if (keptRoute !== undefined) return { route: keptRoute, stick: undefined, skipped: undefined, explanation: { field: route.field, tier: kept, sticky: 'hit' } };
  }

  const value = route.read(input);
  let label = asKey(value);
  let raisedFrom: Complexity | undefined;
  let confidence: number | undefined;
  if (route.raiseBelow !== undefined && isComplexity(label)) {
    const c = route.confidence?.(input);
    if (typeof c === 'number') {
      confidence = c;
      const raised = raisedComplexity({ complexity: label, confidence: c }, route.raiseBelow);
      if (raised !== label) {
        raisedFrom = label;
        label = raised;
      }
    }
  }
  const verdict = route.field.startsWith('classify.') ? input.verdict : undefined;
  const picked = (label === undefined ? undefined : route.map.get(label)) ?? route.otherwise;
  const explanation: TierFromExplanation = {
    field: route.field,
    value: shown(value),
    ...(verdict !== undefined && { confidence: confidence ?? verdict.confidence, method: verdict.method }),
    ...(raisedFrom !== undefined && { raised_from: raisedFrom }),
    tier: picked?.tier,
  };
  if (picked === undefined) {
    const why = label === undefined ? `${route.field} has no value` : `the map names no tier for ${route.field} = ${JSON.stringify(shown(label))}`;
    return { route: undefined, stick: undefined, explanation, skipped: `${why}, and there is no default` };
  }
  const stick = key === undefined ? undefined : { key, tier: picked.tier!, ttlMs: route.stickBy!.ttlMs };
  return { route: picked, stick, skipped: undefined, explanation: stick === undefined ? explanation : { ...explanation, sticky: 'stored' } };
}
