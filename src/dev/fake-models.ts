/**
 * The fake OpenRouter's model catalog, served at `GET /api/v1/models` and used to refuse unknown
 * models the way OpenRouter does. Entries have the shape of OpenRouter's Models API
 * (https://openrouter.ai/docs/models: id, canonical_slug, name, created, description,
 * context_length, architecture, pricing as decimal strings in USD per token, top_provider,
 * per_request_limits, supported_parameters, default_parameters). The ids are real OpenRouter ids,
 * every model the shipped rules.yaml names among them; names, dates, limits and prices are
 * illustrative and not kept current.
 */

/** The price keys of a `pricing` object (and of its overrides), decimal strings in USD. */
export const PRICE_KEYS = ['prompt', 'completion', 'request', 'image', 'web_search', 'internal_reasoning', 'input_cache_read', 'input_cache_write'] as const;
export type PriceKey = (typeof PRICE_KEYS)[number];
export type Prices = Readonly<Partial<Record<PriceKey, string>>>;

/**
 * A conditional price change, applied in order after the base prices, later entries winning per
 * key, when every condition holds: `min_prompt_tokens` (the request's prompt tokens, cached ones
 * included, are at least this many: long-context pricing) and the UTC window `utc_start` (inclusive) to
 * `utc_end` (exclusive), ISO 8601 times (a promotion). The proxy's catalog (issue 14, item 1) reads
 * the same shape.
 */
export type PriceOverride = Prices & { readonly min_prompt_tokens?: number; readonly utc_start?: string; readonly utc_end?: string };

export type Pricing = Prices & { readonly prompt: string; readonly completion: string; readonly overrides?: readonly PriceOverride[] };

export interface CatalogModel {
  readonly id: string;
  readonly canonical_slug: string;
  readonly hugging_face_id: string;
  readonly name: string;
  readonly created: number;
  readonly description: string;
  readonly context_length: number;
  readonly architecture: {
    readonly modality: string;
    readonly input_modalities: readonly string[];
    readonly output_modalities: readonly string[];
    readonly tokenizer: string;
    readonly instruct_type: string | null;
  };
  readonly pricing: Pricing;
  readonly top_provider: { readonly context_length: number; readonly max_completion_tokens: number | null; readonly is_moderated: boolean };
  /** OpenRouter's per-request caps, token counts as strings; null when none. */
  readonly per_request_limits: { readonly prompt_tokens: string; readonly completion_tokens: string } | null;
  readonly supported_parameters: readonly string[];
  readonly default_parameters: null;
}

/** The model OpenRouter uses when a request names none: the account's default, here a fixed one. */
export const DEFAULT_MODEL = 'openai/gpt-4o-mini';

const SAMPLING = ['max_tokens', 'temperature', 'top_p', 'stop', 'frequency_penalty', 'presence_penalty', 'seed'];
/** Tools without JSON mode, as some providers serve them. */
const TOOLS_ONLY = [...SAMPLING, 'tools', 'tool_choice'];
const WITH_TOOLS = [...TOOLS_ONLY, 'response_format', 'structured_outputs'];
const REASONING = ['max_tokens', 'seed', 'tools', 'tool_choice', 'response_format', 'structured_outputs', 'reasoning', 'include_reasoning'];
/** Reasoning models without tools (DeepSeek R1 as most providers serve it). */
const REASONING_NO_TOOLS = ['max_tokens', 'temperature', 'top_p', 'stop', 'seed', 'reasoning', 'include_reasoning'];
const VISION = ['text', 'image'];
const VISION_FILE = ['text', 'image', 'file'];
/** Free variants' caps as OpenRouter lists them on some `:free` models. */
const FREE_LIMITS = { prompt_tokens: '8192', completion_tokens: '4096' };

interface Spec {
  readonly id: string;
  readonly name: string;
  readonly created: number;
  readonly context: number;
  /** USD per token, as OpenRouter writes them. */
  readonly prompt: string;
  readonly completion: string;
  /** Other prices (cache reads and writes, per request, per image, reasoning) and overrides. */
  readonly prices?: Prices & { readonly overrides?: readonly PriceOverride[] };
  /** When OpenRouter's canonical slug is not the id (a dated version). */
  readonly slug?: string;
  readonly input?: readonly string[];
  readonly output?: readonly string[];
  readonly tokenizer: string;
  readonly maxCompletion?: number | null;
  readonly moderated?: boolean;
  readonly params?: readonly string[];
  readonly limits?: CatalogModel['per_request_limits'];
}

