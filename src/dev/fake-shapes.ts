import type { FakeUsage } from './fake-openrouter.js';

/**
 * The two API shapes the fake OpenRouter serves besides chat completions (issue 18): OpenAI's
 * Responses API, as OpenRouter serves it in beta at `/api/v1/responses`
 * (https://openrouter.ai/docs/api-reference/responses-api/overview, event names from
 * https://platform.openai.com/docs/api-reference/responses-streaming), and Anthropic's Messages
 * API at `/api/v1/messages` (https://docs.anthropic.com/en/api/messages-streaming). Pure
 * functions: the server (fake-openrouter.ts) prices the usage, picks the answer and applies the
 * faults to the events these return.
 */

/** One generation, whichever shape asked for it. */
export interface ShapeReply {
  /** The request's sequence number: ids derive from it, so they are stable across runs. */
  readonly seq: number;
  readonly model: string;
  /** The words of the answer actually given (cut at the request's output cap). */
  readonly words: readonly string[];
  /** True when the output cap cut the answer. */
  readonly truncated: boolean;
  readonly usage: FakeUsage;
}

/** A Server-Sent Event with an `event:` line, as both shapes send them. */
function sse(name: string, data: unknown): string {
  return `event: ${name}\ndata: ${JSON.stringify(data)}\n\n`;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** A positive whole-number output cap, or undefined (absent or invalid: the fake does not cap). */
export function outputCap(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isSafeInteger(value) && value > 0 ? value : undefined;
}

// ---------------------------------------------------------------- Responses

/** What a Responses request's prompt is made of, for the fake's characters / 4 token count. */
export function responsesPrompt(body: Record<string, unknown>): unknown[] {
  return [body.instructions ?? '', body.input];
}

/** Usage in the Responses API's terms, with OpenRouter's `cost` (and BYOK fields) when it reports them. */
export function responsesUsage(usage: FakeUsage): Record<string, unknown> {
  return {
    input_tokens: usage.prompt_tokens,
    input_tokens_details: { cached_tokens: usage.prompt_tokens_details.cached_tokens },
    output_tokens: usage.completion_tokens,
    output_tokens_details: { reasoning_tokens: usage.completion_tokens_details.reasoning_tokens },
    total_tokens: usage.total_tokens,
    ...(usage.cost === undefined ? {} : { cost: usage.cost, cost_details: usage.cost_details }),
    is_byok: usage.is_byok,
  };
}

function responsesObject(reply: ShapeReply, body: Record<string, unknown>, status: string, output: unknown[], usage: unknown): Record<string, unknown> {
  return {
    id: `resp_fake${reply.seq}`, object: 'response', created_at: 1_700_000_000 + reply.seq, status,
    model: reply.model, output,
    error: null,
    incomplete_details: status === 'incomplete' ? { reason: 'max_output_tokens' } : null,
    instructions: body.instructions ?? null,
    max_output_tokens: outputCap(body.max_output_tokens) ?? null,
    parallel_tool_calls: true, tool_choice: 'auto', tools: [], temperature: null, top_p: null, metadata: {},
    usage,
  };
}

function responsesMessage(reply: ShapeReply, status: string, text: string | undefined): Record<string, unknown> {
  return {
    id: `msg_fake${reply.seq}`, type: 'message', role: 'assistant', status,
    content: text === undefined ? [] : [{ type: 'output_text', text, annotations: [] }],
  };
}

/** The final `response` object: `completed`, or `incomplete` when `max_output_tokens` cut the answer. */
export function responsesBody(reply: ShapeReply, body: Record<string, unknown>): Record<string, unknown> {
  const status = reply.truncated ? 'incomplete' : 'completed';
  return responsesObject(reply, body, status, [responsesMessage(reply, status, reply.words.join(''))], responsesUsage(reply.usage));
}

/**
 * The Responses stream: created, in_progress, output_item.added, content_part.added, one
 * output_text.delta per word, output_text.done, content_part.done, output_item.done, then
 * response.completed (or response.incomplete) carrying the final response and its usage. Every
 * event carries its `sequence_number`.
 */
export function responsesEvents(reply: ShapeReply, body: Record<string, unknown>): string[] {
  const itemId = `msg_fake${reply.seq}`;
  const text = reply.words.join('');
  const final = responsesBody(reply, body);
  const pending = responsesObject(reply, body, 'in_progress', [], null);
  const at = { item_id: itemId, output_index: 0, content_index: 0 };
  const part = (partText: string): Record<string, unknown> => ({ type: 'output_text', text: partText, annotations: [] });
  const payloads: [string, Record<string, unknown>][] = [
    ['response.created', { response: pending }],
    ['response.in_progress', { response: pending }],
    ['response.output_item.added', { output_index: 0, item: responsesMessage(reply, 'in_progress', undefined) }],
    ['response.content_part.added', { ...at, part: part('') }],
    ...reply.words.map((delta): [string, Record<string, unknown>] => ['response.output_text.delta', { ...at, delta, logprobs: [] }]),
    ['response.output_text.done', { ...at, text, logprobs: [] }],
    ['response.content_part.done', { ...at, part: part(text) }],
    ['response.output_item.done', { output_index: 0, item: (final.output as unknown[])[0] }],
    [reply.truncated ? 'response.incomplete' : 'response.completed', { response: final }],
  ];
  return payloads.map(([type, data], sequence) => sse(type, { type, sequence_number: sequence, ...data }));
}

/**
 * A Responses stream's in-band failure: an `error` event, then `response.failed` whose response
 * carries the error, as OpenAI's API ends a stream that fails after it began.
 */
export function responsesErrorEvents(reply: ShapeReply, body: Record<string, unknown>, sequence: number, code: string, message: string): string {
  const failed = { ...responsesObject(reply, body, 'failed', [], null), error: { code, message } };
  return sse('error', { type: 'error', sequence_number: sequence, code, message, param: null })
    + sse('response.failed', { type: 'response.failed', sequence_number: sequence + 1, response: failed });
}

// ---------------------------------------------------------------- Messages

/** What a Messages request's prompt is made of, for the fake's characters / 4 token count. */
export function messagesPrompt(body: Record<string, unknown>): unknown[] {
  return [body.system ?? '', ...(Array.isArray(body.messages) ? body.messages : [])];
}

/**
 * Usage in Anthropic's terms: `input_tokens` are the uncached prompt tokens only, cache reads and
 * writes are counted apart (https://docs.anthropic.com/en/docs/build-with-claude/prompt-caching);
 * OpenRouter's `cost` rides along when it reports one, as in its other shapes.
 */
export function messagesUsage(usage: FakeUsage): Record<string, unknown> {
  const cached = usage.prompt_tokens_details.cached_tokens;
  const written = usage.prompt_tokens_details.cache_write_tokens;
  return {
    input_tokens: usage.prompt_tokens - cached - written,
    cache_creation_input_tokens: written,
    cache_read_input_tokens: cached,
    output_tokens: usage.completion_tokens,
    ...(usage.cost === undefined ? {} : { cost: usage.cost }),
  };
}

function messageObject(reply: ShapeReply, content: unknown[], stopReason: string | null, usage: Record<string, unknown>): Record<string, unknown> {
  return {
    id: `msg_fake${reply.seq}`, type: 'message', role: 'assistant', model: reply.model, content,
    stop_reason: stopReason, stop_sequence: null, usage,
  };
}

function stopReason(reply: ShapeReply): string {
  return reply.truncated ? 'max_tokens' : 'end_turn';
}

export function messagesBody(reply: ShapeReply): Record<string, unknown> {
  return messageObject(reply, [{ type: 'text', text: reply.words.join('') }], stopReason(reply), messagesUsage(reply.usage));
}

/**
 * The Messages stream: message_start (usage with the input tokens, no output yet),
 * content_block_start, ping, one content_block_delta (text_delta) per word, content_block_stop,
 * message_delta (stop_reason and the cumulative usage, output tokens included), message_stop.
 */
export function messagesEvents(reply: ShapeReply): string[] {
  const usage = messagesUsage(reply.usage);
  const { cost: _cost, ...startUsage } = usage;
  return [
    sse('message_start', { type: 'message_start', message: messageObject(reply, [], null, { ...startUsage, output_tokens: 0 }) }),
    sse('content_block_start', { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } }),
    sse('ping', { type: 'ping' }),
    ...reply.words.map((text) => sse('content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text } })),
    sse('content_block_stop', { type: 'content_block_stop', index: 0 }),
    sse('message_delta', { type: 'message_delta', delta: { stop_reason: stopReason(reply), stop_sequence: null }, usage }),
    sse('message_stop', { type: 'message_stop' }),
  ];
}

/** Anthropic's error `type` for a status (https://docs.anthropic.com/en/api/errors). */
const ANTHROPIC_ERROR_TYPES: Record<number, string> = {
  400: 'invalid_request_error', 401: 'authentication_error', 402: 'billing_error', 403: 'permission_error',
  404: 'not_found_error', 413: 'request_too_large', 429: 'rate_limit_error', 500: 'api_error', 529: 'overloaded_error',
};

/** Anthropic's error body: `{"type":"error","error":{"type":...,"message":...}}`. */
export function anthropicErrorBody(status: number, message: string): { type: 'error'; error: { type: string; message: string } } {
  return { type: 'error', error: { type: ANTHROPIC_ERROR_TYPES[status] ?? (status >= 500 ? 'api_error' : 'invalid_request_error'), message } };
}

/** A Messages stream's in-band error: `event: error` with Anthropic's error body (`overloaded_error` unless the fault names a type). */
export function messagesErrorEvent(type: string | undefined, message: string | undefined): string {
  return sse('error', { type: 'error', error: { type: type ?? 'overloaded_error', message: message ?? 'Overloaded' } });
}

/** Why a Messages request is refused before any answer, in Anthropic's words; undefined when it is valid. */
export function messagesRequestProblem(body: Record<string, unknown>): string | undefined {
  if (!Array.isArray(body.messages)) return 'messages: Field required';
  if (outputCap(body.max_tokens) === undefined) return 'max_tokens: Field required';
  return undefined;
}

/** Whether `value` is a JSON object body: both shapes need one. */
export function isObjectBody(value: unknown): value is Record<string, unknown> {
  return isRecord(value);
}
