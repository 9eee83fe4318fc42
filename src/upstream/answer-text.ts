import type { Api } from '../rules/shapes.js';

/**
 * The answer's text and whether it is a tool call, read from each API shape (issue 18): what a
 * cascade's checks read (src/experiments/cascade-gate.ts), what a shadow's judge compares
 * (src/experiments/shadow.ts) and what the response tap captures of the real answer.
 *
 * - chat: `choices[0].message.content` (a string) and `tool_calls`; streamed, `choices[0].delta`.
 * - Responses: `output[]` items of type `message`, their `output_text` parts (and `refusal` parts' refusal); a
 *   `function_call` item is a tool call. Streamed: `response.output_text.delta` (and
 *   `response.refusal.delta`, so a refusal is checked as one), reasoning deltas,
 *   `response.function_call_arguments.delta` or an added `function_call` item.
 *   https://platform.openai.com/docs/api-reference/responses-streaming
 * - Messages: `content[]` blocks of type `text`; a `tool_use` block is a tool call. Streamed:
 *   `content_block_delta` (`text_delta`, `thinking_delta`, `input_json_delta`) or a
 *   `content_block_start` of a `tool_use` block. https://docs.anthropic.com/en/api/messages-streaming
 *
 * Pure, cheap (a few property reads per event) and total over hostile JSON: a value of the wrong
 * type is skipped, never thrown on.
 */

export interface AnswerOfBody {
  /** The answer's text; undefined when it has none at all (no text part, chat content not a string). */
  readonly text: string | undefined;
  readonly toolCall: boolean;
}

export interface AnswerOfEvent {
  /** The text this event adds (never empty: an empty delta adds nothing). */
  readonly text: string | undefined;
  /** The event carries reasoning (a first token, though no answer text). */
  readonly reasoning: boolean;
  readonly toolCall: boolean;
  /** An in-band error: the stream failed. */
  readonly error: boolean;
}

type Json = Record<string, unknown>;

const NOTHING: AnswerOfEvent = Object.freeze({ text: undefined, reasoning: false, toolCall: false, error: false });
const REASONING: AnswerOfEvent = Object.freeze({ text: undefined, reasoning: true, toolCall: false, error: false });
const TOOL_CALL: AnswerOfEvent = Object.freeze({ text: undefined, reasoning: false, toolCall: true, error: false });
const ERROR: AnswerOfEvent = Object.freeze({ text: undefined, reasoning: false, toolCall: false, error: true });
const NO_ANSWER: AnswerOfBody = Object.freeze({ text: undefined, toolCall: false });

