/**
 * What the classifier reads of a request: a bounded window of the last user turn, and cheap
 * counts over the whole conversation. Bounded so that a 1 MB paste costs the same as a 4 KiB one
 * (docs/classifiers.md, "What the classifier reads").
 */

/**
 * The window: the first WINDOW_HEAD_CHARS and the last WINDOW_TAIL_CHARS of the last user turn's
 * text (UTF-16 code units; 4,096 in all). A request usually sits before or after what it pastes
 * ("summarise this: ..." or "... what date was it signed?"), so both ends are kept, the tail
 * longer because the latest instruction is most often last.
 */
export const WINDOW_HEAD_CHARS = 1024;
export const WINDOW_TAIL_CHARS = 3072;
/** Earlier turns are scanned for code fences up to this many code units in all, newest first: enough to see a coding session, bounded for a 1 MB history. */
export const HISTORY_SCAN_CHARS = 32 * 1024;

export interface ConversationCounts {
  /** Messages in the conversation. */
  readonly messages: number;
  readonly userTurns: number;
  readonly assistantTurns: number;
  /** Tool results and assistant tool calls: an agent loop. */
  readonly toolMessages: number;
  readonly hasSystem: boolean;
  /** Text length of every message (code units), the last user turn included. */
  readonly totalChars: number;
  /** Code fences in earlier turns, within HISTORY_SCAN_CHARS. */
  readonly historyFences: number;
}

export interface ClassifierInput {
  /** The window of the last user turn's text (at most WINDOW_HEAD_CHARS + WINDOW_TAIL_CHARS + 1). */
  readonly text: string;
  /** The whole last user turn's text length, in code units. */
  readonly turnChars: number;
  readonly conversation: ConversationCounts;
}

type Message = { role?: unknown; content?: unknown; tool_calls?: unknown };

function asMessage(value: unknown): Message | undefined {
  return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Message) : undefined;
}

/** The text parts of a content (a string, or the `text` of each part); images and files are not text. */
function textOf(content: unknown): string {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return '';
  let text = '';
  for (const part of content) {
    if (part !== null && typeof part === 'object' && typeof (part as { text?: unknown }).text === 'string'
      && (part as { type?: unknown }).type !== 'tool_result') {
      text += (text === '' ? '' : '\n') + (part as { text: string }).text;
    }
  }
  return text;
}

/** Length of a content's text without building it. */
function lengthOf(content: unknown): number {
  if (typeof content === 'string') return content.length;
  if (!Array.isArray(content)) return 0;
  let n = 0;
  for (const part of content) {
    const text = part !== null && typeof part === 'object' ? (part as { text?: unknown }).text : undefined;
    if (typeof text === 'string') n += text.length;
  }
  return n;
}

function countFences(text: string, limit: number): number {
  let n = 0;
  const end = Math.min(text.length, limit);
  for (let i = text.indexOf('```'); i !== -1 && i < end; i = text.indexOf('```', i + 3)) n++;
  return n;
}

/** The window of a turn's text: the text itself when it fits, else its head and tail around a newline. */
export function windowOf(text: string): string {
  if (text.length <= WINDOW_HEAD_CHARS + WINDOW_TAIL_CHARS) return text;
  return `${text.slice(0, WINDOW_HEAD_CHARS)}\n${text.slice(text.length - WINDOW_TAIL_CHARS)}`;
}

/**
 * The classifier's input from a chat `messages` array (any JSON: elements that are not message
 * objects are skipped). The last `user` message is what the model must do next; `tool` messages
 * are results, not user input. No user turn: an empty window.
 */
export function classifierInput(messages: readonly unknown[]): ClassifierInput {
  let last = -1;
  let userTurns = 0;
  let assistantTurns = 0;
  let toolMessages = 0;
  let hasSystem = false;
  let totalChars = 0;
  for (let i = 0; i < messages.length; i++) {
    const m = asMessage(messages[i]);
    if (m === undefined) continue;
    totalChars += lengthOf(m.content);
    if (m.role === 'user') {
      userTurns++;
      last = i;
    } else if (m.role === 'assistant') {
      assistantTurns++;
      if (Array.isArray(m.tool_calls) && m.tool_calls.length > 0) toolMessages++;
    } else if (m.role === 'tool' || m.role === 'function') toolMessages++;
    else if (m.role === 'system' || m.role === 'developer') hasSystem = true;
  }
  let historyFences = 0;
  let budget = HISTORY_SCAN_CHARS;
  for (let i = (last === -1 ? messages.length : last) - 1; i >= 0 && budget > 0; i--) {
    const content = asMessage(messages[i])?.content;
    if (typeof content !== 'string') continue;
    historyFences += countFences(content, budget);
    budget -= content.length;
  }
  const turn = last === -1 ? '' : textOf(asMessage(messages[last])!.content);
  return {
    text: windowOf(turn),
    turnChars: turn.length,
    conversation: { messages: messages.length, userTurns, assistantTurns, toolMessages, hasSystem, totalChars, historyFences },
  };
}

/** A single text as a one-turn conversation (a `{"text": ...}` training line, an explain probe). */
export function textInput(text: string): ClassifierInput {
  return classifierInput([{ role: 'user', content: text }]);
}
