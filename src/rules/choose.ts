import type { Catalog } from '../catalog/catalog.js';
import { supports, type Capability } from '../catalog/capabilities.js';
import { requestEstimateUsd } from '../catalog/cost.js';
import { contextNeeded } from '../catalog/estimate.js';
import type { RetryOverride, RewriteRoute } from './actions.js';
import type { JsonObject } from './decision.js';
import { asksForJson, hasImages, hasTools } from './fields.js';

/**
 * `choose: { from: [...], by: cost, require: [...] }`: the cheapest candidate that can serve this
 * request, from the model catalog. Pure: the catalog is a value of the request context.
 */
export interface ChooseRoute {
  readonly kind: 'choose';
  /** Each candidate as written (a tier's name or a model id) and what routing to it does. */
  readonly candidates: readonly { readonly name: string; readonly route: RewriteRoute }[];
  /** Capabilities every candidate needs, beyond what the request itself uses. */
  readonly require: readonly Capability[];
  /** When no candidate fits: answer 400 `no_model_fits`, or go on to the next rule. */
  readonly otherwise: 'reject' | 'next_rule';
  readonly retry: RetryOverride | undefined;
}

/** One candidate, as explain shows it. */
export interface CandidateVerdict {
  readonly candidate: string;
  readonly model: string;
  /** This request's estimated cost on it, USD; undefined when it was not priced. */
  readonly cost_estimate_usd: number | undefined;
  readonly kept: boolean;
  /** Why it was dropped, or `picked` / `fallback` / `listed order` for kept ones. */
  readonly reason: string;
}

export interface Choice {
  /** The route to apply (the pick's, with the other kept candidates as its fallbacks); undefined: none fits. */
  readonly route: RewriteRoute | undefined;
  readonly verdicts: readonly CandidateVerdict[];
  /** Set when there was no catalog: the candidates were taken in listed order. */
  readonly warning: string | undefined;
}

/** What the request itself uses: tools when it offers any, vision when a message has an image, JSON mode when it asks for JSON. */
export function capabilitiesUsed(body: Readonly<JsonObject>): Capability[] {
  const used: Capability[] = [];
  if (hasTools(body)) used.push('tools');
  if (hasImages(body)) used.push('vision');
  if (asksForJson(body)) used.push('json_mode');
  return used;
}

interface Kept {
  readonly index: number;
  readonly cost: number;
  readonly context: number;
}

/**
 * Why `modelId` cannot serve a request that uses `needs` and needs a window of `needed()` tokens,
 * or undefined when it can. `needed` is called only when the model's window is known.
 */
export function unfitReason(catalog: Catalog, modelId: string, needs: readonly Capability[], needed: () => number): string | undefined {
  const model = catalog.get(modelId);
  if (model === undefined) return 'not in the catalog';
  const missing = needs.filter((n) => !supports(model, n));
  if (missing.length > 0) return `does not support ${missing.join(', ')}`;
  if (model.contextLength !== undefined) {
    const tokens = needed();
    if (model.contextLength < tokens) return `context ${model.contextLength} tokens < ${tokens} needed`;
  }
  return undefined;
}

/** A fallback a rule lists that cannot serve this request, and why (explain's `dropped_fallbacks`). */
export interface DroppedFallback {
  readonly model: string;
  readonly reason: string;
}

/**
 * The fallbacks of a route that can serve this request: those the catalog does not list, that
 * lack what the request uses, or whose window is too small are dropped (issue 14, item 4). The
 * routed model itself is never dropped: the rule chose it. Without a catalog nothing is dropped.
 */
export function servingFallbacks(fallbacks: readonly string[], body: Readonly<JsonObject>, catalog: Catalog | undefined): { kept: readonly string[]; dropped: readonly DroppedFallback[] } {
  if (catalog === undefined || fallbacks.length === 0) return { kept: fallbacks, dropped: [] };
  const needs = capabilitiesUsed(body);
  let needed: number | undefined;
  const neededTokens = (): number => (needed ??= contextNeeded(body));
  const kept: string[] = [];
  const dropped: DroppedFallback[] = [];
  for (const model of fallbacks) {
    const reason = unfitReason(catalog, model, needs, neededTokens);
    if (reason === undefined) kept.push(model);
    else dropped.push({ model, reason });
  }
  return dropped.length === 0 ? { kept: fallbacks, dropped } : { kept, dropped };
}

export function choose(route: ChooseRoute, body: Readonly<JsonObject>, catalog: Catalog | undefined, now: Date): Choice {
  const candidates = route.candidates;
  if (catalog === undefined) {
    // Never fail closed for lack of prices: the listed order, with a warning.
    const [first, ...rest] = candidates;
    return {
      route: { ...first!.route, fallbacks: dedupe([...first!.route.fallbacks, ...rest.map((c) => c.route.model)], first!.route.model), retry: route.retry ?? first!.route.retry },
      verdicts: candidates.map((c, i) => ({ candidate: c.name, model: c.route.model, cost_estimate_usd: undefined, kept: true, reason: i === 0 ? 'listed order (no catalog)' : 'fallback, listed order (no catalog)' })),
      warning: 'no model catalog is loaded: choose took its candidates in the listed order',
    };
  }
  const needs = [...new Set([...route.require, ...capabilitiesUsed(body)])];
  const needed = contextNeeded(body);
  const reasons: string[] = [];
  const costs: (number | undefined)[] = [];
  const kept: Kept[] = [];
  candidates.forEach((c, index) => {
    let reason = unfitReason(catalog, c.route.model, needs, () => needed);
    let cost: number | undefined;
    if (reason === undefined) {
      const model = catalog.get(c.route.model)!;
      cost = requestEstimateUsd(model, body, now);
      if (cost === undefined) reason = 'no price in the catalog';
      else kept.push({ index, cost, context: model.contextLength ?? 0 });
    }
    reasons.push(reason ?? '');
    costs.push(cost);
  });
  // Cheapest first; between equal costs, the larger context window.
  kept.sort((a, b) => a.cost - b.cost || b.context - a.context);
  const verdicts: CandidateVerdict[] = candidates.map((c, i) => {
    const rank = kept.findIndex((k) => k.index === i);
    return { candidate: c.name, model: c.route.model, cost_estimate_usd: costs[i], kept: rank !== -1, reason: rank === 0 ? 'picked: cheapest that fits' : rank > 0 ? `fallback ${rank}` : reasons[i]! };
  });
  if (kept.length === 0) return { route: undefined, verdicts, warning: undefined };
  const pick = candidates[kept[0]!.index]!.route;
  const fallbacks = dedupe(kept.slice(1).map((k) => candidates[k.index]!.route.model), pick.model);
  return { route: { ...pick, fallbacks, retry: route.retry ?? pick.retry }, verdicts, warning: undefined };
}

function dedupe(models: readonly string[], except: string): string[] {
  return [...new Set(models)].filter((m) => m !== except);
}

/** The 400's detail: each candidate and why it could not serve. */
export function noModelFits(verdicts: readonly CandidateVerdict[]): string {
  return verdicts.map((v) => `${v.candidate}: ${v.reason}`).join('; ');
}