/** Long-context pricing: prompts of 200k tokens and more cost more (Gemini 2.5 Pro, Claude Sonnet 4). */
const LONG_CONTEXT = 200_000;

const SPECS: readonly Spec[] = [
  { id: 'openai/gpt-4o-mini', name: 'OpenAI: GPT-4o-mini', created: 1721260800, context: 128_000, prompt: '0.00000015', completion: '0.0000006', prices: { input_cache_read: '0.000000075', image: '0.000217' }, input: VISION_FILE, tokenizer: 'GPT', maxCompletion: 16_384, moderated: true },
  { id: 'openai/gpt-4o-mini-2024-07-18', name: 'OpenAI: GPT-4o-mini (2024-07-18)', created: 1721260800, context: 128_000, prompt: '0.00000015', completion: '0.0000006', prices: { input_cache_read: '0.000000075', image: '0.007225' }, input: VISION_FILE, tokenizer: 'GPT', maxCompletion: 16_384, moderated: true },
  { id: 'openai/gpt-4o', name: 'OpenAI: GPT-4o', created: 1715558400, context: 128_000, prompt: '0.0000025', completion: '0.00001', prices: { input_cache_read: '0.00000125', image: '0.003613' }, input: VISION_FILE, tokenizer: 'GPT', maxCompletion: 16_384, moderated: true },
  { id: 'openai/gpt-4.1', name: 'OpenAI: GPT-4.1', created: 1744651385, context: 1_047_576, prompt: '0.000002', completion: '0.000008', prices: { input_cache_read: '0.0000005' }, input: VISION_FILE, tokenizer: 'GPT', maxCompletion: 32_768, moderated: true },
  { id: 'openai/gpt-4.1-mini', name: 'OpenAI: GPT-4.1 Mini', created: 1744651381, context: 1_047_576, prompt: '0.0000004', completion: '0.0000016', prices: { input_cache_read: '0.0000001' }, input: VISION_FILE, tokenizer: 'GPT', maxCompletion: 32_768, moderated: true },
  { id: 'openai/gpt-3.5-turbo', name: 'OpenAI: GPT-3.5 Turbo', created: 1685232000, context: 16_385, prompt: '0.0000005', completion: '0.0000015', tokenizer: 'GPT', maxCompletion: 4_096, moderated: true },
  { id: 'openai/o1', name: 'OpenAI: o1', created: 1734459999, context: 200_000, prompt: '0.000015', completion: '0.00006', prices: { input_cache_read: '0.0000075', image: '0.021675' }, input: VISION_FILE, tokenizer: 'GPT', maxCompletion: 100_000, moderated: true, params: REASONING },
  { id: 'openai/o3-mini', name: 'OpenAI: o3 Mini', created: 1738351721, context: 200_000, prompt: '0.0000011', completion: '0.0000044', prices: { input_cache_read: '0.00000055' }, input: ['text', 'file'], tokenizer: 'GPT', maxCompletion: 100_000, moderated: true, params: REASONING },
  { id: 'anthropic/claude-3.5-sonnet', name: 'Anthropic: Claude 3.5 Sonnet', created: 1729555200, context: 200_000, prompt: '0.000003', completion: '0.000015', prices: { input_cache_read: '0.0000003', input_cache_write: '0.00000375', image: '0.0048' }, input: VISION_FILE, tokenizer: 'Claude', maxCompletion: 8_192, moderated: true, params: TOOLS_ONLY },
  { id: 'anthropic/claude-3.7-sonnet', name: 'Anthropic: Claude 3.7 Sonnet', created: 1740422110, context: 200_000, prompt: '0.000003', completion: '0.000015', prices: { input_cache_read: '0.0000003', input_cache_write: '0.00000375', image: '0.0048' }, input: VISION_FILE, tokenizer: 'Claude', maxCompletion: 64_000, moderated: false, params: [...TOOLS_ONLY, 'reasoning', 'include_reasoning'] },
  {
    id: 'anthropic/claude-sonnet-4', slug: 'anthropic/claude-4-sonnet-20250522', name: 'Anthropic: Claude Sonnet 4', created: 1747930371, context: 1_000_000, prompt: '0.000003', completion: '0.000015',
    prices: { input_cache_read: '0.0000003', input_cache_write: '0.00000375', image: '0.0048', overrides: [{ min_prompt_tokens: LONG_CONTEXT, prompt: '0.000006', completion: '0.0000225', input_cache_read: '0.0000006', input_cache_write: '0.0000075' }] },
    input: VISION_FILE, tokenizer: 'Claude', maxCompletion: 64_000, params: [...TOOLS_ONLY, 'reasoning', 'include_reasoning'],
  },
  { id: 'anthropic/claude-3.5-haiku', name: 'Anthropic: Claude 3.5 Haiku', created: 1730678400, context: 200_000, prompt: '0.0000008', completion: '0.000004', prices: { input_cache_read: '0.00000008', input_cache_write: '0.000001' }, tokenizer: 'Claude', maxCompletion: 8_192, moderated: true, params: TOOLS_ONLY },
  { id: 'anthropic/claude-3-haiku', name: 'Anthropic: Claude 3 Haiku', created: 1710288000, context: 200_000, prompt: '0.00000025', completion: '0.00000125', prices: { input_cache_read: '0.00000003', input_cache_write: '0.0000003', image: '0.0004' }, input: VISION, tokenizer: 'Claude', maxCompletion: 4_096, moderated: true, params: TOOLS_ONLY },
  {
    id: 'google/gemini-2.5-pro', name: 'Google: Gemini 2.5 Pro', created: 1750169544, context: 1_048_576, prompt: '0.00000125', completion: '0.00001',
    prices: { input_cache_read: '0.00000031', input_cache_write: '0.000001625', image: '0.00516', overrides: [{ min_prompt_tokens: LONG_CONTEXT, prompt: '0.0000025', completion: '0.000015', input_cache_read: '0.000000625' }] },
    input: [...VISION_FILE, 'audio'], tokenizer: 'Gemini', maxCompletion: 65_536, params: REASONING,
  },
  { id: 'google/gemini-2.5-flash', name: 'Google: Gemini 2.5 Flash', created: 1750172488, context: 1_048_576, prompt: '0.0000003', completion: '0.0000025', prices: { input_cache_read: '0.000000075', input_cache_write: '0.0000003833', image: '0.001238' }, input: [...VISION_FILE, 'audio'], tokenizer: 'Gemini', maxCompletion: 65_535, params: REASONING },
  // Reasoning billed at its own price (`internal_reasoning`), as OpenRouter listed this preview.
  { id: 'google/gemini-2.5-flash-preview:thinking', slug: 'google/gemini-2.5-flash-preview-04-17', name: 'Google: Gemini 2.5 Flash Preview (thinking)', created: 1744914667, context: 1_048_576, prompt: '0.00000015', completion: '0.0000035', prices: { internal_reasoning: '0.0000035', image: '0.0006192' }, input: VISION_FILE, tokenizer: 'Gemini', maxCompletion: 65_535, params: REASONING },
  { id: 'google/gemini-2.0-flash-001', name: 'Google: Gemini 2.0 Flash', created: 1738769413, context: 1_048_576, prompt: '0.0000001', completion: '0.0000004', prices: { input_cache_read: '0.000000025', input_cache_write: '0.0000001833', image: '0.0000258' }, input: [...VISION_FILE, 'audio'], tokenizer: 'Gemini', maxCompletion: 8_192 },
  { id: 'google/gemini-2.0-flash-exp:free', name: 'Google: Gemini 2.0 Flash Experimental (free)', created: 1733937523, context: 1_048_576, prompt: '0', completion: '0', input: VISION, tokenizer: 'Gemini', maxCompletion: 8_192, params: TOOLS_ONLY },
  // Image output beside text: listed by the default `output_modalities=text` filter too.
  { id: 'google/gemini-2.5-flash-image-preview', name: 'Google: Gemini 2.5 Flash Image Preview', created: 1756218977, context: 32_768, prompt: '0.0000003', completion: '0.0000025', prices: { image: '0.001238' }, input: VISION, output: ['image', 'text'], tokenizer: 'Gemini', maxCompletion: 8_192, params: ['max_tokens', 'temperature', 'top_p', 'seed', 'response_format', 'structured_outputs'] },
  { id: 'google/gemma-2-9b-it:free', name: 'Google: Gemma 2 9B (free)', created: 1719532800, context: 8_192, prompt: '0', completion: '0', tokenizer: 'Gemini', maxCompletion: 8_192, params: SAMPLING, limits: FREE_LIMITS },
  { id: 'meta-llama/llama-3.1-8b-instruct', name: 'Meta: Llama 3.1 8B Instruct', created: 1721692800, context: 131_072, prompt: '0.00000002', completion: '0.00000005', tokenizer: 'Llama3', maxCompletion: 16_384 },
  { id: 'meta-llama/llama-3.1-8b-instruct:free', name: 'Meta: Llama 3.1 8B Instruct (free)', created: 1721692800, context: 131_072, prompt: '0', completion: '0', tokenizer: 'Llama3', maxCompletion: 4_096, params: SAMPLING, limits: FREE_LIMITS },
  { id: 'meta-llama/llama-3.3-70b-instruct', name: 'Meta: Llama 3.3 70B Instruct', created: 1733506137, context: 131_072, prompt: '0.00000013', completion: '0.0000004', tokenizer: 'Llama3', maxCompletion: 16_384, params: TOOLS_ONLY },
  { id: 'meta-llama/llama-3.3-70b-instruct:free', name: 'Meta: Llama 3.3 70B Instruct (free)', created: 1733506137, context: 65_536, prompt: '0', completion: '0', tokenizer: 'Llama3', maxCompletion: null, params: SAMPLING },
  { id: 'meta-llama/llama-3.2-11b-vision-instruct', name: 'Meta: Llama 3.2 11B Vision Instruct', created: 1727222400, context: 131_072, prompt: '0.000000049', completion: '0.000000049', prices: { image: '0.00007948' }, input: VISION, tokenizer: 'Llama3', maxCompletion: 16_384, params: SAMPLING },
  { id: 'mistralai/mistral-small', name: 'Mistral Small', created: 1704844800, context: 32_000, prompt: '0.0000002', completion: '0.0000006', tokenizer: 'Mistral', maxCompletion: null },
  { id: 'mistralai/mistral-large', name: 'Mistral Large', created: 1708905600, context: 128_000, prompt: '0.000002', completion: '0.000006', tokenizer: 'Mistral', maxCompletion: null },
  { id: 'mistralai/mistral-nemo', name: 'Mistral: Mistral Nemo', created: 1721347200, context: 131_072, prompt: '0.00000002', completion: '0.00000004', tokenizer: 'Mistral', maxCompletion: 131_072, params: TOOLS_ONLY },
  { id: 'mistralai/pixtral-12b', name: 'Mistral: Pixtral 12B', created: 1725926400, context: 32_768, prompt: '0.0000001', completion: '0.0000001', prices: { image: '0.0001445' }, input: VISION, tokenizer: 'Mistral', maxCompletion: null },
  { id: 'mistralai/mistral-7b-instruct:free', name: 'Mistral: Mistral 7B Instruct (free)', created: 1716768000, context: 32_768, prompt: '0', completion: '0', tokenizer: 'Mistral', maxCompletion: 16_384, params: SAMPLING, limits: FREE_LIMITS },
  { id: 'deepseek/deepseek-chat', slug: 'deepseek/deepseek-chat-v3', name: 'DeepSeek: DeepSeek V3', created: 1735241453, context: 163_840, prompt: '0.0000003', completion: '0.00000085', tokenizer: 'DeepSeek', maxCompletion: 163_840 },
  {
    // A promotion window: half price during one UTC month (DeepSeek has run such discounts).
    id: 'deepseek/deepseek-r1', name: 'DeepSeek: R1', created: 1737381095, context: 163_840, prompt: '0.0000004', completion: '0.000002',
    prices: { overrides: [{ utc_start: '2026-01-01T00:00:00Z', utc_end: '2026-02-01T00:00:00Z', prompt: '0.0000002', completion: '0.000001' }] },
    tokenizer: 'DeepSeek', maxCompletion: 163_840, params: REASONING_NO_TOOLS,
  },
  { id: 'deepseek/deepseek-r1:free', name: 'DeepSeek: R1 (free)', created: 1737381095, context: 163_840, prompt: '0', completion: '0', tokenizer: 'DeepSeek', maxCompletion: null, params: REASONING_NO_TOOLS },
  { id: 'qwen/qwen2.5-vl-72b-instruct', name: 'Qwen: Qwen2.5 VL 72B Instruct', created: 1738410311, context: 32_000, prompt: '0.00000025', completion: '0.00000075', input: VISION, tokenizer: 'Qwen', maxCompletion: null, params: SAMPLING },
  { id: 'x-ai/grok-3-mini', name: 'xAI: Grok 3 Mini', created: 1749583245, context: 131_072, prompt: '0.0000003', completion: '0.0000005', prices: { input_cache_read: '0.000000075' }, tokenizer: 'Grok', maxCompletion: null, params: REASONING },
  { id: 'cohere/command-r-plus-08-2024', name: 'Cohere: Command R+ (08-2024)', created: 1724976000, context: 128_000, prompt: '0.0000025', completion: '0.00001', tokenizer: 'Cohere', maxCompletion: 4_000, params: TOOLS_ONLY },
  // A per-request price: the search each request runs.
  { id: 'perplexity/sonar', name: 'Perplexity: Sonar', created: 1738013808, context: 127_072, prompt: '0.000001', completion: '0.000001', prices: { request: '0.005', image: '0' }, input: VISION, tokenizer: 'Other', maxCompletion: null, params: ['max_tokens', 'temperature', 'top_p', 'frequency_penalty', 'presence_penalty', 'web_search_options'] },
  { id: 'openrouter/auto', name: 'Auto Router', created: 1699401600, context: 2_000_000, prompt: '-1', completion: '-1', input: VISION, tokenizer: 'Router', maxCompletion: null },
  { id: 'openai/text-embedding-3-small', name: 'OpenAI: Text Embedding 3 Small', created: 1705953600, context: 8_192, prompt: '0.00000002', completion: '0', output: ['embeddings'], tokenizer: 'GPT', maxCompletion: null, moderated: true, params: [] },
];

