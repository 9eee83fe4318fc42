import type { IncomingHttpHeaders, ServerResponse } from 'node:http';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { clipText } from '../bounded-text.js';
import type { CascadeGate, GateVerdict } from '../experiments/cascade-gate.js';
import type { EscalationReason } from '../experiments/cascade-checks.js';
import { ClientClosedError, InternalError, SignalboxError, UpstreamUnreachableError } from '../errors.js';
import { AttemptMachine, type AttemptPlan, type AttemptRecord, type AttemptStep } from '../upstream/attempts.js';
import { parseHeaders, type UpstreamClient, type UpstreamHandler } from '../upstream/client.js';
import type { ModelCooldowns } from '../upstream/cooldown.js';
import { buildUpstreamHeaders, type UpstreamHeaderOptions } from '../upstream/headers.js';
import { ResponseRelay, type RelayResult, type RelaySource } from '../upstream/relay.js';
import { ResponseTap } from '../upstream/response-tap.js';
import type { RetryPolicy } from '../upstream/retry.js';
import { SecretScrubber } from '../upstream/scrub.js';
import type { FeedbackTokens } from '../experiments/feedback.js';
import type { Api } from '../rules/shapes.js';
import type { Exchange } from './exchange.js';
import type { Lifecycle } from './lifecycle.js';
import { streamErrorEvent } from './error-envelope.js';
import { relayedHead } from './response-head.js';

/** What the upstream call needs from the app, built once at start. */
export interface ForwardDeps {
  readonly upstream: UpstreamClient;
  readonly lifecycle: Lifecycle;
  readonly headerOptions: UpstreamHeaderOptions;
  /** The global retry policy of chat requests. */
  readonly retry: RetryPolicy;
  readonly cooldowns: ModelCooldowns;
  /** See ForwardTarget.firstTokenTimeoutMs; for chat requests. */
  readonly firstTokenTimeoutMs: number;
  /** See RelayOptions.writeTimeoutMs. */
  readonly clientWriteTimeoutMs: number;
  /** Signs the feedback token of routed answers; undefined while FEEDBACK_SECRET is unset. */
  readonly feedbackTokens?: FeedbackTokens | undefined;
}

/** The decision stage's answer, as the upstream call needs it. */
export interface ForwardTarget {
  readonly method: string;
  /** Path below the upstream base URL, with the client's query string. */
  readonly path: string;
  /** The first attempt's body. */
  readonly body: Buffer | string | undefined;
  /** The model sent (routed, or the client's for a pass-through request). */
  readonly model: string | undefined;
  /** The route's models and their bodies, for a routed request: built only when an attempt needs it (AttemptMachine). */
  readonly plan?: (() => AttemptPlan) | undefined;
  /** When to try again before the first byte reached the client. */
  readonly retry: RetryPolicy;
  /** A stream that yields no token within this many ms counts as a failed attempt (0: off). */
  readonly firstTokenTimeoutMs: number;
  readonly extraHeaders?: Readonly<Record<string, string>> | undefined;
  /** Read usage, model and errors from the response (completions, embeddings), not just relay it. */
  readonly tap: boolean;
  /**
   * The routed request's shape: how its response is read (usage, first token, terminal event) and
   * how the proxy ends its stream with an error. Chat (and pass-through) when absent.
   */
  readonly api?: Api | undefined;
  /**
   * A cascade tier with a tier after it (src/experiments/cascade.ts): the response the attempts
   * settle on is held until the gate passes it; a failed check, or the tier failing outright,
   * ends the call with an escalation instead of an answer.
   */
  readonly gate?: CascadeGate | undefined;
  /**
   * A cascade's attempts of the tiers before this one: the request's record lists them first
   * (signalbox_upstream_requests_total, the debug lines). Set on the exchange in `finish`, since
   * the record may be assembled in the same 'close' event that settles the relay.
   */
  readonly earlierAttempts?: readonly AttemptRecord[] | undefined;
  /** With `tap`: keep this many characters of the answer's text (facts.answerText; a judged shadow's comparison). */
  readonly captureAnswerChars?: number | undefined;
}

