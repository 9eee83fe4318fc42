/**
 * The model catalog: OpenRouter's Models API (`GET {upstream}/models`,
 * https://openrouter.ai/docs/api-reference/models) parsed once into a frozen index by id and by
 * canonical slug. Every byte of it is the upstream's and treated as hostile: a field that is
 * missing or of the wrong type is left unknown, an entry without a usable id is skipped and
 * counted, nothing throws, and every list and string read is bounded (docs/bounds.md).
 *
 * Prices are OpenRouter's decimal strings in USD per token (per request, per image), parsed
 * exactly into `Decimal` (an integer and a power of ten): "0.0000025" × 1,000,000 tokens is
 * exactly 2.5, never 2.4999999999999996. A number is made only at the end, by `usd()`.
 */

/** units / 10^scale, exactly. */
export interface Decimal {
  readonly units: bigint;
  readonly scale: number;
}

export const PRICE_KEYS = [
  'prompt', 'completion', 'request', 'image', 'internal_reasoning', 'input_cache_read', 'input_cache_write',
] as const;
export type PriceKey = (typeof PRICE_KEYS)[number];

/** A model's prices; a key is absent when the catalog gave none (or an unreadable one). */
export type Pricing = Readonly<Partial<Record<PriceKey, Decimal>>>;

/** A UTC time-window bound: a time of day (daily windows, `"HH:MM"`) or an instant (ISO 8601). */
export type WindowBound = { readonly daily: number } | { readonly instant: number };

/**
 * One entry of `pricing.overrides`: it applies when every condition it has holds, and then its
 * prices replace the base ones key by key; later applicable entries win per key (OpenRouter's
 * PricingOverride: https://openrouter.ai/docs/client-sdks/typescript/models/pricingoverride).
 */
export interface PriceOverride {
  /** Applies when the prompt has at least this many tokens. */
  readonly minPromptTokens?: number;
  /** Applies from this bound (inclusive) ... */
  readonly utcStart?: WindowBound;
  /** ... to this one (exclusive). Daily windows may wrap midnight (`22:00` to `06:00`). */
  readonly utcEnd?: WindowBound;
  readonly prices: Pricing;
}

export interface CatalogModel {
  readonly id: string;
  readonly canonicalSlug: string | undefined;
  readonly contextLength: number | undefined;
  readonly maxCompletionTokens: number | undefined;
  readonly inputModalities: readonly string[];
  readonly supportedParameters: readonly string[];
  readonly pricing: Pricing;
  readonly overrides: readonly PriceOverride[];
}

/** Past this many entries the rest of the response is not read (OpenRouter lists a few hundred). */
export const MAX_CATALOG_MODELS = 10_000;
/** Longer ids and slugs are not model ids: the entry is skipped (the cooldown map keys ids the same way). */
export const MAX_MODEL_ID_LENGTH = 256;
/** A price string longer than this is not a price (OpenRouter's are under 20 characters). */
export const MAX_PRICE_LENGTH = 64;
/** Entries kept of `supported_parameters` and `input_modalities` (OpenRouter lists under 30). */
export const MAX_LIST_ENTRIES = 64;
/** A list entry longer than this is dropped. */
export const MAX_LIST_ENTRY_LENGTH = 64;
/** Overrides read per model; OpenRouter uses one or two (a long-context tier, an off-peak window). */
export const MAX_OVERRIDES = 16;
/** Tokens, windows and prompt sizes above this are not believed. */
const MAX_TOKENS = 1_000_000_000;
/** 10^-40 USD is far below any price; bigger scales (`1e-9999`) would only cost memory. */
const MAX_SCALE = 40;

// Digits, an optional fraction and an optional exponent; no sign: a negative price (OpenRouter
// writes "-1" for a router whose price is not known in advance) is no price.
const DECIMAL = /^(\d{1,40})(?:\.(\d{1,40}))?(?:[eE]([+-]?\d{1,3}))?$/;
const TIME_OF_DAY = /^(\d{2}):(\d{2})(?::(\d{2}))?$/;
const UTC_OFFSET_SUFFIX = /(?:Z|[+-]\d{2}:\d{2})$/;
const SECONDS_PER_DAY = 86_400;

/** An exact decimal from an OpenRouter price string; undefined when it is not a non-negative decimal. */
export function parseDecimal(text: unknown): Decimal | undefined {
  if (typeof text !== 'string' || text.length > MAX_PRICE_LENGTH) return undefined;
  const m = DECIMAL.exec(text);
  if (!m) return undefined;
  const fraction = m[2] ?? '';
  let scale = fraction.length - Number(m[3] ?? 0);
  let units = BigInt(m[1]! + fraction);
  if (scale < 0) {
    if (-scale > MAX_SCALE) return undefined;
    units *= 10n ** BigInt(-scale);
    scale = 0;
  }
  if (scale > MAX_SCALE) return undefined;
  return Object.freeze({ units, scale });
}