/** Prices of a model not in the built-in list (an `extraModels` id or a served prefix). */
const EXTRA_PRICES = { prompt: '0.000001', completion: '0.000002' } as const;

function entry(spec: Spec): CatalogModel {
  const input = spec.input ?? ['text'];
  const output = spec.output ?? ['text'];
  return {
    id: spec.id,
    canonical_slug: spec.slug ?? spec.id,
    hugging_face_id: '',
    name: spec.name,
    created: spec.created,
    description: `${spec.name}, as listed by the fake OpenRouter.`,
    context_length: spec.context,
    architecture: {
      modality: `${input.join('+')}->${output.join('+')}`,
      input_modalities: input,
      output_modalities: output,
      tokenizer: spec.tokenizer,
      instruct_type: null,
    },
    // OpenRouter lists the cache prices only for models that cache.
    pricing: { prompt: spec.prompt, completion: spec.completion, request: '0', image: '0', web_search: '0', internal_reasoning: '0', ...spec.prices },
    top_provider: { context_length: spec.context, max_completion_tokens: spec.maxCompletion ?? null, is_moderated: spec.moderated ?? false },
    per_request_limits: spec.limits ?? null,
    supported_parameters: spec.params ?? WITH_TOOLS,
    default_parameters: null,
  };
}

