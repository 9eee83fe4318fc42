/**
 * The fake OpenRouter's model catalog, served at `GET /api/v1/models` and used to refuse unknown
 * models the way OpenRouter does. Entries have the shape of OpenRouter's Models API
 * (https://openrouter.ai/docs/models: id, canonical_slug, name, created, description,
 * context_length, architecture, pricing as decimal strings in USD per token, top_provider,
 * per_request_limits, supported_parameters, default_parameters). The ids are real OpenRouter ids,
 * every model the shipped rules.yaml names among them; names, dates, limits and prices are
 * illustrative and not kept current.
 */

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
  readonly pricing: Readonly<Record<string, string>>;
  readonly top_provider: { readonly context_length: number; readonly max_completion_tokens: number | null; readonly is_moderated: boolean };
  readonly per_request_limits: null;
  readonly supported_parameters: readonly string[];
  readonly default_parameters: null;
}

/** The model OpenRouter uses when a request names none: the account's default, here a fixed one. */
export const DEFAULT_MODEL = 'openai/gpt-4o-mini';

const SAMPLING = ['max_tokens', 'temperature', 'top_p', 'stop', 'frequency_penalty', 'presence_penalty', 'seed'];
const WITH_TOOLS = [...SAMPLING, 'tools', 'tool_choice', 'response_format', 'structured_outputs'];
const REASONING = ['max_tokens', 'seed', 'tools', 'tool_choice', 'response_format', 'structured_outputs', 'reasoning', 'include_reasoning'];

interface Spec {
  readonly id: string;
  readonly name: string;
  readonly created: number;
  readonly context: number;
  /** USD per token, as OpenRouter writes them. */
  readonly prompt: string;
  readonly completion: string;
  readonly input?: readonly string[];
  readonly output?: readonly string[];
  readonly tokenizer: string;
  readonly maxCompletion?: number | null;
  readonly moderated?: boolean;
  readonly params?: readonly string[];
}