/** `price` × `count` (tokens, requests, images), exactly; a count that is not a non-negative safe integer counts as 0. */
export function times(price: Decimal, count: number): Decimal {
  const n = Number.isSafeInteger(count) && count > 0 ? BigInt(count) : 0n;
  return { units: price.units * n, scale: price.scale };
}

/** a + b, exactly. */
export function plus(a: Decimal, b: Decimal): Decimal {
  if (a.scale === b.scale) return { units: a.units + b.units, scale: a.scale };
  const [lo, hi] = a.scale < b.scale ? [a, b] : [b, a];
  return { units: lo.units * 10n ** BigInt(hi.scale - lo.scale) + hi.units, scale: hi.scale };
}

export const ZERO: Decimal = Object.freeze({ units: 0n, scale: 0 });

/** The number of USD: the nearest double to the exact value, made from its decimal digits. */
export function usd(value: Decimal): number {
  if (value.scale === 0) return Number(value.units);
  const digits = value.units.toString().padStart(value.scale + 1, '0');
  const cut = digits.length - value.scale;
  return Number(`${digits.slice(0, cut)}.${digits.slice(cut)}`);
}

/** A model's prices for a prompt of `promptTokens` at time `at`, with its applicable overrides applied in order. */
export function priceAt(model: CatalogModel, when: { readonly promptTokens: number; readonly at: Date }): Pricing {
  if (model.overrides.length === 0) return model.pricing;
  const ms = when.at.getTime();
  let pricing: Partial<Record<PriceKey, Decimal>> | undefined;
  for (const override of model.overrides) {
    if (!overrideApplies(override, when.promptTokens, ms)) continue;
    pricing ??= { ...model.pricing };
    Object.assign(pricing, override.prices);
  }
  return pricing ?? model.pricing;
}

function overrideApplies(override: PriceOverride, promptTokens: number, ms: number): boolean {
  if (override.minPromptTokens !== undefined && !(promptTokens >= override.minPromptTokens)) return false;
  const { utcStart: start, utcEnd: end } = override;
  if (start === undefined && end === undefined) return true;
  if ((start && 'daily' in start) || (end && 'daily' in end)) {
    const second = Math.floor(ms / 1000) % SECONDS_PER_DAY;
    const from = start && 'daily' in start ? start.daily : 0;
    const to = end && 'daily' in end ? end.daily : SECONDS_PER_DAY;
    // A window whose end is not after its start runs over midnight.
    return from < to ? second >= from && second < to : second >= from || second < to;
  }
  if (start && 'instant' in start && ms < start.instant) return false;
  if (end && 'instant' in end && ms >= end.instant) return false;
  return true;
}

/** The catalog: frozen, looked up by id or canonical slug. */
export class Catalog {
  /** Entries of the response that were not usable models (no id, duplicate id, not an object, past the cap). */
  readonly skipped: number;
  /** Overrides dropped for a condition that could not be read. */
  readonly skippedOverrides: number;
  readonly #byId: Map<string, CatalogModel>;
  readonly #bySlug: Map<string, CatalogModel>;

