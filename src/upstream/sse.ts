/** SSE helpers for the relay. The stream itself is never parsed or re-serialised here. */

const LF = 0x0a;

/**
 * Whether `tail` (the last bytes written to the client) ends an SSE event, i.e. ends in a blank
 * line. If it does not, an event is half-written and the proxy must finish it before adding one.
 * https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation
 */
export function endsAtEventBoundary(tail: Buffer | undefined): boolean {
  if (tail === undefined || tail.length === 0) return true;
  const n = tail.length;
  if (tail[n - 1] !== LF && tail[n - 1] !== 0x0d) return false;
  // "\n\n", "\r\n\r\n", "\r\r" or a stream that ended right after a full event
  const s = tail.subarray(Math.max(0, n - 4)).toString('latin1');
  return s.endsWith('\n\n') || s.endsWith('\r\n\r\n') || s.endsWith('\r\r');
}

export interface SseErrorEventFields {
  readonly id: string;
  readonly model: string | undefined;
  readonly code: string;
  readonly message: string;
}

/**
 * A final event in OpenRouter's mid-stream error shape (an `error` object and a choice with
 * `finish_reason: "error"`), so clients that handle OpenRouter's in-band errors handle ours, and a
 * stream cut by the proxy never looks like a clean end. https://openrouter.ai/docs/api-reference/errors
 */
export function sseErrorEvent(fields: SseErrorEventFields, tail: Buffer | undefined): Buffer {
  const event = {
    id: fields.id,
    object: 'chat.completion.chunk',
    created: Math.floor(Date.now() / 1000),
    model: fields.model ?? 'unknown',
    provider: 'signalbox',
    error: { code: fields.code, message: fields.message },
    choices: [{ index: 0, delta: { content: '' }, finish_reason: 'error', native_finish_reason: 'error' }],
  };
  const prefix = endsAtEventBoundary(tail) ? '' : '\n\n';
  return Buffer.from(`${prefix}data: ${JSON.stringify(event)}\n\n`, 'utf8');
}