/** A call that ended without answering the client, so that the cascade's next tier answers. */
export interface Escalated {
  readonly reason: EscalationReason;
}

/**
 * What the attempts and relay stages return, set on the exchange once the call settles: a value,
 * not the call itself, so that nothing of the request (its body, the upstream's headers, the
 * relay) outlives it through the exchange.
 */
export interface ForwardResult {
  readonly attempts: readonly AttemptRecord[];
  /** The model of the last attempt, clipped. */
  readonly model: string | undefined;
  /** A routed request (its responses name the attempt's model in x-signalbox-model). */
  readonly routed: boolean;
  /** Status of the upstream response relayed to the client. */
  readonly upstreamStatus: number | undefined;
  /** How the relay ended; undefined when no response was relayed. */
  readonly relay: RelayResult | undefined;
  /** Time inside the proxy: before the first attempt, and writing the response head. */
  readonly proxyMs: number;
}

/**
 * At most this many bytes are held back while waiting for a first token (issue 12, defect 11: a
 * flood of SSE comments grew the hold to 1.6 GB). Real streams send their first token within a few
 * keep-alive comments and a role chunk, a few hundred bytes; 1 MiB also covers a large first
 * event. Past it the wait gives up and the stream is relayed as it is, held bytes first, exactly as
 * with the first-token timeout off: the bytes are an answer, only the option to retry it is lost,
 * and the relay's own bounds (socket backpressure, idle and client write timeouts) take over.
 */
export const MAX_FIRST_TOKEN_HOLD_BYTES = 1024 * 1024;

/**
 * The body of a response that is retried is read off the connection (so it can be reused) up to
 * this much, as undici's `dump()` does; a larger one is aborted, costing only that connection.
 */
const MAX_DISCARDED_BYTES = 128 * 1024;

function isSse(headers: IncomingHttpHeaders): boolean {
  const contentType = headers['content-type'];
  return typeof contentType === 'string' && contentType.startsWith('text/event-stream');
}

const NO_HEADERS: IncomingHttpHeaders = Object.freeze({});

/** Wall-clock milliseconds with sub-millisecond resolution: the attempt machine's clock (breaker times, Retry-After dates). */
function wallNow(): number {
  return performance.timeOrigin + performance.now();
}

type Phase = 'sending' | 'holding' | 'gating' | 'waiting' | 'relaying' | 'done';

/** The request, its reply and the upstream call's working objects, while the call runs. */
interface CallIO {
  readonly request: FastifyRequest;
  readonly reply: FastifyReply;
  readonly res: ServerResponse;
  readonly target: ForwardTarget;
  /** The upstream request's headers. */
  readonly headers: Record<string, string>;
  readonly machine: AttemptMachine;
}

/** The io of a settled call: nothing reads it (every entry point checks the phase or `current` first). */
const SETTLED = Object.freeze({}) as CallIO;

/**
 * One upstream attempt, as undici's dispatcher calls it (UpstreamHandler). It only passes undici's
 * calls on to its Forwarding while it is the current attempt; an attempt left behind (retried,
 * timed out, the client gone) reads the rest of its body off the connection, bounded, or is aborted.
 */
class AttemptHandler implements UpstreamHandler, RelaySource {
  private abortCall: ((reason: Error) => void) | undefined = undefined;
  private resumeCall: (() => void) | undefined = undefined;
  private paused = false;
  private aborted = false;
  private abandoned: Error | undefined = undefined;
  private discarded = 0;

  constructor(private readonly call: Forwarding) {}

  get current(): boolean {
    return this.call.current === this;
  }

  onConnect(abort: (reason: Error) => void): void {
    // Called again (with a new abort) when undici retries the request on another socket.
    this.abortCall = abort;
    this.aborted = false;
    if (this.abandoned !== undefined) this.abort(this.abandoned);
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void): boolean {
    this.resumeCall = resume;
    if (this.current) this.call.onHead(statusCode, parseHeaders(rawHeaders));
    return !this.paused;
  }

