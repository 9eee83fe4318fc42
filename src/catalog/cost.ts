import { ZERO, plus, priceAt, times, usd, type Catalog, type CatalogModel, type Decimal, type Pricing } from './catalog.js';
import { completionAllowance, conservativePromptTokens, imageParts } from './estimate.js';

/** The token counts a response reported, as the response tap reads them (`usage`). */
export interface ReportedUsage {
  /** Prompt tokens, cached ones included (OpenRouter's and OpenAI's `prompt_tokens`). */
  readonly prompt: number;
  /** Completion tokens, reasoning ones included. */
  readonly completion: number;
  readonly reasoning: number;
  /** Prompt tokens read from the provider's cache. */
  readonly cached: number;
  /** Prompt tokens written to the provider's cache; 0 when the upstream does not say. */
  readonly cacheWrite?: number;
}

/** Where a request's cost came from: the upstream's `usage.cost`, or the catalog's prices. */
export type CostSource = 'upstream' | 'catalog';

export interface Cost {
  readonly usd: number;
  readonly source: CostSource;
}

/**
 * What `usage` costs on `model` at `at`, from its catalog prices (overrides for this prompt size
 * and time applied), exactly until the last step:
 * - uncached prompt tokens at `prompt`, cache reads at `input_cache_read` and cache writes at
 *   `input_cache_write` (each at `prompt` when the catalog gives no such price);
 * - completion tokens, reasoning ones included, at `completion` (issue 14: "reasoning tokens as
 *   completion"; OpenRouter bills them so);
 * - one request at `request`.
 * Undefined when the model is not in the catalog or has no prompt or completion price.
 */
export function catalogCost(catalog: Catalog, modelId: string, usage: ReportedUsage, at: Date): number | undefined {
  const model = catalog.get(modelId);
  if (model === undefined) return undefined;
  const pricing = priceAt(model, { promptTokens: usage.prompt, at });
  const exact = exactCost(pricing, usage);
  return exact === undefined ? undefined : usd(exact);
}

function exactCost(pricing: Pricing, usage: ReportedUsage): Decimal | undefined {
  const prompt = pricing.prompt;
  const completion = pricing.completion;
  if (prompt === undefined || completion === undefined) return undefined;
  const cached = Math.min(usage.cached, usage.prompt);
  const written = Math.min(usage.cacheWrite ?? 0, usage.prompt - cached);
  let total = times(prompt, usage.prompt - cached - written);
  total = plus(total, times(pricing.input_cache_read ?? prompt, cached));
  total = plus(total, times(pricing.input_cache_write ?? prompt, written));
  total = plus(total, times(completion, usage.completion));
  total = plus(total, pricing.request ?? ZERO);
  return total;
}

/**
 * A request's cost: the upstream's `usage.cost` when it reported one, else the catalog's price of
 * its token counts on the model that served it (BYOK keys, other upstreams, a stream cut before
 * its usage chunk... the last has no counts either, and no cost).
 */
export function requestCost(
  reported: number | undefined, catalog: Catalog | undefined, modelId: string | undefined, usage: ReportedUsage | undefined, at: Date,
): Cost | undefined {
  if (reported !== undefined) return { usd: reported, source: 'upstream' };
  if (catalog === undefined || modelId === undefined || usage === undefined) return undefined;
  const priced = catalogCost(catalog, modelId, usage, at);
  return priced === undefined ? undefined : { usd: priced, source: 'catalog' };
}

/**
 * What a response cost its account, USD: with a bring-your-own provider key (`usage.is_byok`),
 * `usage.cost` is only OpenRouter's fee and the provider billed `cost_details.upstream_inference_cost`
 * on top, so the spend is both; otherwise the response's `priced` cost (requestCost). The caller's
 * spend (src/server/recorder.ts) and a cascade's discarded answers (src/experiments/cascade.ts)
 * count it alike.
 */
export function spentUsd(usage: { readonly byok: boolean; readonly cost: number | undefined; readonly upstreamInferenceCost: number | undefined }, priced: Cost | undefined): number | undefined {
  if (usage.byok && usage.cost !== undefined) return usage.cost + (usage.upstreamInferenceCost ?? 0);
  return priced?.usd;
}

/**
 * What a request would cost on `model` before it is sent (`request.cost_estimate_usd`, and
 * `choose` later): the conservative prompt estimate at the prompt price (overrides for that prompt
 * size and `at` applied), the expected completion (`max_tokens`, else the default of
 * estimate.ts) at the completion price, the per-request price, and each image part at the image
 * price. Undefined without a prompt or completion price.
 */
export function requestEstimateUsd(model: CatalogModel, body: unknown, at: Date): number | undefined {
  const promptTokens = conservativePromptTokens(body);
  const pricing = priceAt(model, { promptTokens, at });
  if (pricing.prompt === undefined || pricing.completion === undefined) return undefined;
  let total = times(pricing.prompt, promptTokens);
  // A cap past 2^53 tokens is no cap anyone meant; priced as that many, not as none.
  total = plus(total, times(pricing.completion, Math.min(completionAllowance(body), Number.MAX_SAFE_INTEGER)));
  total = plus(total, pricing.request ?? ZERO);
  if (pricing.image !== undefined) total = plus(total, times(pricing.image, imageParts(body)));
  return usd(total);
}