const SPECS: readonly Spec[] = [
  { id: 'openai/gpt-4o-mini', name: 'OpenAI: GPT-4o-mini', created: 1721260800, context: 128_000, prompt: '0.00000015', completion: '0.0000006', input: ['text', 'image', 'file'], tokenizer: 'GPT', maxCompletion: 16_384, moderated: true },
  { id: 'openai/gpt-4o-mini-2024-07-18', name: 'OpenAI: GPT-4o-mini (2024-07-18)', created: 1721260800, context: 128_000, prompt: '0.00000015', completion: '0.0000006', input: ['text', 'image', 'file'], tokenizer: 'GPT', maxCompletion: 16_384, moderated: true },
  { id: 'openai/gpt-4o', name: 'OpenAI: GPT-4o', created: 1715558400, context: 128_000, prompt: '0.0000025', completion: '0.00001', input: ['text', 'image', 'file'], tokenizer: 'GPT', maxCompletion: 16_384, moderated: true },
  { id: 'openai/o1', name: 'OpenAI: o1', created: 1734459999, context: 200_000, prompt: '0.000015', completion: '0.00006', input: ['text', 'image', 'file'], tokenizer: 'GPT', maxCompletion: 100_000, moderated: true, params: REASONING },
  { id: 'anthropic/claude-3.5-sonnet', name: 'Anthropic: Claude 3.5 Sonnet', created: 1729555200, context: 200_000, prompt: '0.000003', completion: '0.000015', input: ['text', 'image', 'file'], tokenizer: 'Claude', maxCompletion: 8_192, moderated: true },
  { id: 'anthropic/claude-3-haiku', name: 'Anthropic: Claude 3 Haiku', created: 1710288000, context: 200_000, prompt: '0.00000025', completion: '0.00000125', input: ['text', 'image'], tokenizer: 'Claude', maxCompletion: 4_096, moderated: true },
  { id: 'google/gemini-2.0-flash-001', name: 'Google: Gemini 2.0 Flash', created: 1738769413, context: 1_048_576, prompt: '0.0000001', completion: '0.0000004', input: ['text', 'image', 'file', 'audio'], tokenizer: 'Gemini', maxCompletion: 8_192 },
  { id: 'google/gemma-2-9b-it:free', name: 'Google: Gemma 2 9B (free)', created: 1719532800, context: 8_192, prompt: '0', completion: '0', tokenizer: 'Gemini', maxCompletion: 8_192, params: SAMPLING },
  { id: 'meta-llama/llama-3.1-8b-instruct', name: 'Meta: Llama 3.1 8B Instruct', created: 1721692800, context: 131_072, prompt: '0.00000002', completion: '0.00000005', tokenizer: 'Llama3', maxCompletion: 16_384 },
  { id: 'meta-llama/llama-3.1-8b-instruct:free', name: 'Meta: Llama 3.1 8B Instruct (free)', created: 1721692800, context: 131_072, prompt: '0', completion: '0', tokenizer: 'Llama3', maxCompletion: 4_096, params: SAMPLING },
  { id: 'mistralai/mistral-small', name: 'Mistral Small', created: 1704844800, context: 32_000, prompt: '0.0000002', completion: '0.0000006', tokenizer: 'Mistral', maxCompletion: null },
  { id: 'mistralai/mistral-large', name: 'Mistral Large', created: 1708905600, context: 128_000, prompt: '0.000002', completion: '0.000006', tokenizer: 'Mistral', maxCompletion: null },
  { id: 'deepseek/deepseek-chat', name: 'DeepSeek: DeepSeek V3', created: 1735241453, context: 163_840, prompt: '0.0000003', completion: '0.00000085', tokenizer: 'DeepSeek', maxCompletion: 163_840 },
  { id: 'openrouter/auto', name: 'Auto Router', created: 1699401600, context: 2_000_000, prompt: '-1', completion: '-1', input: ['text', 'image'], tokenizer: 'Router', maxCompletion: null },
  { id: 'openai/text-embedding-3-small', name: 'OpenAI: Text Embedding 3 Small', created: 1705953600, context: 8_192, prompt: '0.00000002', completion: '0', output: ['embeddings'], tokenizer: 'GPT', maxCompletion: null, moderated: true, params: [] },
];

function entry(spec: Spec): CatalogModel {
  const input = spec.input ?? ['text'];
  const output = spec.output ?? ['text'];
  return {
    id: spec.id,
    canonical_slug: spec.id,
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
    pricing: { prompt: spec.prompt, completion: spec.completion, request: '0', image: '0', web_search: '0', internal_reasoning: '0' },
    top_provider: { context_length: spec.context, max_completion_tokens: spec.maxCompletion ?? null, is_moderated: spec.moderated ?? false },
    per_request_limits: null,
    supported_parameters: spec.params ?? WITH_TOOLS,
    default_parameters: null,
  };
}

/** The models the fake serves: listed entries, and prefixes of ids it accepts without listing them. */
export interface Catalog {
  readonly models: ReadonlyMap<string, CatalogModel>;
  readonly prefixes: readonly string[];
}

/**
 * The catalog: the built-in models, then an entry for each of `extraModels` not among them
 * (invented ids for tests, or models a user wants to try), priced like `fakeUsage()` reports. An
 * extra id ending in `*` is a prefix (`mycorp/*`): ids that start with it are served, not listed.
 */
export function buildCatalog(extraModels: readonly string[]): Catalog {
  const models = new Map<string, CatalogModel>(SPECS.map((s) => [s.id, entry(s)]));
  const prefixes: string[] = [];
  for (const id of extraModels) {
    if (id.endsWith('*')) prefixes.push(id.slice(0, -1));
    else if (!models.has(id)) {
      models.set(id, entry({ id, name: `Extra: ${id}`, created: 1_700_000_000, context: 128_000, prompt: '0.000001', completion: '0.000002', tokenizer: 'Other', maxCompletion: null }));
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
