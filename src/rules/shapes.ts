import type { JsonObject } from './decision.js';

/**
 * The three request shapes OpenRouter serves (issue 18, item 1): chat completions, OpenAI's
 * Responses API and Anthropic's Messages API. The rules read every shape through one view, the
 * chat shape's: `request.text`, `request.tokens`, `request.has_images`, `request.json_mode`,
 * `request.max_tokens`, `request.messages` and the classifier mean the same thing whatever the
 * client sent. The view is built once per request and only when a rule reads such a field (a chat
 * body is its own view: nothing is copied); `body.*` fields still read the client's own body.
 *
 * Pure and total over any JSON: a part of the wrong shape is skipped, never thrown on.
 */

export const APIS = ['chat', 'responses', 'messages'] as const;
export type Api = (typeof APIS)[number];

/**
 * Where OpenRouter serves each shape, below its `/api/v1` base
 * (https://openrouter.ai/docs/api-reference/responses-api, .../anthropic-messages): routed
 * requests, shadow copies and cascade tiers of a shape all go there.
 */
export const UPSTREAM_PATHS: Readonly<Record<Api, string>> = { chat: '/chat/completions', responses: '/responses', messages: '/messages' };

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** A Responses input part or a Messages content block, as a chat content part (text and images only). */
function chatPart(part: unknown): Json | undefined {
  if (!isObject(part)) return undefined;
  switch (part.type) {
    case 'input_text':
    case 'output_text':
    case 'text':
      return typeof part.text === 'string' ? { type: 'text', text: part.text } : undefined;
    case 'input_image':
    case 'image':
      // The image itself is not needed to route: that there is one is.
      return { type: 'image_url', image_url: { url: '' } };
    default:
      return undefined;
  }
}

/** Content as chat has it: a string stays, a list keeps its text and image parts. */
function chatContent(content: unknown): unknown {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return '';
  const parts: Json[] = [];
  for (const part of content) {
    const converted = chatPart(part);
    if (converted !== undefined) parts.push(converted);
  }
  return parts;
}

/** Whether a Messages content list is only tool results: a tool's answer, not the user's input. */
function onlyToolResults(content: unknown): boolean {
  return Array.isArray(content) && content.length > 0 && content.every((block) => isObject(block) && block.type === 'tool_result');
}

/** The Responses API's `text.format` (json_object, json_schema) as chat's `response_format`. */
function responseFormatOf(body: Readonly<JsonObject>): unknown {
  const text = body.text;
  const format = isObject(text) ? text.format : undefined;
  return isObject(format) && (format.type === 'json_object' || format.type === 'json_schema') ? { type: format.type } : undefined;
}

/** A Responses body (`input` a string or items, `instructions`) in the chat shape. */
function responsesView(body: Readonly<JsonObject>): JsonObject {
  const messages: Json[] = [];
  if (typeof body.instructions === 'string') messages.push({ role: 'system', content: body.instructions });
  const input = body.input;
  if (typeof input === 'string') {
    messages.push({ role: 'user', content: input });
  } else if (Array.isArray(input)) {
    for (const item of input) {
      if (!isObject(item)) continue;
      // Items without a type are messages (the easy input form); function calls and their outputs are not user input.
      if (item.type !== undefined && item.type !== 'message') continue;
      const role = item.role === 'developer' ? 'system' : item.role;
      if (role === 'user' || role === 'assistant' || role === 'system') messages.push({ role, content: chatContent(item.content) });
    }
  }
  return withCommon(body, messages, body.max_output_tokens, responseFormatOf(body), body.user);
}

/** A Messages body (`system`, `messages` with content blocks) in the chat shape; tool results become tool messages. */
function messagesView(body: Readonly<JsonObject>): JsonObject {
  const messages: Json[] = [];
  const system = body.system;
  if (typeof system === 'string' || Array.isArray(system)) messages.push({ role: 'system', content: chatContent(system) });
  if (Array.isArray(body.messages)) {
    for (const message of body.messages) {
      if (!isObject(message) || (message.role !== 'user' && message.role !== 'assistant')) continue;
      const role = message.role === 'user' && onlyToolResults(message.content) ? 'tool' : message.role;
      messages.push({ role, content: chatContent(message.content) });
    }
  }
  // Anthropic's end-user id is `metadata.user_id` (https://docs.anthropic.com/en/api/messages).
  const metadata = body.metadata;
  return withCommon(body, messages, body.max_tokens, undefined, isObject(metadata) ? metadata.user_id : undefined);
}

/** `user`: the shape's end-user id, as chat's `user` (USER_SOURCE=body.user reads it in every shape). */
function withCommon(body: Readonly<JsonObject>, messages: Json[], maxTokens: unknown, responseFormat: unknown, user: unknown): JsonObject {
  const view: JsonObject = { messages };
  if (user !== undefined) view.user = user;
  if (typeof body.model === 'string') view.model = body.model;
  if (body.stream === true) view.stream = true;
  if (Array.isArray(body.tools)) view.tools = body.tools;
  if (typeof maxTokens === 'number') view.max_tokens = maxTokens;
  if (responseFormat !== undefined) view.response_format = responseFormat;
  return view;
}

/**
 * Views already built, by body: a request's stages (the account step, the rules, the classifier,
 * the fallbacks' fit, the cascade, the prompt's hash) each ask for the view of the same body, and
 * it is built once. Weak: an entry goes with its body, which no longer than its request lives.
 */
const views = new WeakMap<Readonly<JsonObject>, { readonly api: Api; readonly view: Readonly<JsonObject> }>();

/** The body of `api` as the rules read it: the chat shape (a chat body is returned as it is). */
export function chatView(api: Api, body: Readonly<JsonObject>): Readonly<JsonObject> {
  if (api === 'chat') return body;
  const built = views.get(body);
  if (built !== undefined && built.api === api) return built.view;
  const view = api === 'responses' ? responsesView(body) : messagesView(body);
  views.set(body, { api, view });
  return view;
}