  /** The body is paused (the client's socket pushed back) by returning false here, resumed by `resume`. */
  onData(chunk: Buffer): boolean {
    if (this.current) {
      this.call.onData(chunk);
      return !this.paused;
    }
    this.discarded += chunk.length;
    if (this.discarded > MAX_DISCARDED_BYTES) this.abort(new Error('discarded body too large'));
    return true;
  }

  onComplete(): void {
    if (this.current) this.call.onEnd();
  }

  onError(error: Error): void {
    if (this.current) this.call.onUpstreamError(error);
  }

  pause(): void {
    this.paused = true;
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    this.resumeCall?.();
  }

  abort(reason: Error): void {
    this.abandoned = reason;
    if (this.abortCall !== undefined && !this.aborted) {
      this.aborted = true;
      this.abortCall(reason);
    }
  }
}

/**
 * The attempts and relay stages of one exchange: it asks the attempt machine what to do
 * (src/upstream/attempts.ts: send, wait, hold for a first token, relay, give up), does it with
 * undici's handler API and timers, and relays the chosen response through a ResponseRelay. Its
 * results (the attempts, the relay's result, the proxy's time) are read once, by the record.
 *
 * Errors before the upstream answers reject `run()` (Fastify's error handler answers them); once
 * a response head is written, the client gets the upstream's status, headers and bytes as they are.
 */
export class Forwarding {
  readonly exchange: Exchange;
  private readonly deps: ForwardDeps;
  /** What the call works with while it runs; SETTLED once it has settled (see `finish`). */
  private io: CallIO;
  /** The attempt in flight; undefined between attempts and once the answer is known. */
  current: AttemptHandler | undefined = undefined;
  private phase: Phase = 'sending';
  /** The retry wait or the first-token timeout: one at a time. */
  private timer: NodeJS.Timeout | undefined = undefined;
  private relay: ResponseRelay | undefined = undefined;
  private scrubber: SecretScrubber | undefined = undefined;
  /** The head of the current attempt's response. */
  private headStatus = 0;
  private headHeaders: IncomingHttpHeaders = NO_HEADERS;
  private headAt = 0;
  /** First-token hold: the chunks read, their size, the probe reading them, and whether the body ended. */
  private held: Buffer[] | undefined = undefined;
  private heldBytes = 0;
  private probe: ResponseTap | undefined = undefined;
  private heldEnded = false;
  /** performance.now() of the first attempt's send; NaN before it. */
  private firstSentAt = Number.NaN;
  /** Milliseconds spent writing response heads (from the upstream's head to the client's). */
  private headMs = 0;
  private settle: ((error?: SignalboxError) => void) | undefined = undefined;
  /** Set when a cascade's gate failed this tier: what `run` resolves with. */
  private escalated: Escalated | undefined = undefined;
  private readonly onClientClose = (): void => this.clientClosed();

  /** The model of the current (or last) attempt, clipped. */
  private model: string | undefined;
  /** Status of the upstream response relayed. */
  private upstreamStatus: number | undefined = undefined;
  private relayResult: RelayResult | undefined = undefined;
  /** An SSE response is being relayed (the signalbox_active_streams gauge). */
  streaming = false;

  constructor(request: FastifyRequest, reply: FastifyReply, deps: ForwardDeps, target: ForwardTarget) {
    this.exchange = request.exchange;
    this.deps = deps;
    this.model = clipText(target.model);
    const headers = buildUpstreamHeaders(request.headers, deps.headerOptions, request.id);
    if (target.extraHeaders !== undefined) Object.assign(headers, target.extraHeaders);
    const cooldowns = deps.cooldowns;
    const machine = new AttemptMachine({
      policy: target.retry,
      cooldowns,
      // Cooldowns are per credential for a 429 (src/upstream/cooldown.ts): the key this request sends.
      credential: target.plan !== undefined && cooldowns.enabled ? cooldowns.credentialOf(headers.authorization) : '-',
      model: target.model,
      body: target.body,
      plan: target.plan,
      firstTokenTimeoutMs: target.firstTokenTimeoutMs,
      startedAt: performance.timeOrigin + this.exchange.startedAt,
    });
    this.io = { request, reply, res: reply.raw, target, headers, machine };
  }

