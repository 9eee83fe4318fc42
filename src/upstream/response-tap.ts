import { StringDecoder } from 'node:string_decoder';
import { createParser, type EventSourceMessage, type EventSourceParser } from 'eventsource-parser';
import { clipText } from '../bounded-text.js';
import type { Api } from '../rules/shapes.js';
import { answerOfBody, answerOfEvent } from './answer-text.js';
import { membersFromEnd, membersFromStart } from './json-members.js';
import { MessagesUsageAccumulator, shapeBodyFacts, shapeEventFacts, type ShapeApi, type ShapeFacts } from './shape-facts.js';

/**
 * Reads the facts Signalbox records (served model, provider, usage and cost, time to first
 * token, finish reason, in-band errors) from a response while its bytes go to the client
 * untouched. The tap only ever reads copies of what the relay already wrote: it never delays,
 * holds or changes a byte.
 *
 * Streams go through a spec-compliant SSE parser (CR, LF and CRLF line ends, comments, events
 * split across reads; https://html.spec.whatwg.org/multipage/server-sent-events.html) with a cap
 * on the size of one event. Usage is taken from whichever event carries a `usage` object:
 * OpenRouter sends it on a last chunk whose `choices` is not empty, which is exactly where
 * gateways that look for `choices: []` lose it.
 */

export interface TokenUsage {
  readonly prompt: number;
  readonly completion: number;
  readonly reasoning: number;
  readonly cached: number;
  /** Prompt tokens written to the provider's cache (`prompt_tokens_details.cache_write_tokens`). */
  readonly cacheWrite: number;
  /** USD, as OpenRouter reports it in `usage.cost`; undefined when the upstream reported none. */
  readonly cost: number | undefined;
  /**
   * With a bring-your-own key, what the provider charged the key's owner
   * (`cost_details.upstream_inference_cost`, USD): the true spend is `cost` plus this.
   */
  readonly upstreamInferenceCost: number | undefined;
  /** `usage.is_byok`: the request ran on the account's own provider key, so `cost` is only OpenRouter's fee. */
  readonly byok: boolean;
}

export interface InbandError {
  readonly code: string;
  readonly message: string;
}

export interface ResponseFacts {
  /** The response's `id` (OpenRouter's generation id, for its /generation endpoint). */
  id: string | undefined;
  /** The model that served the response (`model` of the response or of its first chunk). */
  model: string | undefined;
  provider: string | undefined;
  usage: TokenUsage | undefined;
  finishReason: string | undefined;
  /** An error the upstream reported inside a 200 stream (`error` + `finish_reason: "error"`). */
  inbandError: InbandError | undefined;
  /** performance.now() (ms) of the first event carrying content or a tool call. */
  firstTokenAt: number | undefined;
  /**
   * The stream said it is over: chat's `data: [DONE]`, or the shape's terminal event (Responses'
   * `response.completed` / `failed` / `incomplete`, Messages' `message_stop`).
   */
  done: boolean;
  /** An event was larger than the cap and was skipped (the bytes still reached the client). */
  oversizeEvent: boolean;
  /**
   * The start of the assistant's text (`content` of the first choice; per shape: answer-text.ts), only when the tap was asked
   * to capture it (a judged shadow compares it): at most `captureChars` characters. A non-streaming
   * body is read for it only when it fits one JSON_SCAN_WINDOW_BYTES window (never parsed whole).
   */
  answerText: string | undefined;
}

/** One SSE event may not buffer more than this many characters: 4 MiB holds any real chunk. */
export const MAX_SSE_EVENT_CHARS = 4 * 1024 * 1024;
/**
 * A non-streaming body is never parsed whole (`JSON.parse` runs on the event loop at about 6 ms
 * per MiB, and builds the whole answer as objects for the collector: a 14.5 MiB embeddings answer
 * stalled every stream for 90 ms; issue 12, defect 25; issue 13). The tap keeps at most this much
 * of its start and of its end, and walks their top-level members (`json-members.ts`), decoding
 * only the few it records: OpenRouter writes `id`, `provider` and `model` first and `usage` last,
 * around the bulk (`choices`, `data`), which is skipped byte by byte. A body within one window is
 * walked whole, once. Two windows of 64 KiB bound both the memory a body holds in the tap and the
 * walk, whatever its size.
 */