/** What a chat completion used, as the fake counts it, for `priceUsage`. */
export interface UsedTokens {
  /** Every prompt token, cached ones included. */
  readonly prompt: number;
  /** Every completion token, reasoning ones included. */
  readonly completion: number;
  readonly cachedRead: number;
  readonly cacheWrite: number;
  readonly reasoning: number;
  readonly images: number;
}

/** Prices are held as integers of 1e-18 USD so that sums are exact (OpenRouter's strings have at most 12 decimals). */
const SCALE_DIGITS = 18;

function atto(price: string): bigint {
  const match = /^(\d+)(?:\.(\d{1,18}))?$/.exec(price);
  if (!match) throw new Error(`fake catalog: price "${price}" is not a non-negative decimal`);
  return BigInt(match[1]!) * 10n ** BigInt(SCALE_DIGITS) + BigInt((match[2] ?? '').padEnd(SCALE_DIGITS, '0'));
}

/** The prices that hold for a request of `promptTokens` at `nowMs`: base prices, then each override whose conditions hold. */
export function effectivePrices(pricing: Pricing, promptTokens: number, nowMs: number): Prices {
  const prices: Partial<Record<PriceKey, string>> = {};
  for (const key of PRICE_KEYS) if (pricing[key] !== undefined) prices[key] = pricing[key];
  for (const o of pricing.overrides ?? []) {
    if (o.min_prompt_tokens !== undefined && promptTokens < o.min_prompt_tokens) continue;
    if (o.utc_start !== undefined && nowMs < Date.parse(o.utc_start)) continue;
    if (o.utc_end !== undefined && nowMs >= Date.parse(o.utc_end)) continue;
    for (const key of PRICE_KEYS) if (o[key] !== undefined) prices[key] = o[key];
  }
  return prices;
}

