import type { ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import type { SignalboxError } from '../errors.js';
import { sseErrorEvent } from './sse.js';

/** `client_stalled`: the client read nothing for `writeTimeoutMs`; the relay ended the response. */
export type RelayOutcome = 'complete' | 'client_closed' | 'client_stalled' | 'upstream_error' | 'terminated';

export interface RelayOptions {
  /** The response is an SSE stream: a failure mid-way ends it with a final error event. */
  readonly sse: boolean;
  /** Chunks already read from `body` (waiting for a first token), written before the rest. */
  readonly initial?: readonly Buffer[];
  /** Completion id and model for a final SSE error event. */
  readonly eventId: string;
  readonly model: string | undefined;
  /**
   * How long the relay waits for the client's socket to drain before it ends the response and
   * destroys the body (aborting the upstream): a paused upstream gets no idle timeout.
   */
  readonly writeTimeoutMs: number;
  readonly mapError: (err: unknown) => SignalboxError;
  /** Called for every chunk, in order, after the client socket has been handed it (and before onSettled). */
  readonly onChunk: (chunk: Buffer) => void;
  /**
   * Called once, when the relay is over, synchronously with the end of the client response: the
   * response's 'close' event (and so the request log line and metrics) comes on a later tick and
   * sees what this callback recorded. `error` is the proxy's reason for ending it early.
   */
  readonly onSettled: (outcome: RelayOutcome, error: SignalboxError | undefined) => void;
}

export interface RelayHandle {
  /** Resolves when the relay is over. */
  readonly done: Promise<RelayOutcome>;
  /** Ends the relay now with a final error (shutdown grace elapsed). */
  terminate(error: SignalboxError): void;
}

/**
 * Copies the upstream body to the client as it arrives: every chunk is written the moment it is
 * read, never parsed, re-serialised, coalesced or held back (only socket backpressure pauses the
 * upstream). The response head must already be written.
 */
export function relayBody(res: ServerResponse, body: Readable, options: RelayOptions): RelayHandle {
  let settle!: (outcome: RelayOutcome) => void;
  const done = new Promise<RelayOutcome>((resolve) => (settle = resolve));
  let settled = false;
  let tail: Buffer | undefined;
  /**
   * One timer for the relay's life, re-armed (refresh) each time the relay starts waiting for
   * 'drain': it fires writeTimeoutMs after the latest wait began, and does nothing if that wait is over.
   */
  let writeTimer: NodeJS.Timeout | undefined;
  let waitingForDrain = false;
  const awaitDrain = (): void => {
    body.pause();
    waitingForDrain = true;
    if (writeTimer) writeTimer.refresh();
    else {
      writeTimer = setTimeout(onWriteTimeout, options.writeTimeoutMs);
      writeTimer.unref();
    }
  };

  // The tap reads each chunk once the socket has it. A response write only corks the socket and
  // flushes it on process.nextTick (Node's connectionCorkNT, lib/_http_outgoing.js); a tick
  // queued after it runs after it, so the parsing stays off the frame's path. (A microtask would
  // not do: inside a promise job, microtasks run before the tick queue.)
  const untapped: Buffer[] = [];
  let tapScheduled = false;
  const tapPending = (): void => {
    tapScheduled = false;
    for (let i = 0; i < untapped.length; i++) {
      // Runs on a tick of its own: an exception would kill the process and every stream in flight
      // (issue 12, defect 2). The tap only reads copies of bytes the client already has, so a
      // chunk it cannot read costs a fact of the log line, never the relay.
      try {
        options.onChunk(untapped[i]!);
      } catch {
        // the facts of this chunk are lost; the tap is total over hostile JSON, so this is a bug
      }
    }
    untapped.length = 0;
  };

  const finish = (outcome: RelayOutcome, error?: SignalboxError): void => {
    if (settled) return;
    settled = true;
    clearTimeout(writeTimer);
    tapPending();
    body.off('data', onData);
    res.off('drain', onDrain);
    res.off('close', onClientClose);
    options.onSettled(outcome, error);
    settle(outcome);
  };

  /** Ends the client's response because of `error`, as clearly as the format allows. */
  const endWithError = (outcome: RelayOutcome, error: SignalboxError): void => {
    if (options.sse && !res.destroyed) {
      res.end(sseErrorEvent({ id: options.eventId, model: options.model, code: error.code, message: error.message }, tail));
    } else {
      // A JSON body cut half-way cannot carry an error; closing the connection is the signal.
      res.destroy();
    }
    finish(outcome, error);
  };

  function onData(chunk: Buffer): void {
    tail = chunk;
    if (!res.write(chunk)) awaitDrain();
    untapped.push(chunk);
    if (!tapScheduled) {
      tapScheduled = true;
      process.nextTick(tapPending);
    }
  }
  function onDrain(): void {
    waitingForDrain = false;
    body.resume();
  }
  function onWriteTimeout(): void {
    if (settled || !waitingForDrain) return;
    // The client's buffer is full: an error event could not reach it, and the body is cut anyway.
    body.off('data', onData);
    body.destroy();
    res.destroy();
    finish('client_stalled');
  }
  function onClientClose(): void {
    if (res.writableFinished) return;
    body.destroy();
    finish('client_closed');
  }
  function onEnd(): void {
    if (settled) return;
    res.end();
    finish('complete');
  }
  function onError(err: unknown): void {
    if (settled) return;
    if (res.destroyed) {
      finish('client_closed');
      return;
    }
    endWithError('upstream_error', options.mapError(err));
  }

  // Kept after settling, so that a late error from a destroyed body is never unhandled.
  body.on('error', onError);
  res.on('drain', onDrain);
  // First in line: a client that leaves settles the relay (and the tap's facts) before the
  // exchange's own 'close' listener writes the log line and the metrics.
  res.prependOnceListener('close', onClientClose);
  for (const chunk of options.initial ?? []) onData(chunk);
  if (body.readableEnded) {
    // The whole body was read while waiting for the first token.
    onEnd();
  } else {
    body.on('data', onData);
    body.once('end', onEnd);
    // A body paused by the first-token wait flows again (a no-op for one already flowing),
    // unless the client's socket is already full: then 'drain' resumes it.
    if (!res.writableNeedDrain) body.resume();
    else awaitDrain();
  }

  return {
    done,
    terminate(error: SignalboxError): void {
      if (settled) return;
      body.off('data', onData);
      body.destroy();
      endWithError('terminated', error);
    },
  };
}