export const JSON_SCAN_WINDOW_BYTES = 64 * 1024;
/** The top-level members the facts are read from. */
const FACT_MEMBERS: ReadonlySet<string> = new Set(['id', 'model', 'provider', 'usage', 'error']);
/** The same for the other shapes' whole answers (src/upstream/shape-facts.ts reads them). */
const SHAPE_FACT_MEMBERS: Readonly<Record<ShapeApi, ReadonlySet<string>>> = {
  responses: new Set(['id', 'model', 'usage', 'error', 'status', 'incomplete_details']),
  messages: new Set(['id', 'model', 'usage', 'error', 'type', 'stop_reason']),
};
/** The same, and the answer's own member, for a tap that captures the answer's text. */
const SHAPE_FACT_AND_ANSWER_MEMBERS: Readonly<Record<ShapeApi, ReadonlySet<string>>> = {
  responses: new Set([...SHAPE_FACT_MEMBERS.responses, 'output']),
  messages: new Set([...SHAPE_FACT_MEMBERS.messages, 'content']),
};
/**
 * Events of the other shapes that only carry more of the answer: once the first token and the
 * model are known they change no fact, and are not parsed (by their SSE `event:` name, which both
 * shapes send; an event without one is parsed).
 */
const SHAPE_DELTA_EVENTS: ReadonlySet<string> = new Set([
  'response.output_text.delta', 'response.reasoning_text.delta', 'response.reasoning_summary_text.delta',
  'response.function_call_arguments.delta', 'response.refusal.delta', 'content_block_delta',
]);
/**
 * Events of the other shapes that carry no fact the tap records at all (their answer's parts
 * opening and closing, keep-alives): never parsed unless the answer's text is captured. A
 * Responses stream sends five of them per text part, each repeating the part's text: parsing
 * them cost a streamed Responses request 18% more proxy CPU than chat's (bench:shapes).
 */
const SHAPE_FACTLESS_EVENTS: ReadonlySet<string> = new Set([
  'response.output_item.added', 'response.output_item.done', 'response.content_part.added', 'response.content_part.done',
  'response.output_text.done', 'response.reasoning_text.done', 'response.function_call_arguments.done',
  'content_block_start', 'content_block_stop', 'ping',
]);
/** Lifecycle events that only repeat the response's id and model: once those are known, not parsed. */
const SHAPE_LIFECYCLE_EVENTS: ReadonlySet<string> = new Set(['response.created', 'response.in_progress', 'response.queued']);
/** The same, and `choices`, for a tap that captures the answer's text. */
const FACT_AND_ANSWER_MEMBERS: ReadonlySet<string> = new Set([...FACT_MEMBERS, 'choices']);
/**
 * The first choice's finish reason, found without parsing `choices`: in JSON text a quote inside a
 * string is always escaped, so `"finish_reason"` followed by a colon is a key, never content.
 */
const FINISH_REASON_MEMBER = /"finish_reason"\s*:\s*"([^"\\]{1,200})"/;

type Json = Record<string, unknown>;

/** An in-band error's message is kept up to this many characters: the upstream chooses it. */
const MAX_ERROR_MESSAGE_CHARS = 1024;

/** A chunk with a finish reason set (any JSON spacing: not every OpenAI-compatible server writes compact JSON). */
const FINISH_REASON_SET = /"finish_reason"\s*:\s*"/;

/*
 * Every reader below is total over hostile JSON (issue 12, defect 2): objects where strings
 * belong, `toString`/`valueOf` keys, huge or negative numbers. Nothing is converted with
 * String() or template literals, which call a parsed object's inherited toString and throw when
 * an own `"toString"` key shadows it; counts and costs must be finite and not negative, because a
 * Prometheus counter refuses to go down.
 */

/** A token count: finite and not negative, else 0 (the shape readers in shape-facts.ts count the same way). */
export function num(v: unknown): number {
  return typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : 0;
}

export function objectOr(v: unknown): Json {
  return v !== null && typeof v === 'object' ? (v as Json) : {};
}

/** A cost in USD: finite and not negative (a Prometheus counter refuses to go down), else none. */
export function usdOf(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : undefined;
}