  /** Waiting before the next attempt (a retry's backoff or Retry-After). */
  get waiting(): boolean {
    return this.phase === 'waiting';
  }

  /** A routed request: its responses name the model of the attempt (x-signalbox-model). */
  private get routed(): boolean {
    return this.io.target.plan !== undefined;
  }

  /**
   * Runs the attempts and the relay; settles when the relay is over or the request has been given
   * up, with the escalation when a cascade's gate left this tier (nothing was written then).
   */
  run(): Promise<Escalated | undefined> {
    return new Promise<Escalated | undefined>((resolve, reject) => {
      this.settle = (error) => (error === undefined ? resolve(this.escalated) : reject(error));
      this.deps.lifecycle.add(this);
      // First in line: a client that leaves settles the relay (and the tap's facts) before the
      // exchange's own 'close' listener assembles the record.
      this.io.res.prependListener('close', this.onClientClose);
      this.guard(() => this.step(this.io.machine.start(wallNow())));
    });
  }

  /**
   * Ends this exchange on the proxy's initiative (shutdown grace elapsed): a relay in progress
   * gets a final error event, a request still waiting for upstream is answered with `error`.
   */
  terminate(error: SignalboxError): void {
    this.guard(() => {
      if (this.phase === 'relaying') this.relay!.terminate(error);
      else this.interrupt(error);
    });
  }

  /** The current attempt's response head. */
  onHead(status: number, headers: IncomingHttpHeaders): void {
    this.guard(() => {
      this.headAt = performance.now();
      this.headStatus = status;
      this.headHeaders = headers;
      const step = this.io.machine.next({ kind: 'head', status, headers, sse: isSse(headers) }, wallNow());
      // Retried: nothing of this answer reaches the client; its handler reads the rest off the connection.
      if (step.kind === 'wait' || step.kind === 'send') this.current = undefined;
      this.step(step);
    });
  }

  onData(chunk: Buffer): void {
    this.guard(() => {
      if (this.phase === 'relaying') this.relayChunk(chunk);
      else if (this.phase === 'holding') this.hold(chunk);
      else if (this.phase === 'gating') {
        this.held!.push(chunk);
        this.applyVerdict(this.io.target.gate!.push(chunk));
      }
    });
  }

  onEnd(): void {
    this.guard(() => {
      if (this.phase === 'relaying') this.endRelay();
      else if (this.phase === 'gating') {
        this.heldEnded = true;
        this.applyVerdict(this.io.target.gate!.end());
      } else if (this.phase === 'holding') {
        this.heldEnded = true;
        this.firstTokenSeen();
      }
    });
  }

  onUpstreamError(err: Error): void {
    this.guard(() => {
      const error = this.deps.upstream.mapError(err);
      if (this.phase === 'relaying') {
        this.relay!.fail(error);
        return;
      }
      if (this.phase === 'done') return;
      if (this.phase === 'gating') {
        this.escalate('error');
        return;
      }
      this.attemptFailed(error, undefined);
    });
  }

  /**
   * The current attempt got no usable answer (before its head, or while its first token was held);
   * `abortWith`: abort its call too. The machine says what follows.
   */
  private attemptFailed(error: SignalboxError, abortWith: Error | undefined): void {
    const holding = this.phase === 'holding';
    this.dropAttempt(abortWith);
    this.step(this.io.machine.next(holding ? { kind: 'stream_failed', error } : { kind: 'failed', error }, wallNow()));
  }

