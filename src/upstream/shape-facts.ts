import { clipText } from '../bounded-text.js';
import { endsAtEventBoundary } from './sse.js';
import { errorOf, num, objectOr, usdOf, type InbandError, type TokenUsage } from './response-tap.js';

/**
 * What the response tap records, read from the two other API shapes OpenRouter serves (issue 18,
 * item 3): OpenAI's Responses API (`/api/v1/responses`) and Anthropic's Messages API
 * (`/api/v1/messages`). Pure functions over already-parsed JSON: the caller parses a body (or one
 * SSE event's data) as the chat tap does and hands the value here, so the same bounds apply
 * (event size cap, JSON window scan).
 *
 * Event shapes:
 * - Responses: https://platform.openai.com/docs/api-reference/responses-streaming
 *   (`response.created` … `response.output_text.delta` … `response.completed` / `response.failed`
 *   / `response.incomplete`, and `error`); usage is on the terminal event's `response.usage`.
 * - Messages: https://docs.anthropic.com/en/docs/build-with-claude/streaming
 *   (`message_start` with the input usage, `content_block_delta`, `message_delta` with
 *   `usage.output_tokens`, `message_stop`, and `error`).
 *
 * Every reader is total over hostile JSON, as the chat tap's are: a value of the wrong type is
 * skipped, never converted or thrown on; counts are finite and not negative (`num`).
 */

export type ShapeApi = 'responses' | 'messages';

/** The facts one body or one SSE event carries; undefined where it carries none. */
export interface ShapeFacts {
  /** The response's / message's `id` (OpenRouter's generation id). */
  readonly id: string | undefined;
  /** The model that served it. */
  readonly model: string | undefined;
  /**
   * Usage as this body or event reports it. A Messages stream splits it over `message_start` and
   * `message_delta`: fold those with MessagesUsageAccumulator rather than taking one event's.
   */
  readonly usage: TokenUsage | undefined;
  /** Responses: `incomplete_details.reason` when incomplete, else `status`; Messages: `stop_reason`. */
  readonly finishReason: string | undefined;
  /** The event carries generated content (text, reasoning or tool input): the time to first token. */
  readonly content: boolean;
  /** The event ends the stream by the shape's own terms; a stream without one was cut. */
  readonly terminal: boolean;
  readonly inbandError: InbandError | undefined;
}

type Json = Record<string, unknown>;

const NO_FACTS: ShapeFacts = {
  id: undefined, model: undefined, usage: undefined, finishReason: undefined, content: false, terminal: false, inbandError: undefined,
};

/** An in-band error's message (the upstream's or ours) is kept up to this many characters. */
const MAX_ERROR_MESSAGE_CHARS = 1024;

function stringOf(v: unknown): string | undefined {
  return typeof v === 'string' ? clipText(v) : undefined;
}

/** The event's type: its data's `type` (both shapes repeat the SSE event name there), else the SSE `event:` name. */
function eventType(eventName: string | undefined, data: Json): string | undefined {
  return typeof data.type === 'string' ? data.type : eventName;
}

function nonEmptyString(v: unknown): boolean {
  return typeof v === 'string' && v.length > 0;
}

/** OpenRouter's own additions to a usage object, in both shapes as in chat. */
function openRouterCost(u: Json): Pick<TokenUsage, 'cost' | 'upstreamInferenceCost' | 'byok'> {
  return { cost: usdOf(u.cost), upstreamInferenceCost: usdOf(objectOr(u.cost_details).upstream_inference_cost), byok: u.is_byok === true };
}

// ---------------------------------------------------------------- Responses

/** A Responses `usage` object: `input_tokens` already counts the cached ones (`input_tokens_details.cached_tokens`). */
export function responsesUsageOf(raw: unknown): TokenUsage | undefined {
  if (raw === null || typeof raw !== 'object') return undefined;
  const u = raw as Json;
  const inputDetails = objectOr(u.input_tokens_details);
  return {
    prompt: num(u.input_tokens),
    completion: num(u.output_tokens),
    reasoning: num(objectOr(u.output_tokens_details).reasoning_tokens),
    cached: num(inputDetails.cached_tokens),
    // Not in OpenAI's schema; read where OpenRouter reports it, as its chat usage does.
    cacheWrite: num(inputDetails.cache_write_tokens),
    ...openRouterCost(u),
  };
}