/** An answer's `usage` object as counts and costs (the tap's, and the classifier calls'), or undefined when it is none. */
export function usageOf(raw: unknown): TokenUsage | undefined {
  if (raw === null || typeof raw !== 'object') return undefined;
  const u = raw as Json;
  const completionDetails = objectOr(u.completion_tokens_details);
  const promptDetails = objectOr(u.prompt_tokens_details);
  const costDetails = objectOr(u.cost_details);
  return {
    prompt: num(u.prompt_tokens),
    completion: num(u.completion_tokens),
    reasoning: num(completionDetails.reasoning_tokens),
    cached: num(promptDetails.cached_tokens),
    cacheWrite: num(promptDetails.cache_write_tokens),
    cost: usdOf(u.cost),
    upstreamInferenceCost: usdOf(costDetails.upstream_inference_cost),
    byok: u.is_byok === true,
  };
}

/** An upstream `{code, message}` error object as an InbandError, code and message clipped. */
export function errorOf(raw: unknown): InbandError | undefined {
  if (raw === null || typeof raw !== 'object') return undefined;
  const e = raw as Json;
  // OpenRouter's codes are numbers (its HTTP status) or short strings; anything else is no code.
  const code = typeof e.code === 'string' ? clipText(e.code) : typeof e.code === 'number' && Number.isFinite(e.code) ? e.code.toString() : 'error';
  return { code, message: typeof e.message === 'string' ? clipText(e.message, MAX_ERROR_MESSAGE_CHARS) : 'upstream error' };
}

/** The first finish reason written in `bytes`, or undefined. */
function finishReasonIn(bytes: Buffer): string | undefined {
  // latin1 maps bytes one to one: the match's offsets are byte offsets, decoded again as UTF-8.
  const match = FINISH_REASON_MEMBER.exec(bytes.toString('latin1'));
  if (match === null) return undefined;
  const start = match.index + match[0].length - 1 - match[1]!.length;
  return clipText(bytes.toString('utf8', start, start + match[1]!.length));
}

/** The first element of `choices` when it is an object (`choices: [null]` has none). */
function firstChoice(obj: Json): Json | undefined {
  const first: unknown = Array.isArray(obj.choices) ? obj.choices[0] : undefined;
  return first !== null && typeof first === 'object' ? (first as Json) : undefined;
}

/** Whether a chunk's first choice carries generated content (text, reasoning or a tool call). */
function carriesToken(choice: Json | undefined): boolean {
  const raw: unknown = choice?.delta;
  if (raw === null || typeof raw !== 'object') return false;
  const delta = raw as Json;
  if (typeof delta.content === 'string' && delta.content.length > 0) return true;
  if (typeof delta.reasoning === 'string' && delta.reasoning.length > 0) return true;
  return Array.isArray(delta.tool_calls) && delta.tool_calls.length > 0;
}

export class ResponseTap {
  readonly facts: ResponseFacts = {
    id: undefined, model: undefined, provider: undefined, usage: undefined, finishReason: undefined, inbandError: undefined,
    firstTokenAt: undefined, done: false, oversizeEvent: false, answerText: undefined,
  };
  /** How many characters of the answer's text to keep (0: none, the usual case). */
  private readonly captureChars: number;
  private readonly sse: boolean;
  private readonly decoder: StringDecoder | undefined;
  private readonly parser: EventSourceParser | undefined;
  private parserTerminated = false;
  /** The last character fed to the parser was a CR, which may yet be followed by an LF. */
  private pendingCr = false;
  /** The body's chunks while it fits one window; then its last chunks (the tail window). */
  private readonly jsonChunks: Buffer[] = [];
  /** The bytes in jsonChunks. */
  private jsonChunkBytes = 0;
  private jsonBytes = 0;
  /** The body's first JSON_SCAN_WINDOW_BYTES, once it is larger than one window. */
  private jsonHead: Buffer | undefined;

  /** The Responses or Messages shape; undefined for chat (and the pass-through endpoints, which answer in chat's terms). */
  private readonly shape: ShapeApi | undefined;
  /** A Messages stream's usage, spread over `message_start` and `message_delta`. */
  private readonly messagesUsage: MessagesUsageAccumulator | undefined;

