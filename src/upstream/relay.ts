import type { ServerResponse } from 'node:http';
import type { SignalboxError } from '../errors.js';
import type { Api } from '../rules/shapes.js';
import type { StreamErrorKind } from '../metrics/metrics.js';
import type { ResponseFacts, ResponseTap } from './response-tap.js';

/** `client_stalled`: the client read nothing for `writeTimeoutMs`; the relay ended the response. */
export type RelayOutcome = 'complete' | 'client_closed' | 'client_stalled' | 'upstream_error' | 'terminated';

/** What the relay stage hands to the record: how the response body ended, and what was read from it. */
export interface RelayResult {
  readonly outcome: RelayOutcome;
  /** Body bytes handed to the client's socket. */
  readonly bytesOut: number;
  /** What the response tap read; undefined when the response was not tapped. */
  readonly facts: ResponseFacts | undefined;
  /** The proxy's reason for ending the body early. */
  readonly error: SignalboxError | undefined;
  readonly streamErrorKind: StreamErrorKind | undefined;
  /** The proxy ended the response on purpose (an upstream failure mid-body, a stalled client, shutdown), not the client. */
  readonly endedByProxy: boolean;
}

/** How the relay stops and restarts the upstream body (undici's DispatchController). */
export interface RelaySource {
  pause(): void;
  resume(): void;
  /** Stops the upstream call: the body is not wanted any more. Called once the relay has settled. */
  abort(error: Error): void;
}

export interface RelayOptions {
  /** The response is an SSE stream: a failure mid-way ends it with a final error event. */
  readonly sse: boolean;
  /**
   * The request's shape. Its streams end with a terminal event of their own (Responses'
   * `response.completed`, Messages' `message_stop`): one that ends without it was cut. (Chat
   * streams are not held to `[DONE]`: OpenAI-compatible servers differ on it.)
   */
  readonly api: Api;
  /**
   * The final SSE event that ends a stream the proxy cuts, in the shape's own form
   * (src/server/error-envelope.ts, streamErrorEvent); `tail`: the last bytes written, to finish a
   * half-written event; `facts`: what the tap read so far (the response's id and model).
   */
  readonly errorEvent: (error: SignalboxError, tail: Buffer | undefined, facts: ResponseFacts | undefined) => Buffer;
  /**
   * How long the relay waits for the client's socket to drain before it ends the response and
   * aborts the upstream call: a paused upstream gets no idle timeout.
   */
  readonly writeTimeoutMs: number;
  /** Reads copies of the chunks once the socket has them (completions, embeddings); absent: relayed only. */
  readonly tap: ResponseTap | undefined;
  /**
   * Called once, when the relay is over, synchronously with the end of the client response: the
   * response's 'close' event (and so the record) comes on a later tick and sees this result.
   */
  readonly onSettled: (result: RelayResult) => void;
}

/** The abort reason of an upstream call whose client read nothing for writeTimeoutMs. */
class ClientStalledError extends Error {
  constructor() {
    super('the client read nothing for the client write timeout');
  }
}

function streamErrorKind(outcome: RelayOutcome, error: SignalboxError | undefined, sse: boolean, api: Api, facts: ResponseFacts | undefined): StreamErrorKind | undefined {
  if (error !== undefined) {
    if (error.code === 'shutting_down') return 'shutdown';
    if (error.code === 'upstream_timeout') return 'idle_timeout';
    return 'upstream_cut';
  }
  if (outcome === 'client_stalled') return 'client_write_timeout';
  if (sse && outcome === 'complete' && facts?.inbandError !== undefined) return 'upstream_inband';
  // The upstream closed the body cleanly but the answer never finished (a tap that read nothing says nothing).
  if (sse && outcome === 'complete' && api !== 'chat' && facts !== undefined && !facts.done) return 'upstream_cut';
  return undefined;
}

/**
 * Copies an upstream body to the client as it is pushed in: every chunk is written the moment it
 * arrives, never parsed, re-serialised, coalesced or held back. Only socket backpressure pauses the
 * source. The response head must already be written. Push-based, fed by the undici handler of the
 * upstream call (src/server/forward.ts): no Readable, no listener per chunk, and a 'drain'
 * listener only once the socket has pushed back.
 */
export class ResponseRelay {
  private readonly res: ServerResponse;
  private readonly source: RelaySource;
  private readonly options: RelayOptions;
  private bytesOut = 0;
  private settled = false;
  /** The last chunk written, to finish a half-written SSE event before a final error event. */
  private tail: Buffer | undefined = undefined;
  /**
   * One timer for the relay's life, re-armed (refresh) each time the relay starts waiting for
   * 'drain': it fires writeTimeoutMs after the latest wait began, and does nothing if that wait is over.
   */
  private writeTimer: NodeJS.Timeout | undefined = undefined;
  private waitingForDrain = false;
  private drainListener: (() => void) | undefined = undefined;
  /**
   * Chunks written but not yet read by the tap. A response write only corks the socket and flushes
   * it on process.nextTick (Node's connectionCorkNT, lib/_http_outgoing.js); a tick queued after it
   * runs after it, so the parsing stays off the frame's path. (A microtask would not do: inside a
   * promise job, microtasks run before the tick queue.) Bounded by what one tick can receive.
   */
  private readonly untapped: Buffer[] = [];
  private tapScheduled = false;
  private readonly tapPending = (): void => this.runTap();