function isObject(v: unknown): v is Json {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function nonEmpty(v: unknown): v is string {
  return typeof v === 'string' && v.length > 0;
}

function textEvent(text: unknown): AnswerOfEvent {
  return nonEmpty(text) ? { text, reasoning: false, toolCall: false, error: false } : NOTHING;
}

/** Joins the text `textOf` finds in each part; undefined when it finds none. */
function joinedText(parts: unknown, textOf: (part: Json) => unknown): string | undefined {
  if (!Array.isArray(parts)) return undefined;
  let text: string | undefined;
  for (const part of parts) {
    const partText = isObject(part) ? textOf(part) : undefined;
    if (typeof partText === 'string') text = (text ?? '') + partText;
  }
  return text;
}

// ---------------------------------------------------------------- chat

function firstChoice(obj: Json): Json | undefined {
  const choices = obj.choices;
  const choice: unknown = Array.isArray(choices) ? choices[0] : undefined;
  return isObject(choice) ? choice : undefined;
}

function hasToolCalls(message: Json): boolean {
  return Array.isArray(message.tool_calls) && message.tool_calls.length > 0;
}

function chatBody(body: Json): AnswerOfBody {
  const message = firstChoice(body)?.message;
  if (!isObject(message)) return NO_ANSWER;
  return { text: typeof message.content === 'string' ? message.content : undefined, toolCall: hasToolCalls(message) };
}

function chatEvent(data: Json): AnswerOfEvent {
  if (data.error !== undefined) return ERROR;
  const delta = firstChoice(data)?.delta;
  if (!isObject(delta)) return NOTHING;
  const toolCall = hasToolCalls(delta);
  const reasoning = nonEmpty(delta.reasoning);
  const text = nonEmpty(delta.content) ? delta.content : undefined;
  return text === undefined && !toolCall && !reasoning ? NOTHING : { text, reasoning, toolCall, error: false };
}

// ---------------------------------------------------------------- Responses

/** An `output_text` part's text, or a `refusal` part's refusal (so that a refusal check sees it). */
function responsesPartText(part: Json): unknown {
  if (part.type === 'output_text') return part.text;
  return part.type === 'refusal' ? part.refusal : undefined;
}

function responsesBody(body: Json): AnswerOfBody {
  const output = body.output;
  if (!Array.isArray(output)) return NO_ANSWER;
  let text: string | undefined;
  let toolCall = false;
  for (const item of output) {
    if (!isObject(item)) continue;
    if (item.type === 'function_call') toolCall = true;
    else if (item.type === 'message') {
      const part = joinedText(item.content, responsesPartText);
      if (part !== undefined) text = (text ?? '') + part;
    }
  }
  return { text, toolCall };
}

function responsesEvent(type: unknown, data: Json): AnswerOfEvent {
  switch (type) {
    case 'response.output_text.delta':
    case 'response.refusal.delta':
      return textEvent(data.delta);
    case 'response.reasoning_text.delta':
    case 'response.reasoning_summary_text.delta':
      return nonEmpty(data.delta) ? REASONING : NOTHING;
    case 'response.function_call_arguments.delta':
      return TOOL_CALL;
    case 'response.output_item.added':
      return isObject(data.item) && data.item.type === 'function_call' ? TOOL_CALL : NOTHING;
    case 'error':
    case 'response.failed':
      return ERROR;
    default:
      return NOTHING;
  }
}

// ---------------------------------------------------------------- Messages

function messagesBlockText(block: Json): unknown {
  return block.type === 'text' ? block.text : undefined;
}

function messagesBody(body: Json): AnswerOfBody {
  const content = body.content;
  if (!Array.isArray(content)) return NO_ANSWER;
  return { text: joinedText(content, messagesBlockText), toolCall: content.some((block) => isObject(block) && block.type === 'tool_use') };
}

function messagesEvent(type: unknown, data: Json): AnswerOfEvent {
  switch (type) {
    case 'content_block_delta': {
      const delta = data.delta;
      if (!isObject(delta)) return NOTHING;
      if (delta.type === 'text_delta') return textEvent(delta.text);
      if (delta.type === 'thinking_delta') return nonEmpty(delta.thinking) ? REASONING : NOTHING;
      return delta.type === 'input_json_delta' ? TOOL_CALL : NOTHING;
    }
    case 'content_block_start':
      return isObject(data.content_block) && data.content_block.type === 'tool_use' ? TOOL_CALL : NOTHING;
    case 'error':
      return ERROR;
    default:
      return NOTHING;
  }
}

// ---------------------------------------------------------------- the readers

/** A whole (non-streaming) answer of `api`: its text and whether it calls a tool. */
export function answerOfBody(api: Api, body: unknown): AnswerOfBody {
  if (!isObject(body)) return NO_ANSWER;
  if (api === 'responses') return responsesBody(body);
  if (api === 'messages') return messagesBody(body);
  return chatBody(body);
}

/**
 * One parsed SSE event of a stream of `api` (`eventName`: its `event:` field). The event's type
 * is its data's `type` when that is a string (both shapes repeat it there), else the event name,
 * as src/upstream/shape-facts.ts reads it.
 */
export function answerOfEvent(api: Api, eventName: string | undefined, data: unknown): AnswerOfEvent {
  if (!isObject(data)) return NOTHING;
  if (api === 'chat') return chatEvent(data);
  const type = typeof data.type === 'string' ? data.type : eventName;
  return api === 'responses' ? responsesEvent(type, data) : messagesEvent(type, data);
}