/** Statuses of a response still being generated: no finish reason yet (a stream cut there has none, as in chat). */
const RESPONSES_UNFINISHED_STATUSES: ReadonlySet<unknown> = new Set(['in_progress', 'queued']);

/** The finish reason of a Responses `response` object: why it is incomplete, else its status once it is final. */
function responsesFinishReason(response: Json): string | undefined {
  if (RESPONSES_UNFINISHED_STATUSES.has(response.status)) return undefined;
  if (response.status === 'incomplete') {
    const reason = stringOf(objectOr(response.incomplete_details).reason);
    if (reason !== undefined) return reason;
  }
  return stringOf(response.status);
}

/** The facts of a Responses `response` object (a whole answer, or the one a lifecycle event carries). */
function responseObjectFacts(raw: unknown, content: boolean, terminal: boolean): ShapeFacts {
  if (raw === null || typeof raw !== 'object') return { ...NO_FACTS, terminal };
  const r = raw as Json;
  return {
    id: stringOf(r.id),
    model: stringOf(r.model),
    usage: r.usage === undefined ? undefined : responsesUsageOf(r.usage),
    finishReason: responsesFinishReason(r),
    content,
    terminal,
    // `error` is null on a response that did not fail.
    inbandError: r.error === null || r.error === undefined ? undefined : errorOf(r.error),
  };
}

/** A whole non-streaming Responses answer (its top-level members, as the JSON window scan finds them). */
export function responsesBodyFacts(body: unknown): ShapeFacts {
  return responseObjectFacts(body, false, false);
}

/** The delta events that carry generated content: text, reasoning and a tool call's arguments. */
const RESPONSES_CONTENT_EVENTS: ReadonlySet<string> = new Set([
  'response.output_text.delta',
  'response.reasoning_text.delta',
  'response.reasoning_summary_text.delta',
  'response.function_call_arguments.delta',
  'response.refusal.delta',
]);

/** The lifecycle events whose `response` is the whole response object so far. */
const RESPONSES_LIFECYCLE_EVENTS: ReadonlySet<string> = new Set(['response.created', 'response.in_progress', 'response.queued']);

/** Events after which a Responses stream ends. */
const RESPONSES_TERMINAL_EVENTS: ReadonlySet<string> = new Set(['response.completed', 'response.failed', 'response.incomplete']);

/** One parsed SSE event of a Responses stream (`eventName`: its `event:` field, `data`: its parsed data). */
export function responsesEventFacts(eventName: string | undefined, data: unknown): ShapeFacts {
  if (data === null || typeof data !== 'object') return NO_FACTS;
  const d = data as Json;
  const type = eventType(eventName, d);
  if (type === undefined) return NO_FACTS;
  if (RESPONSES_CONTENT_EVENTS.has(type)) return nonEmptyString(d.delta) ? { ...NO_FACTS, content: true } : NO_FACTS;
  if (RESPONSES_TERMINAL_EVENTS.has(type)) return responseObjectFacts(d.response, false, true);
  if (RESPONSES_LIFECYCLE_EVENTS.has(type)) return responseObjectFacts(d.response, false, false);
  // `{"type":"error","code":…,"message":…}`: the code may be null (errorOf then says "error").
  if (type === 'error') return { ...NO_FACTS, inbandError: errorOf(d) };
  return NO_FACTS;
}

// ---------------------------------------------------------------- Messages

/** The counts a Messages `usage` object reports, each undefined when absent (a delta reports some of them). */
interface MessagesUsageParts {
  input: number | undefined;
  output: number | undefined;
  cacheRead: number | undefined;
  cacheCreation: number | undefined;
  cost: number | undefined;
  upstreamInferenceCost: number | undefined;
  byok: boolean | undefined;
}

function countOrUndefined(v: unknown): number | undefined {
  return v === undefined ? undefined : num(v);
}

function messagesUsageParts(u: Json): MessagesUsageParts {
  const cost = openRouterCost(u);
  return {
    input: countOrUndefined(u.input_tokens),
    output: countOrUndefined(u.output_tokens),
    cacheRead: countOrUndefined(u.cache_read_input_tokens),
    cacheCreation: countOrUndefined(u.cache_creation_input_tokens),
    cost: cost.cost,
    upstreamInferenceCost: cost.upstreamInferenceCost,
    byok: u.is_byok === undefined ? undefined : cost.byok,
  };
}

