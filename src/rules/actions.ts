import type { ChooseRoute } from './choose.js';
import type { JsonObject } from './decision.js';
import type { Api } from './shapes.js';
import type { CascadeRoute } from './cascade.js';
import type { SplitRoute } from './split.js';
import type { TierFromRoute } from './tier-from.js';

/**
 * What a route does to a request, resolved at load (tier merged in) and applied per request
 * without touching the client's body: changed parts are copied, the rest is shared.
 */

export type SystemPromptAction = { readonly prepend: string } | { readonly replace: string };

/**
 * A rule's own retry settings; what it leaves out comes from the global settings. Compiled once
 * with the rule and never changed: `withRetryOverride` (src/upstream/retry.ts) caches the merged
 * policy by this object's identity.
 */
export interface RetryOverride {
  readonly maxAttempts?: number;
  readonly statuses?: ReadonlySet<number>;
  readonly budgetMs?: number;
}

export interface RewriteRoute {
  readonly kind: 'rewrite';
  readonly tier: string | undefined;
  readonly model: string;
  readonly fallbacks: readonly string[];
  readonly provider: Readonly<JsonObject> | undefined;
  readonly maxTokens: number | undefined;
  readonly params: Readonly<JsonObject> | undefined;
  readonly systemPrompt: SystemPromptAction | undefined;
  readonly headers: Readonly<Record<string, string>> | undefined;
  readonly retry: RetryOverride | undefined;
}

export interface PassRoute {
  readonly kind: 'pass';
  readonly retry: RetryOverride | undefined;
}

export interface RejectRoute {
  readonly kind: 'reject';
  readonly status: number;
  readonly message: string;
}

export type CompiledRoute = RewriteRoute | PassRoute | RejectRoute | ChooseRoute | TierFromRoute | SplitRoute | CascadeRoute;

export interface AppliedRoute {
  readonly body: Readonly<JsonObject>;
  readonly changed: boolean;
}

/**
 * `params` that mean something in some request shapes only (issue 18, item 2): each names the
 * shapes whose API has that field. In any other shape the parameter is skipped (the upstream
 * would refuse it or ignore it), and a rule restricted by `request.api` to such a shape does
 * not load (compile.ts). Parameters not listed are sent in every shape.
 */
export const SHAPE_PARAMS: Readonly<Record<string, readonly Api[]>> = {
  // Chat's output format; Responses has `text.format`, Messages has none.
  response_format: ['chat'],
  // Chat's stop strings and choice count: Responses has neither, Messages has `stop_sequences`.
  stop: ['chat'],
  n: ['chat'],
  logprobs: ['chat'],
  // The Responses API's output format (https://platform.openai.com/docs/api-reference/responses/create).
  text: ['responses'],
  // Anthropic's names (https://docs.anthropic.com/en/api/messages): chat and Responses say `stop` and `reasoning`.
  stop_sequences: ['messages'],
  thinking: ['messages'],
};

/** `params` as a shape receives them: those that mean nothing in it are left out. */
function paramsFor(params: Readonly<JsonObject>, api: Api): Readonly<JsonObject> {
  let kept: JsonObject | undefined;
  for (const key in params) {
    const shapes = SHAPE_PARAMS[key];
    if (shapes === undefined || shapes.includes(api)) continue;
    kept ??= { ...params };
    delete kept[key];
  }
  return kept ?? params;
}