  constructor(models: readonly CatalogModel[], skipped: number, skippedOverrides: number) {
    this.#byId = new Map();
    this.#bySlug = new Map();
    let duplicates = 0;
    for (const model of models) {
      if (this.#byId.has(model.id)) {
        duplicates++;
        continue;
      }
      this.#byId.set(model.id, model);
      if (model.canonicalSlug !== undefined && !this.#bySlug.has(model.canonicalSlug)) this.#bySlug.set(model.canonicalSlug, model);
    }
    this.skipped = skipped + duplicates;
    this.skippedOverrides = skippedOverrides;
    Object.freeze(this);
  }

  get size(): number {
    return this.#byId.size;
  }

  /** The model with this id, else the one with this canonical slug. */
  get(idOrSlug: string): CatalogModel | undefined {
    return this.#byId.get(idOrSlug) ?? this.#bySlug.get(idOrSlug);
  }

  ids(): IterableIterator<string> {
    return this.#byId.keys();
  }
}

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function boundedString(value: unknown, max: number): string | undefined {
  return typeof value === 'string' && value.length > 0 && value.length <= max ? value : undefined;
}

function count(value: unknown): number | undefined {
  return Number.isSafeInteger(value) && (value as number) > 0 && (value as number) <= MAX_TOKENS ? (value as number) : undefined;
}

function stringList(value: unknown): readonly string[] {
  if (!Array.isArray(value)) return Object.freeze([]);
  const out: string[] = [];
  for (let i = 0; i < value.length && i < MAX_LIST_ENTRIES; i++) {
    const entry = boundedString(value[i], MAX_LIST_ENTRY_LENGTH);
    if (entry !== undefined) out.push(entry);
  }
  return Object.freeze(out);
}

function prices(value: Json): Pricing {
  const out: Partial<Record<PriceKey, Decimal>> = {};
  for (const key of PRICE_KEYS) {
    const price = parseDecimal(value[key]);
    if (price !== undefined) out[key] = price;
  }
  return Object.freeze(out);
}

function windowBound(value: unknown): WindowBound | undefined {
  if (typeof value !== 'string' || value.length > MAX_PRICE_LENGTH) return undefined;
  const time = TIME_OF_DAY.exec(value);
  if (time) {
    const [h, m, s] = [Number(time[1]), Number(time[2]), Number(time[3] ?? 0)];
    return h < 24 && m < 60 && s < 60 ? { daily: h * 3600 + m * 60 + s } : undefined;
  }
  // An instant must say it is UTC (or give its offset): a bare local time would depend on the server's zone.
  if (!UTC_OFFSET_SUFFIX.test(value)) return undefined;
  const instant = Date.parse(value);
  return Number.isFinite(instant) ? { instant } : undefined;
}

/** One override, or undefined when a condition it has cannot be read (it then never applies). */
function override(value: unknown): PriceOverride | undefined {
  if (!isObject(value)) return undefined;
  const result: { minPromptTokens?: number; utcStart?: WindowBound; utcEnd?: WindowBound; prices: Pricing } = { prices: prices(value) };
  if (value.min_prompt_tokens !== undefined) {
    const min = value.min_prompt_tokens === 0 ? 0 : count(value.min_prompt_tokens);
    if (min === undefined) return undefined;
    result.minPromptTokens = min;
  }
  for (const [key, field] of [['utc_start', 'utcStart'], ['utc_end', 'utcEnd']] as const) {
    if (value[key] === undefined) continue;
    const bound = windowBound(value[key]);
    if (bound === undefined) return undefined;
    result[field] = bound;
  }
  // A daily bound and an instant do not make a window.
  if (result.utcStart && result.utcEnd && ('daily' in result.utcStart) !== ('daily' in result.utcEnd)) return undefined;
  return Object.freeze(result);
}

/** One entry of `data`, or undefined when it has no usable id. */
function model(entry: unknown, dropped: { overrides: number }): CatalogModel | undefined {
  if (!isObject(entry)) return undefined;
  const id = boundedString(entry.id, MAX_MODEL_ID_LENGTH);
  if (id === undefined) return undefined;
  const pricing = isObject(entry.pricing) ? entry.pricing : {};
  const overrides: PriceOverride[] = [];
  if (Array.isArray(pricing.overrides)) {
    for (let i = 0; i < pricing.overrides.length; i++) {
      const parsed = i < MAX_OVERRIDES ? override(pricing.overrides[i]) : undefined;
      if (parsed) overrides.push(parsed);
      else dropped.overrides++;
    }
  }
  const topProvider = isObject(entry.top_provider) ? entry.top_provider : {};
  const architecture = isObject(entry.architecture) ? entry.architecture : {};
  return Object.freeze({
    id,
    canonicalSlug: boundedString(entry.canonical_slug, MAX_MODEL_ID_LENGTH),
    contextLength: count(entry.context_length),
    maxCompletionTokens: count(topProvider.max_completion_tokens),
    inputModalities: stringList(architecture.input_modalities),
    supportedParameters: stringList(entry.supported_parameters),
    pricing: prices(pricing),
    overrides: Object.freeze(overrides),
  });
}

/**
 * The catalog from a parsed Models API response (`{ data: [...] }`). Never throws: a response of
 * another shape gives an empty catalog, which the refresher treats as a failed refresh.
 */
export function parseCatalog(json: unknown): Catalog {
  const data = isObject(json) && Array.isArray(json.data) ? json.data : [];
  const models: CatalogModel[] = [];
  const dropped = { overrides: 0 };
  let skipped = Math.max(0, data.length - MAX_CATALOG_MODELS);
  for (let i = 0; i < data.length && i < MAX_CATALOG_MODELS; i++) {
    const parsed = model(data[i], dropped);
    if (parsed) models.push(parsed);
    else skipped++;
  }
  return new Catalog(models, skipped, dropped.overrides);
}