  private step(step: AttemptStep): void {
    switch (step.kind) {
      case 'send': {
        if (Number.isNaN(this.firstSentAt)) this.firstSentAt = performance.now();
        if (step.model !== undefined) this.model = clipText(step.model);
        this.phase = 'sending';
        const handler = new AttemptHandler(this);
        this.current = handler;
        const target = this.io.target;
        // Errors, synchronous ones included, come back through handler.onError.
        this.deps.upstream.dispatch({ method: target.method, path: target.path, headers: this.io.headers, body: step.body }, handler);
        return;
      }
      case 'wait':
        this.phase = 'waiting';
        if (step.ms <= 0) {
          this.step(this.io.machine.waited(wallNow()));
          return;
        }
        this.timer = setTimeout(() => this.guard(() => this.timerFired()), step.ms);
        this.timer.unref();
        return;
      case 'await_first_token':
        this.phase = 'holding';
        this.held = [];
        this.heldBytes = 0;
        this.heldEnded = false;
        this.probe = new ResponseTap(true, 0, this.io.target.api);
        this.timer = setTimeout(() => this.guard(() => this.timerFired()), step.timeoutMs);
        this.timer.unref();
        return;
      case 'relay':
        if (this.io.target.gate === undefined) this.startRelay();
        else this.openGate(this.io.target.gate);
        return;
      case 'give_up':
        // A cascade tier that failed outright (5xx after its retries, unreachable): the next tier answers.
        if (this.io.target.gate !== undefined && !(step.error instanceof ClientClosedError)) this.escalate('error');
        else this.giveUp(step.error);
        return;
    }
  }

  private timerFired(): void {
    this.timer = undefined;
    if (this.phase === 'waiting') {
      this.step(this.io.machine.waited(wallNow()));
    } else if (this.phase === 'gating') {
      this.applyVerdict(this.io.target.gate!.timeUp());
    } else if (this.phase === 'holding') {
      this.held = undefined;
      this.probe = undefined;
      this.dropAttempt(new UpstreamUnreachableError('first token timeout'));
      this.step(this.io.machine.next({ kind: 'first_token_timeout' }, wallNow()));
    }
  }

  /** Opt-in: a stream's first bytes are held until it yields a token, so that a stalled provider can still be retried. */
  private hold(chunk: Buffer): void {
    this.held!.push(chunk);
    this.heldBytes += chunk.length;
    const probe = this.probe!;
    probe.push(chunk);
    const f = probe.facts;
    if (f.firstTokenAt !== undefined || f.inbandError !== undefined || f.done || this.heldBytes > MAX_FIRST_TOKEN_HOLD_BYTES) this.firstTokenSeen();
  }

  private firstTokenSeen(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.probe = undefined;
    this.step(this.io.machine.next({ kind: 'first_token' }, wallNow()));
  }

  /**
   * A cascade tier's response, as the attempts settled on it: held, nothing written to the client,
   * until the gate passes it (src/experiments/cascade-gate.ts). Bytes already held for the first
   * token are the gate's first.
   */
  private openGate(gate: CascadeGate): void {
    const verdict = gate.head(this.headStatus, isSse(this.headHeaders));
    if (verdict !== 'hold') {
      this.applyVerdict(verdict);
      return;
    }
    this.phase = 'gating';
    const held = this.held ?? [];
    this.held = held;
    for (const chunk of held) {
      const early = gate.push(chunk);
      if (early !== undefined) {
        this.applyVerdict(early);
        return;
      }
    }
    this.applyVerdict(this.heldEnded ? gate.end() : undefined);
  }

  /** The gate's verdict on the held response: release it, escalate, or hold on (with the window's timer once its first token came). */
  private applyVerdict(verdict: GateVerdict | undefined): void {
    if (verdict === undefined) {
      const ms = this.io.target.gate!.holdMs;
      if (this.timer === undefined && ms !== undefined) {
        this.timer = setTimeout(() => this.guard(() => this.timerFired()), ms);
        this.timer.unref();
      }
      return;
    }
    clearTimeout(this.timer);
    this.timer = undefined;
    if (verdict.pass) this.startRelay();
    else this.escalate(verdict.reason);
  }