/**
 * The cost OpenRouter would report, in USD, from the model's catalog prices (docs/fake-openrouter.md,
 * "Usage and cost"): uncached prompt tokens at `prompt`, cache reads at `input_cache_read` and
 * writes at `input_cache_write` (`prompt` when the model lists none), completion tokens at
 * `completion` except reasoning ones, at `internal_reasoning` when that is above 0, plus `request`
 * once and `image` per image in the prompt. A variable price (`-1`, the auto router) is priced as
 * the default model.
 */
export function priceUsage(catalog: Catalog, model: string, used: UsedTokens, nowMs: number): number {
  let pricing: Pricing = catalog.models.get(model)?.pricing ?? EXTRA_PRICES;
  if (pricing.prompt.startsWith('-')) pricing = catalog.models.get(DEFAULT_MODEL)!.pricing;
  const p = effectivePrices(pricing, used.prompt, nowMs);
  const price = (key: PriceKey, otherwise: bigint): bigint => (p[key] === undefined ? otherwise : atto(p[key]));
  const prompt = price('prompt', 0n);
  const completion = price('completion', 0n);
  const reasoning = price('internal_reasoning', 0n) > 0n ? price('internal_reasoning', 0n) : completion;
  const uncached = Math.max(0, used.prompt - used.cachedRead - used.cacheWrite);
  const total =
    BigInt(uncached) * prompt +
    BigInt(used.cachedRead) * price('input_cache_read', prompt) +
    BigInt(used.cacheWrite) * price('input_cache_write', prompt) +
    BigInt(used.completion - used.reasoning) * completion +
    BigInt(used.reasoning) * reasoning +
    price('request', 0n) +
    BigInt(used.images) * price('image', 0n);
  const digits = total.toString().padStart(SCALE_DIGITS + 1, '0');
  // Number() of the decimal string: the double nearest the exact sum.
  return Number(`${digits.slice(0, -SCALE_DIGITS)}.${digits.slice(-SCALE_DIGITS)}`);
}