  constructor(sse: boolean, captureChars = 0, api: Api = 'chat') {
    this.sse = sse;
    this.captureChars = captureChars;
    this.shape = api === 'chat' ? undefined : api;
    this.messagesUsage = api === 'messages' && sse ? new MessagesUsageAccumulator() : undefined;
    if (sse) {
      // UTF-8 split across reads is completed here, not mangled.
      this.decoder = new StringDecoder('utf8');
      this.parser = createParser({
        onEvent: (event) => this.onEvent(event),
        onError: (err) => {
          if (err.type === 'max-buffer-size-exceeded') {
            this.facts.oversizeEvent = true;
            this.parserTerminated = true;
          }
        },
        maxBufferSize: MAX_SSE_EVENT_CHARS,
      });
    }
  }

  /** A chunk the relay has just written to the client. */
  push(chunk: Buffer): void {
    if (this.sse) {
      if (this.parserTerminated) {
        this.parser!.reset();
        this.parserTerminated = false;
      }
      const text = this.decoder!.write(chunk);
      if (text.length > 0) this.pendingCr = text.charCodeAt(text.length - 1) === 0x0d;
      this.parser!.feed(text);
    } else {
      this.pushJson(chunk);
    }
  }

  private pushJson(chunk: Buffer): void {
    const chunks = this.jsonChunks;
    this.jsonBytes += chunk.length;
    this.jsonChunkBytes += chunk.length;
    chunks.push(chunk);
    if (this.jsonHead === undefined) {
      if (this.jsonBytes <= JSON_SCAN_WINDOW_BYTES) return;
      // Larger than one window: keep a copy of the start (not a view that pins the chunks).
      this.jsonHead = Buffer.concat(chunks, Math.min(JSON_SCAN_WINDOW_BYTES, this.jsonChunkBytes));
    }
    // Only the chunks that still reach into the last window stay.
    while (chunks.length > 1 && this.jsonChunkBytes - chunks[0]!.length >= JSON_SCAN_WINDOW_BYTES) {
      this.jsonChunkBytes -= chunks.shift()!.length;
    }
  }