/**
 * A sum of counts that stays finite: two counts near Number.MAX_VALUE would sum to Infinity, which
 * a Prometheus counter and the spend ledger cannot take.
 */
function finiteSum(...counts: number[]): number {
  const sum = counts.reduce((a, b) => a + b, 0);
  return Number.isFinite(sum) ? sum : Number.MAX_VALUE;
}

function messagesUsageFromParts(p: MessagesUsageParts): TokenUsage {
  const cached = p.cacheRead ?? 0;
  const cacheWrite = p.cacheCreation ?? 0;
  return {
    // Anthropic's input_tokens leaves out the tokens read from and written to the cache; the
    // chat tap's prompt count (OpenAI's prompt_tokens) includes them.
    prompt: finiteSum(p.input ?? 0, cached, cacheWrite),
    completion: p.output ?? 0,
    // Anthropic reports no separate count of thinking tokens: they are in output_tokens.
    reasoning: 0,
    cached,
    cacheWrite,
    cost: p.cost,
    upstreamInferenceCost: p.upstreamInferenceCost,
    byok: p.byok ?? false,
  };
}

/** A Messages `usage` object on its own (a whole answer's, or one event's part). */
export function messagesUsageOf(raw: unknown): TokenUsage | undefined {
  if (raw === null || typeof raw !== 'object') return undefined;
  return messagesUsageFromParts(messagesUsageParts(raw as Json));
}

/**
 * Folds a Messages stream's usage: `message_start` carries the input counts (and an early
 * output count), each `message_delta` the output count so far (cumulative, so the last one wins)
 * and, from some providers, the input and cache counts again. A count an event reports replaces
 * the one before; one it leaves out keeps its earlier value.
 */
export class MessagesUsageAccumulator {
  private parts: MessagesUsageParts | undefined;

  /** One parsed event's data (any event: those without usage change nothing). */
  add(data: unknown): void {
    if (data === null || typeof data !== 'object') return;
    const d = data as Json;
    const raw = d.type === 'message_start' ? objectOr(d.message).usage : d.type === 'message_delta' ? d.usage : undefined;
    if (raw === null || typeof raw !== 'object') return;
    const next = messagesUsageParts(raw as Json);
    const prev = this.parts;
    this.parts = prev === undefined ? next : {
      input: next.input ?? prev.input,
      output: next.output ?? prev.output,
      cacheRead: next.cacheRead ?? prev.cacheRead,
      cacheCreation: next.cacheCreation ?? prev.cacheCreation,
      cost: next.cost ?? prev.cost,
      upstreamInferenceCost: next.upstreamInferenceCost ?? prev.upstreamInferenceCost,
      byok: next.byok ?? prev.byok,
    };
  }

  /** The usage so far, or undefined when no event carried any. */
  get usage(): TokenUsage | undefined {
    return this.parts === undefined ? undefined : messagesUsageFromParts(this.parts);
  }
}

/** Anthropic's error object `{type, message}`: its `type` (`overloaded_error`, …) is the code. */
function messagesErrorOf(raw: unknown): InbandError | undefined {
  if (raw === null || typeof raw !== 'object') return errorOf({});
  const e = raw as Json;
  return errorOf({ code: e.type, message: e.message });
}

/** The facts of a Messages `message` object (a whole answer, or the one `message_start` carries). */
function messageObjectFacts(raw: unknown): ShapeFacts {
  if (raw === null || typeof raw !== 'object') return NO_FACTS;
  const m = raw as Json;
  return {
    ...NO_FACTS,
    id: stringOf(m.id),
    model: stringOf(m.model),
    usage: messagesUsageOf(m.usage),
    finishReason: stringOf(m.stop_reason),
  };
}

/** A whole non-streaming Messages answer, or an error body (`{"type":"error","error":{…}}`). */
export function messagesBodyFacts(body: unknown): ShapeFacts {
  if (body === null || typeof body !== 'object') return NO_FACTS;
  const b = body as Json;
  if (b.type === 'error') return { ...NO_FACTS, inbandError: messagesErrorOf(b.error) };
  // OpenRouter's own refusals (before any provider) may come in its OpenAI-style `{error: {code, message}}`.
  if (b.error !== null && typeof b.error === 'object') return { ...NO_FACTS, inbandError: errorOf(b.error) };
  return messageObjectFacts(b);
}