  constructor(res: ServerResponse, source: RelaySource, options: RelayOptions) {
    this.res = res;
    this.source = source;
    this.options = options;
  }

  get done(): boolean {
    return this.settled;
  }

  /** A body chunk from the upstream. */
  write(chunk: Buffer): void {
    if (this.settled) return;
    this.tail = chunk;
    this.bytesOut += chunk.length;
    if (!this.res.write(chunk)) this.awaitDrain();
    if (this.options.tap === undefined) return;
    this.untapped.push(chunk);
    if (!this.tapScheduled) {
      this.tapScheduled = true;
      process.nextTick(this.tapPending);
    }
  }

  /** The upstream body ended. */
  end(): void {
    if (this.settled) return;
    this.res.end();
    this.finish('complete', undefined);
  }

  /** The upstream body failed mid-way (a cut, the idle timeout). */
  fail(error: SignalboxError): void {
    if (this.settled) return;
    if (this.res.destroyed) this.finish('client_closed', undefined);
    else this.endWithError('upstream_error', error);
  }

  /** Ends the relay now with a final error (shutdown grace elapsed). */
  terminate(error: SignalboxError): void {
    if (this.settled) return;
    this.endWithError('terminated', error);
    this.source.abort(error);
  }

  /** The client went away before the end. */
  clientClosed(error: Error): void {
    if (this.settled) return;
    this.finish('client_closed', undefined);
    this.source.abort(error);
  }

  private awaitDrain(): void {
    this.source.pause();
    this.waitingForDrain = true;
    if (this.drainListener === undefined) {
      this.drainListener = () => {
        this.waitingForDrain = false;
        this.source.resume();
      };
      this.res.on('drain', this.drainListener);
    }
    if (this.writeTimer !== undefined) this.writeTimer.refresh();
    else {
      this.writeTimer = setTimeout(() => this.onWriteTimeout(), this.options.writeTimeoutMs);
      this.writeTimer.unref();
    }
  }

  private onWriteTimeout(): void {
    if (this.settled || !this.waitingForDrain) return;
    // The client's buffer is full: an error event could not reach it, and the body is cut anyway.
    this.res.destroy();
    this.finish('client_stalled', undefined);
    this.source.abort(new ClientStalledError());
  }

  /** Ends the client's response because of `error`, as clearly as the format allows. */
  private endWithError(outcome: RelayOutcome, error: SignalboxError): void {
    if (this.options.sse && !this.res.destroyed) {
      // What the tap has read so far names the response the event ends (its id, its model).
      if (this.options.tap !== undefined) this.runTap();
      this.res.end(this.options.errorEvent(error, this.tail, this.options.tap?.facts));
    } else {
      // A JSON body cut half-way cannot carry an error; closing the connection is the signal.
      this.res.destroy();
    }
    this.finish(outcome, error);
  }

  private runTap(): void {
    this.tapScheduled = false;
    const tap = this.options.tap!;
    const chunks = this.untapped;
    for (let i = 0; i < chunks.length; i++) {
      // Runs on a tick of its own: an exception would kill the process and every stream in flight
      // (issue 12, defect 2). The tap only reads copies of bytes the client already has, so a
      // chunk it cannot read costs a fact of the log line, never the relay.
      try {
        tap.push(chunks[i]!);
      } catch {
        // the facts of this chunk are lost; the tap is total over hostile JSON, so this is a bug
      }
    }
    chunks.length = 0;
  }

  private finish(outcome: RelayOutcome, error: SignalboxError | undefined): void {
    if (this.settled) return;
    this.settled = true;
    clearTimeout(this.writeTimer);
    if (this.drainListener !== undefined) this.res.off('drain', this.drainListener);
    const tap = this.options.tap;
    let facts: ResponseFacts | undefined;
    if (tap !== undefined) {
      this.runTap();
      try {
        facts = tap.end();
      } catch {
        // total over hostile JSON; a bug here costs the record its facts, never the relay
      }
    }
    this.options.onSettled({
      outcome,
      bytesOut: this.bytesOut,
      facts,
      error,
      streamErrorKind: streamErrorKind(outcome, error, this.options.sse, this.options.api, facts),
      endedByProxy: error !== undefined || outcome === 'client_stalled',
    });
  }
}
