import { StringDecoder } from 'node:string_decoder';
import { createParser, type EventSourceMessage, type EventSourceParser } from 'eventsource-parser';
import type { CascadePlan } from '../rules/cascade.js';
import type { Api } from '../rules/shapes.js';
import { answerOfBody, answerOfEvent } from '../upstream/answer-text.js';
import { MAX_SSE_EVENT_CHARS, ResponseTap, type ResponseFacts } from '../upstream/response-tap.js';
import { checkAnswer, checkWindow, type EscalationReason } from './cascade-checks.js';

/**
 * The gate a cascade tier's answer passes before the client sees a byte of it (issue 17, item 3):
 * Forwarding (src/server/forward.ts) holds the response the attempt machine would relay, feeds its
 * bytes here unmodified, and asks what to do: keep holding, release (write what was held and relay
 * the rest untouched), or escalate (abort the call; the next tier answers instead).
 *
 * - A JSON answer is held whole, up to MAX_CASCADE_BODY_BYTES, then parsed once and checked.
 * - A stream is held until its window is known: `stream_hold.chars` characters of content, or
 *   `stream_hold.ms` after its first token (content or reasoning), or its end; then the window is
 *   checked (checkWindow: only what the prefix proves fails; a stream that ended is checked whole).
 *   A failure the first characters already prove (a refusal, a non-JSON start) escalates at once.
 * - A tool call passes (the checks read text). A 5xx or a 429 that the tier's retries did not
 *   cure, an in-band error, a body that is no answer: `error`. Other statuses (a 4xx) are the
 *   client's to see, as without a cascade: released.
 */

export type GateVerdict = { readonly pass: true } | { readonly pass: false; readonly reason: EscalationReason };

const PASS: GateVerdict = Object.freeze({ pass: true });
const ERROR: GateVerdict = Object.freeze({ pass: false, reason: 'error' });

function fail(reason: EscalationReason | undefined): GateVerdict {
  return reason === undefined ? PASS : { pass: false, reason };
}

/**
 * At most this much of a JSON answer is held to be checked. Chat answers are a few KiB; 4 MiB is
 * also the largest SSE event the tap reads. A larger answer is released unchecked (relayed as it
 * is, held bytes first): holding more would let one request pin memory, and parsing it (about
 * 6 ms per MiB on the event loop) would stall every other stream.
 */
export const MAX_CASCADE_BODY_BYTES = 4 * 1024 * 1024;
/**
 * At most this much of a stream is held for its window. `stream_hold.chars` is at most 8192
 * characters (MAX_STREAM_HOLD_CHARS), a few tens of KiB of SSE; 1 MiB, as for the first-token
 * hold, also covers a flood of comments or reasoning before the content. Past it the window is
 * released as it is.
 */
export const MAX_STREAM_HOLD_BYTES = 1024 * 1024;

/** Up to this many characters of content, each event re-checks the window for a failure it already proves. */
const EARLY_CHECK_CHARS = 256;

export class CascadeGate {
  private readonly plan: CascadePlan;
  private readonly askedJson: boolean;
  /** The answer's shape: where its text and tool calls are (src/upstream/answer-text.ts). */
  private readonly api: Api;
  private sse = false;
  /** Reads usage and the served model: what a discarded answer cost. */
  private tap: ResponseTap | undefined = undefined;
  private bytes = 0;
  /** JSON: the body held; streams: nothing (the content is read event by event). */
  private body: Buffer[] = [];
  private decoder: StringDecoder | undefined = undefined;
  private parser: EventSourceParser | undefined = undefined;
  /** The content of the stream's window so far (at most `chars` and one event more). */
  private text = '';
  private toolCall = false;
  private inbandError = false;
  private firstToken = false;

  constructor(plan: CascadePlan, askedJson: boolean, api: Api = 'chat') {
    this.plan = plan;
    this.askedJson = askedJson;
    this.api = api;
  }

  /** The head of the response the tier's attempts settled on: hold it, or decide now. */
  head(status: number, sse: boolean): GateVerdict | 'hold' {
    if (status >= 500 || status === 429) return ERROR;
    if (status < 200 || status > 299) return PASS;
    this.sse = sse;
    // What a discarded answer cost is read in its own shape.
    this.tap = new ResponseTap(sse, 0, this.api);
    if (sse) {
      this.decoder = new StringDecoder('utf8');
      this.parser = createParser({ onEvent: (event) => this.onEvent(event), maxBufferSize: MAX_SSE_EVENT_CHARS });
    }
    return 'hold';
  }

  /** Milliseconds the window may still wait, once its first token arrived (Forwarding starts its timer then); undefined before. */
  get holdMs(): number | undefined {
    return this.sse && this.firstToken ? this.plan.streamHold.ms : undefined;
  }

  /** A chunk of the held body; undefined: keep holding. */
  push(chunk: Buffer): GateVerdict | undefined {
    this.bytes += chunk.length;
    this.tap!.push(chunk);
    if (!this.sse) {
      this.body.push(chunk);
      return this.bytes > MAX_CASCADE_BODY_BYTES ? PASS : undefined;
    }
    const before = this.text.length;
    this.parser!.feed(this.decoder!.write(chunk));
    if (this.inbandError) return ERROR;
    if (this.toolCall) return PASS;
    if (this.text.length >= this.plan.streamHold.chars) return this.window(false);
    // A failure the start already proves (a refusal, a non-JSON start) escalates at once, without
    // waiting for the window: checked while the text is short, so the checks cost O(EARLY_CHECK_CHARS) per event.
    if (this.text.length > before && before < EARLY_CHECK_CHARS) {
      const early = this.window(false);
      if (!early.pass) return early;
    }
    return this.bytes > MAX_STREAM_HOLD_BYTES ? PASS : undefined;
  }

  /** The body ended inside the hold: the whole answer is checked. */
  end(): GateVerdict {
    if (this.sse) {
      this.parser!.feed(this.decoder!.end());
      if (this.inbandError) return ERROR;
      return this.toolCall ? PASS : this.window(true);
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(Buffer.concat(this.body, this.bytes).toString('utf8'));
    } catch {
      return ERROR;
    } finally {
      this.body = [];
    }
    const answer = answerOfBody(this.api, parsed);
    if (answer.toolCall) return PASS;
    if (answer.text === undefined) return ERROR;
    return fail(checkAnswer(answer.text, this.plan.checks, this.askedJson));
  }

  /** `stream_hold.ms` passed since the first token: the window is what arrived. */
  timeUp(): GateVerdict {
    return this.window(false);
  }

  /** What the tap read of the held answer (usage and the served model, when reported). */
  facts(): ResponseFacts | undefined {
    return this.tap?.end();
  }

  private window(complete: boolean): GateVerdict {
    return fail(checkWindow(this.text, complete, this.plan.checks, this.askedJson));
  }

  private onEvent(event: EventSourceMessage): void {
    const data = event.data;
    if (data === '[DONE]') return;
    let obj: unknown;
    try {
      obj = JSON.parse(data);
    } catch {
      return;
    }
    const answer = answerOfEvent(this.api, event.event, obj);
    if (answer.error) this.inbandError = true;
    if (answer.toolCall) this.toolCall = true;
    if (answer.reasoning) this.firstToken = true;
    if (answer.text !== undefined) {
      this.firstToken = true;
      // Bounded: the window needs `chars` characters, and one event more is decided at once.
      if (this.text.length < this.plan.streamHold.chars) this.text += answer.text;
    }
  }
}