function isObject(v: unknown): v is JsonObject {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** Deep merge for provider preferences: objects merge key by key, anything else is replaced by `over`. */
export function deepMerge(base: unknown, over: Readonly<JsonObject>): JsonObject {
  const out: JsonObject = isObject(base) ? { ...base } : {};
  for (const [key, value] of Object.entries(over)) {
    out[key] = isObject(value) && isObject(out[key]) ? deepMerge(out[key], value) : value;
  }
  return out;
}

/** The messages with the route's system prompt; every message of the client's is kept but those `replace` replaces. */
function withSystemPrompt(list: readonly unknown[], action: SystemPromptAction): unknown[] {
  if ('replace' in action) {
    const conversation = list.filter((m) => !isObject(m) || (m.role !== 'system' && m.role !== 'developer'));
    // A body of instructions only (no user, assistant or tool message) would go upstream as the
    // rule's prompt alone, the client's whole request dropped and still billed: keep them behind it.
    return [{ role: 'system', content: action.replace }, ...(conversation.length > 0 ? conversation : list)];
  }
  const first = list[0];
  if (isObject(first) && first.role === 'system' && typeof first.content === 'string') {
    return [{ ...first, content: `${action.prepend}\n\n${first.content}` }, ...list.slice(1)];
  }
  return [{ role: 'system', content: action.prepend }, ...list];
}

/** `instructions` (Responses) or `system` (Messages) with the route's system prompt. */
function withTopSystem(current: unknown, action: SystemPromptAction): unknown {
  if ('replace' in action) return action.replace;
  if (typeof current === 'string' && current !== '') return `${action.prepend}\n\n${current}`;
  // Messages' system as text blocks: the prompt goes first, as a block of its own.
  if (Array.isArray(current) && current.length > 0) return [{ type: 'text', text: action.prepend }, ...current];
  return action.prepend;
}

/**
 * Applies a rewrite route to a body; `changed: false` means the body is the client's, untouched.
 * Per shape (src/rules/shapes.ts): the cap is `max_tokens` (or `max_completion_tokens`) in chat,
 * `max_output_tokens` in Responses, `max_tokens` in Messages; the system prompt goes into the
 * messages in chat, `instructions` in Responses and `system` in Messages; fallbacks become
 * OpenRouter's `models` list in chat only (the other shapes get them as proxy-side retries:
 * the decision's `fallbacks`).
 */
export function applyRewrite(route: RewriteRoute, body: Readonly<JsonObject>, api: Api = 'chat'): AppliedRoute {
  const out: JsonObject = { ...body };
  let changed = false;

  if (body.model !== route.model) {
    out.model = route.model;
    changed = true;
  }
  if (api === 'chat') {
    if (route.fallbacks.length > 0) {
      // OpenRouter's native fallback list: the routed model first, then the fallbacks, no repeats.
      out.models = [...new Set([route.model, ...route.fallbacks])];
      changed = true;
    } else if (changed && Array.isArray(body.models)) {
      // The client's own list named other models; the rule's model wins.
      delete out.models;
    }
  } else if (changed && Array.isArray(body.models)) {
    delete out.models;
  }
  if (route.provider) {
    out.provider = deepMerge(body.provider, route.provider);
    changed = true;
  }
  if (route.maxTokens !== undefined) {
    // A cap: lower the client's value, set one when absent; never raise it.
    const field = api === 'responses' ? 'max_output_tokens'
      : api === 'chat' && typeof body.max_completion_tokens === 'number' && typeof body.max_tokens !== 'number' ? 'max_completion_tokens' : 'max_tokens';
    const current = body[field];
    if (typeof current !== 'number' || current > route.maxTokens) {
      out[field] = route.maxTokens;
      changed = true;
    }
  }
  if (route.params) {
    const params = paramsFor(route.params, api);
    if (Object.keys(params).length > 0) {
      Object.assign(out, params);
      changed = true;
    }
  }
  if (route.systemPrompt) {
    if (api === 'responses') {
      out.instructions = withTopSystem(body.instructions, route.systemPrompt);
      changed = true;
    } else if (api === 'messages') {
      out.system = withTopSystem(body.system, route.systemPrompt);
      changed = true;
    } else if (Array.isArray(body.messages)) {
      // Only onto a list of messages: anything else would be replaced by the system prompt alone (the
      // chat route refuses such bodies before routing, see invalidMessages in decision.ts).
      out.messages = withSystemPrompt(body.messages, route.systemPrompt);
      changed = true;
    }
  }
  return changed ? { body: out, changed } : { body, changed };
}