  /** The body ended (completely or not); a JSON body is read now. */
  end(): ResponseFacts {
    // A stream that ends in CR: the parser waits for a possible LF, but the line (and a final
    // blank line) is complete, so the last event counts (CR alone is a line end in SSE).
    if (this.sse && this.pendingCr && !this.parserTerminated) {
      this.pendingCr = false;
      this.parser!.feed('\n');
    }
    if (!this.sse && this.jsonBytes > 0) {
      const chunks = this.jsonChunks;
      const tail = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, this.jsonChunkBytes);
      const head = this.jsonHead;
      const found = new Map<string, unknown>();
      // From the end first, so that the last of duplicate names wins, as with JSON.parse.
      // The answer's text only from a body within one window: its `choices` are then walked whole.
      const shape = this.shape;
      if (shape !== undefined) {
        // As for chat, the answer's text only from a body within one window.
        const capture = this.captureChars > 0 && head === undefined;
        membersFromEnd(tail, head === undefined ? 0 : tail.length - JSON_SCAN_WINDOW_BYTES, capture ? SHAPE_FACT_AND_ANSWER_MEMBERS[shape] : SHAPE_FACT_MEMBERS[shape], found);
        if (head !== undefined) membersFromStart(head, JSON_SCAN_WINDOW_BYTES, SHAPE_FACT_MEMBERS[shape], found);
        if (found.size > 0) {
          const members = Object.fromEntries(found);
          this.readShapeFacts(shapeBodyFacts(shape, members));
          if (capture) this.appendAnswer(answerOfBody(shape, members).text);
        }
        this.jsonChunks.length = 0;
        this.jsonHead = undefined;
        return this.facts;
      }
      const wanted = this.captureChars > 0 && head === undefined ? FACT_AND_ANSWER_MEMBERS : FACT_MEMBERS;
      membersFromEnd(tail, head === undefined ? 0 : tail.length - JSON_SCAN_WINDOW_BYTES, wanted, found);
      if (found.has('choices')) this.appendAnswer(answerOfBody('chat', { choices: found.get('choices') }).text);
      if (head !== undefined) membersFromStart(head, JSON_SCAN_WINDOW_BYTES, FACT_MEMBERS, found);
      if (found.size > 0) this.readObject(Object.fromEntries(found));
      const finishReason = finishReasonIn(head ?? tail) ?? (head === undefined ? undefined : finishReasonIn(tail));
      if (finishReason !== undefined) this.facts.finishReason = finishReason;
      this.jsonChunks.length = 0;
      this.jsonHead = undefined;
    }
    return this.facts;
  }

  private readObject(obj: Json): void {
    const f = this.facts;
    if (f.id === undefined && typeof obj.id === 'string') f.id = clipText(obj.id);
    // Names the upstream chooses end up in log lines: bounded like the client's.
    if (f.model === undefined && typeof obj.model === 'string') f.model = clipText(obj.model);
    if (f.provider === undefined && typeof obj.provider === 'string') f.provider = clipText(obj.provider);
    if (obj.usage !== undefined) f.usage = usageOf(obj.usage) ?? f.usage;
    if (obj.error !== undefined) f.inbandError = errorOf(obj.error);
  }

  /** One body's or event's facts of the other shapes: the first id and model, the latest usage, finish reason and error. */
  private readShapeFacts(facts: ShapeFacts): void {
    const f = this.facts;
    if (f.id === undefined && facts.id !== undefined) f.id = facts.id;
    if (f.model === undefined && facts.model !== undefined) f.model = facts.model;
    if (facts.usage !== undefined) f.usage = facts.usage;
    if (facts.finishReason !== undefined) f.finishReason = facts.finishReason;
    if (facts.inbandError !== undefined) f.inbandError = facts.inbandError;
    if (facts.content && f.firstTokenAt === undefined) f.firstTokenAt = performance.now();
    if (facts.terminal) f.done = true;
  }

  private onShapeEvent(shape: ShapeApi, event: EventSourceMessage): void {
    const f = this.facts;
    const name = event.event;
    if (name !== undefined && !this.capturing()) {
      if (SHAPE_FACTLESS_EVENTS.has(name)) return;
      if (f.model !== undefined && f.id !== undefined && SHAPE_LIFECYCLE_EVENTS.has(name)) return;
      if (f.firstTokenAt !== undefined && f.model !== undefined && SHAPE_DELTA_EVENTS.has(name)) return;
    }
    let data: unknown;
    try {
      data = JSON.parse(event.data);
    } catch {
      return;
    }
    const facts = shapeEventFacts(shape, event.event, data);
    if (this.capturing()) this.appendAnswer(answerOfEvent(shape, event.event, data).text);
    if (this.messagesUsage === undefined) {
      this.readShapeFacts(facts);
      return;
    }
    // A Messages event's usage is a part of the whole (input counts first, output counts later).
    this.messagesUsage.add(data);
    this.readShapeFacts({ ...facts, usage: this.messagesUsage.usage });
  }

  private onEvent(event: EventSourceMessage): void {
    if (this.shape !== undefined) {
      this.onShapeEvent(this.shape, event);
      return;
    }
    const data = event.data;
    if (data === '[DONE]') {
      this.facts.done = true;
      return;
    }
    const f = this.facts;
    // After the first token most chunks are plain deltas: parse only those that can change a fact
    // (or all, while the answer's text is captured).
    if (!this.capturing() && f.firstTokenAt !== undefined && f.model !== undefined && !data.includes('"usage"') && !data.includes('"error"') && !FINISH_REASON_SET.test(data)) {
      return;
    }
    let obj: Json;
    try {
      obj = JSON.parse(data) as Json;
    } catch {
      return;
    }
    if (obj === null || typeof obj !== 'object') return;
    this.readObject(obj);
    const choice = firstChoice(obj);
    if (f.firstTokenAt === undefined && carriesToken(choice)) f.firstTokenAt = performance.now();
    if (typeof choice?.finish_reason === 'string') f.finishReason = clipText(choice.finish_reason);
    if (this.capturing()) this.appendAnswer(answerOfEvent('chat', undefined, obj).text);
  }

  /** Whether the answer's text is still wanted. */
  private capturing(): boolean {
    return this.captureChars > 0 && (this.facts.answerText?.length ?? 0) < this.captureChars;
  }

  /** Adds text of the answer to the captured text, up to captureChars. */
  private appendAnswer(content: string | undefined): void {
    if (content === undefined || content.length === 0) return;
    const text = (this.facts.answerText ?? '') + content;
    this.facts.answerText = text.length > this.captureChars ? text.slice(0, this.captureChars) : text;
  }
}