/** One parsed SSE event of a Messages stream. */
export function messagesEventFacts(eventName: string | undefined, data: unknown): ShapeFacts {
  if (data === null || typeof data !== 'object') return NO_FACTS;
  const d = data as Json;
  switch (eventType(eventName, d)) {
    case 'content_block_delta': {
      const delta = objectOr(d.delta);
      // text_delta, input_json_delta (a tool call's input) and thinking_delta are content.
      const content = nonEmptyString(delta.text) || nonEmptyString(delta.partial_json) || nonEmptyString(delta.thinking);
      return content ? { ...NO_FACTS, content: true } : NO_FACTS;
    }
    case 'message_start':
      return messageObjectFacts(d.message);
    case 'message_delta':
      return { ...NO_FACTS, usage: messagesUsageOf(d.usage), finishReason: stringOf(objectOr(d.delta).stop_reason) };
    case 'message_stop':
      return { ...NO_FACTS, terminal: true };
    case 'error':
      return { ...NO_FACTS, inbandError: messagesErrorOf(d.error) };
    default:
      return NO_FACTS;
  }
}

/** The facts of one body or event in either shape. */
export function shapeBodyFacts(api: ShapeApi, body: unknown): ShapeFacts {
  return api === 'responses' ? responsesBodyFacts(body) : messagesBodyFacts(body);
}

export function shapeEventFacts(api: ShapeApi, eventName: string | undefined, data: unknown): ShapeFacts {
  return api === 'responses' ? responsesEventFacts(eventName, data) : messagesEventFacts(eventName, data);
}

// ---------------------------------------------------------------- the proxy's own error events

/** An SSE event, preceded by a blank line when the stream so far (`tail`) ends mid-event. */
function sseEvent(name: string, data: unknown, tail: Buffer | undefined): Buffer {
  const prefix = endsAtEventBoundary(tail) ? '' : '\n\n';
  return Buffer.from(`${prefix}event: ${name}\ndata: ${JSON.stringify(data)}\n\n`, 'utf8');
}

/**
 * The event that ends a Messages stream the proxy must cut, in Anthropic's own form, so its SDK
 * raises it as an API error: https://docs.anthropic.com/en/api/messages-streaming#error-events
 * `type` is Anthropic's error type (`api_error`, `overloaded_error`, …).
 */
export function messagesErrorEvent(type: string, message: string, tail?: Buffer): Buffer {
  return sseEvent('error', { type: 'error', error: { type: clipText(type), message: clipText(message, MAX_ERROR_MESSAGE_CHARS) } }, tail);
}

/** What the proxy knows of the response it cuts, for the `response.failed` event. */
export interface ResponsesErrorEventFields {
  readonly id?: string | undefined;
  readonly model?: string | undefined;
  /** One past the last `sequence_number` the client saw, when the tap tracked it (OpenAI numbers every event). */
  readonly sequenceNumber?: number | undefined;
}

/**
 * The event that ends a Responses stream the proxy must cut: `response.failed` with the error on
 * its response, a terminal event a client waits for (https://platform.openai.com/docs/api-reference/responses-streaming/response/failed).
 * Not the bare `error` event: the openai SDK yields that without ending, and it carries no status.
 * (The SDK's `responses.stream()` helper throws on any event before `response.created`, so a
 * stream cut before its first event reaches such a client as an error either way.)
 */
export function responsesErrorEvent(code: string, message: string, fields: ResponsesErrorEventFields = {}, tail?: Buffer): Buffer {
  return sseEvent('response.failed', {
    type: 'response.failed',
    ...(fields.sequenceNumber === undefined ? {} : { sequence_number: fields.sequenceNumber }),
    response: {
      id: fields.id ?? 'resp_signalbox',
      object: 'response',
      created_at: Math.floor(Date.now() / 1000),
      status: 'failed',
      model: fields.model ?? 'unknown',
      output: [],
      error: { code: clipText(code), message: clipText(message, MAX_ERROR_MESSAGE_CHARS) },
      incomplete_details: null,
    },
  }, tail);
}