  /** This tier's answer is not given: its call is aborted, and `run` resolves with the reason. */
  private escalate(reason: EscalationReason): void {
    this.held = undefined;
    this.dropAttempt(new UpstreamUnreachableError('cascade escalated'));
    this.escalated = { reason };
    this.finish(undefined);
  }

  /** Drops the current attempt, aborting its call when `reason` is given. */
  private dropAttempt(reason: Error | undefined): void {
    const handler = this.current;
    this.current = undefined;
    if (reason !== undefined) handler?.abort(reason);
  }

  /** The client left, or the proxy ends the exchange, before any byte was relayed. */
  private interrupt(error: SignalboxError): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.held = undefined;
    this.probe = undefined;
    if (this.phase === 'sending' || this.phase === 'holding') {
      this.attemptFailed(error, error);
    } else if (this.phase === 'gating') {
      // The machine has settled on this response: nothing to retry, the call is aborted.
      this.dropAttempt(error);
      this.giveUp(error);
    } else if (this.phase === 'waiting') {
      this.giveUp(error);
    }
  }

  private clientClosed(): void {
    if (this.io.res.writableFinished) return;
    this.guard(() => {
      const error = new ClientClosedError();
      if (this.phase === 'relaying') this.relay!.clientClosed(error);
      else this.interrupt(error);
    });
  }

  private giveUp(error: SignalboxError): void {
    if (error instanceof ClientClosedError) {
      // Nobody is left to answer; the log line records 499.
      this.io.reply.hijack();
      this.finish(undefined);
    } else {
      this.finish(error);
    }
  }

  private startRelay(): void {
    const handler = this.current!;
    const status = this.headStatus;
    const serverKey = this.deps.headerOptions.apiKey;
    // An upstream that echoes the Authorization it received ("invalid key sk-or-...") must not
    // hand the key to the client: error bodies have it replaced as they stream. 2xx bodies and
    // streams are relayed untouched.
    const scrubbed = serverKey !== undefined && (status < 200 || status > 299);
    if (scrubbed) this.scrubber = new SecretScrubber(serverKey);
    const sse = isSse(this.headHeaders);
    const exchange = this.exchange;
    const now = performance.now();
    const head = relayedHead(status, this.headHeaders, { sse, lengthMayChange: scrubbed, secret: serverKey }, {
      requestId: this.io.request.id,
      rule: exchange.rule,
      model: this.routed ? this.model : undefined,
      attempts: this.io.machine.count,
      overheadMs: this.proxyMs() + (now - this.headAt),
      // A routed chat answer can be rated (issue 17): the model is the answering attempt's, since the served one is not known yet.
      feedbackToken: this.routed && exchange.rule !== undefined ? this.deps.feedbackTokens?.issue(exchange.rule, exchange.variant, this.model) : undefined,
    });
    const res = this.io.res;
    try {
      res.writeHead(status, head);
    } catch (err) {
      // A header Node refuses to write (invalid characters): still Fastify's to answer, with a 502.
      this.dropAttempt(new UpstreamUnreachableError('invalid response head'));
      this.finish(new UpstreamUnreachableError(`invalid response head from upstream (${(err as Error).message})`, { cause: err }));
      return;
    }
    this.io.reply.hijack();
    // Send the head now: a stream's client sees its headers before the first token.
    if (sse) res.flushHeaders();
    this.headMs += performance.now() - this.headAt;
    this.upstreamStatus = status;
    // No attempt will follow: a stream must not hold the client's body and its parsed tree for
    // its whole life (with long prompts, most of what an open stream costs in memory).
    exchange.releaseBody();
    this.io.request.body = undefined;
    this.phase = 'relaying';
    this.streaming = sse;
    const api = this.io.target.api ?? 'chat';
    const requestId = this.io.request.id;
    const model = this.model;
    this.relay = new ResponseRelay(res, handler, {
      sse,
      errorEvent: (error, tail, facts) => streamErrorEvent(api, error, { requestId, model, facts }, tail),
      writeTimeoutMs: this.deps.clientWriteTimeoutMs,
      tap: this.io.target.tap ? new ResponseTap(sse, this.io.target.captureAnswerChars, this.io.target.api) : undefined,
      api,
      onSettled: (result) => {
        this.relayResult = result;
        this.streaming = false;
        this.finish(undefined);
      },
    });
    const held = this.held;
    if (held !== undefined) {
      this.held = undefined;
      for (const chunk of held) this.relayChunk(chunk);
      if (this.heldEnded) this.endRelay();
    }
  }

  private relayChunk(chunk: Buffer): void {
    const out = this.scrubber === undefined ? chunk : this.scrubber.push(chunk);
    if (out !== undefined) this.relay!.write(out);
  }

  private endRelay(): void {
    const rest = this.scrubber?.flush();
    if (rest !== undefined) this.relay!.write(rest);
    this.relay!.end();
  }

  private finish(error: SignalboxError | undefined): void {
    if (this.phase === 'done' && this.settle === undefined) return;
    this.phase = 'done';
    const exchange = this.exchange;
    const earlier = this.io.target.earlierAttempts;
    exchange.upstream = {
      attempts: earlier === undefined || earlier.length === 0 ? this.io.machine.attempts : [...earlier, ...this.io.machine.attempts],
      model: this.model,
      routed: this.routed,
      upstreamStatus: this.upstreamStatus,
      relay: this.relayResult,
      proxyMs: this.proxyMs(),
    };
    // A call aborted from here on reports back to a handler that is no longer current: ignored.
    this.current = undefined;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.io.machine.release();
    this.io.res.off('close', this.onClientClose);
    this.deps.lifecycle.delete(this);
    const settle = this.settle;
    this.settle = undefined;
    this.dropReferences();
    settle?.(error);
  }

  /** Time inside the proxy: before the first attempt, and writing response heads (all of it when nothing was sent). */
  private proxyMs(): number {
    const startedAt = this.exchange.startedAt;
    return Number.isNaN(this.firstSentAt) ? performance.now() - startedAt : this.firstSentAt - startedAt + this.headMs;
  }

  /**
   * Lets go of everything the call points at once it has settled. A call still running at a
   * scavenge is moved to the old generation; once dead it stays there until the next full GC,
   * and every young object it still points at is kept alive, and promoted in turn, by each
   * scavenge meanwhile (V8's "nepotism"). Measured with --trace-gc-nvp at c=64: the young
   * objects surviving a scavenge fell from about 2.3 MB to 1.2 MB and its pause from 6.8 to 3.4 ms
   * (with the exchange letting go of the call's result once the record holds it).
   */
  private dropReferences(): void {
    this.io = SETTLED;
    this.relay = undefined;
    this.scrubber = undefined;
    this.held = undefined;
    this.probe = undefined;
    this.headHeaders = NO_HEADERS;
    this.relayResult = undefined;
  }

  /**
   * Runs a step from an undici callback, a timer or an event listener: nothing thrown there may
   * escape (issue 12, defect 1). A bug ends this exchange with an internal error, not the process.
   */
  private guard(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.dropAttempt(new InternalError({ cause: err }));
      if (this.phase === 'relaying' && this.relay !== undefined && !this.relay.done) {
        this.relay.fail(new InternalError({ cause: err }));
      } else {
        this.finish(err instanceof SignalboxError ? err : new InternalError({ cause: err }));
      }
    }
  }
}

/** The attempts and relay stages of one exchange (see Forwarding). */
export function forward(request: FastifyRequest, reply: FastifyReply, deps: ForwardDeps, target: ForwardTarget): Promise<Escalated | undefined> {
  return new Forwarding(request, reply, deps, target).run();
}