/** The models the fake serves: listed entries, and prefixes of ids it accepts without listing them. */
export interface Catalog {
  readonly models: ReadonlyMap<string, CatalogModel>;
  readonly prefixes: readonly string[];
}

/**
 * The catalog: the built-in models, then an entry for each of `extraModels` not among them
 * (invented ids for tests, or models a user wants to try), at $1 and $2 per million prompt and
 * completion tokens. An extra id ending in `*` is a prefix (`mycorp/*`): ids that start with it
 * are served, not listed, and priced like an extra id.
 */
export function buildCatalog(extraModels: readonly string[]): Catalog {
  const models = new Map<string, CatalogModel>(SPECS.map((s) => [s.id, entry(s)]));
  const prefixes: string[] = [];
  for (const id of extraModels) {
    if (id.endsWith('*')) prefixes.push(id.slice(0, -1));
    else if (!models.has(id)) {
      models.set(id, entry({ id, name: `Extra: ${id}`, created: 1_700_000_000, context: 128_000, ...EXTRA_PRICES, tokenizer: 'Other', maxCompletion: null }));
    }
  }
  return { models, prefixes };
}

export function isServed(catalog: Catalog, id: string): boolean {
  return catalog.models.has(id) || catalog.prefixes.some((p) => id.startsWith(p));
}

/**
 * The `output_modalities` filter of `GET /models`: text models unless asked otherwise, `all` for
 * every model, or a comma-separated list (https://openrouter.ai/docs/models, "Query Parameters").
 */
export function filterByOutput(models: Iterable<CatalogModel>, query: string | null): CatalogModel[] {
  const wanted = (query ?? 'text').split(',').map((s) => s.trim()).filter((s) => s !== '');
  const all = [...models];
  if (wanted.includes('all')) return all;
  return all.filter((m) => m.architecture.output_modalities.some((o) => wanted.includes(o)));
}
