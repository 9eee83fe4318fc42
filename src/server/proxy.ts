import type { OutgoingHttpHeaders } from 'node:http';
import { pipeline } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { ClientClosedError, ShuttingDownError, SignalboxError, UpstreamTimeoutError, UpstreamUnreachableError } from '../errors.js';
import { clipText } from '../bounded-text.js';
import type { StreamErrorKind, SignalboxMetrics } from '../metrics/metrics.js';
import { UpstreamAbort } from '../upstream/abort.js';
import type { UpstreamClient, UpstreamResponse } from '../upstream/client.js';
import { buildDownstreamHeaders, buildUpstreamHeaders, type UpstreamHeaderOptions } from '../upstream/headers.js';
import { SecretScrubber } from '../upstream/scrub.js';
import { relayBody } from '../upstream/relay.js';
import { ResponseTap } from '../upstream/response-tap.js';
import { attemptModels, type CooldownLease, type ModelCooldowns } from '../upstream/cooldown.js';
import { isRetryableError, isRetryableStatus, nextAttempt, retryAfterMs, sdkRetriesStatus, type RetryPolicy } from '../upstream/retry.js';
import type { Lifecycle } from './lifecycle.js';

export interface ProxyDeps {
  readonly upstream: UpstreamClient;
  readonly lifecycle: Lifecycle;
  readonly headerOptions: Omit<UpstreamHeaderOptions, 'requestId'>;
  readonly metrics: SignalboxMetrics | undefined;
  /** The global retry policy of chat requests. */
  readonly retry: RetryPolicy;
  readonly cooldowns: ModelCooldowns;
  /** See ForwardTarget.firstTokenTimeoutMs; for chat requests. */
  readonly firstTokenTimeoutMs: number;
  /** See RelayOptions.writeTimeoutMs. */
  readonly clientWriteTimeoutMs: number;
}

/**
 * The upstream attempts of a routed chat request: the routed model, then its fallbacks, each
 * attempt starting one further along the list, cooling models left out (`attemptModels`).
 */
export interface AttemptPlan {
  readonly models: readonly string[];
  /** The body of an attempt that sends `models[0]` with `models` as OpenRouter's fallback list. */
  bodyFor(models: readonly string[]): Buffer | string;
}

export interface ForwardTarget {
  readonly method: string;
  /** Path below the upstream base URL, with the client's query string. */
  readonly path: string;
  /** The body when there is no attempt plan. */
  readonly body: Buffer | string | undefined;
  readonly plan?: AttemptPlan | undefined;
  /** When to try again before the first byte reached the client; never when absent. */
  readonly retry?: RetryPolicy | undefined;
  /** A stream that yields no token within this many ms counts as a failed attempt (0 or absent: off). */
  readonly firstTokenTimeoutMs?: number | undefined;
  readonly extraHeaders?: Readonly<Record<string, string>> | undefined;
  /** Read usage, model and errors from the response (completions, embeddings), not just relay it. */
  readonly tap: boolean;
}

const NO_RETRY: RetryPolicy = { maxAttempts: 1, statuses: new Set(), budgetMs: 0, retryAfterCapMs: 0, onNetworkErrors: false };

/** The breaker counts a failed connection or a timeout as a failure of the model, whatever the retry settings. */
const NETWORK_FAILURES: RetryPolicy = { ...NO_RETRY, onNetworkErrors: true };

/**
 * The models of an attempt (`attemptModels`), claimed now: when the first is a model whose
 * cooldown has just ended, this attempt's lease holds its one probe. Chosen as not cooling at this
 * same `now`, so the claim holds; when every model is cooling it takes no probe, and the list is
 * tried anyway. The caller releases the lease once the attempt is over, whatever its end.
 */
function claimAttemptModels(
  route: readonly string[], failed: string | undefined, cooldowns: ModelCooldowns, credential: string,
): { models: readonly string[]; lease: CooldownLease | undefined } {
  const now = Date.now();
  const models = attemptModels(route, failed, cooldowns, credential, now);
  const lease = cooldowns.enabled && models[0] !== undefined ? cooldowns.lease(models[0], credential, now) : undefined;
  return { models, lease };
}

/** An unpaired UTF-16 surrogate (with the u flag, a paired one is one code point and does not match). */
const LONE_SURROGATE = /\p{Surrogate}/gu;

/** The longest response header value made from a client-chosen string. */
const MAX_HEADER_VALUE_CHARS = 200;
const HEADER_SAFE = /^[\x21-\x7e]{1,200}$/;

/** A response header value from a client-chosen string: visible ASCII only, at most 200 characters. */
export function headerSafe(value: string): string {
  if (HEADER_SAFE.test(value)) return value;
  // Cut first: only the first 200 characters can show, and a 15 MB model is not encoded whole.
  // encodeURIComponent throws URIError on an unpaired surrogate (a rule's model can hold one, and
  // the cut can split a pair), so those become U+FFFD first.
  const head = value.slice(0, MAX_HEADER_VALUE_CHARS).replace(LONE_SURROGATE, '\ufffd');
  return encodeURIComponent(head).slice(0, MAX_HEADER_VALUE_CHARS) || '-';
}

/**
 * Waits before the next attempt. False when the wait was cut short: by the client leaving (the
 * reply is then hijacked, nothing to answer) — a shutdown's abort is thrown as its 503.
 */
function pause(ms: number, abort: UpstreamAbort, reply: FastifyReply): Promise<boolean> {
  if (ms <= 0 && !abort.aborted) return Promise.resolve(true);
  return new Promise((resolve, reject) => {
    const onAbort = (): void => {
      clearTimeout(timer);
      if (abort.reason instanceof SignalboxError) {
        reject(abort.reason);
        return;
      }
      reply.hijack();
      resolve(false);
    };
    const timer = setTimeout(() => {
      abort.off('abort', onAbort);
      resolve(true);
    }, ms);
    timer.unref();
    if (abort.aborted) onAbort();
    else abort.once('abort', onAbort);
  });
}

function isSse(res: UpstreamResponse): boolean {
  const contentType = res.headers['content-type'];
  return typeof contentType === 'string' && contentType.startsWith('text/event-stream');
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

type FirstToken = { readonly kind: 'held'; readonly chunks: Buffer[] } | { readonly kind: 'timeout' } | { readonly kind: 'error'; readonly error: unknown };

/**
 * Reads a stream until an event carries a token (or an error, or [DONE], or the end, or more than
 * MAX_FIRST_TOKEN_HOLD_BYTES), keeping the chunks read; the body is left paused for the relay.
 * Times out after `timeoutMs`.
 */
function awaitFirstToken(body: UpstreamResponse['body'], timeoutMs: number, signal: UpstreamAbort): Promise<FirstToken> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let heldBytes = 0;
    const probe = new ResponseTap(true);
    const finish = (result: FirstToken): void => {
      clearTimeout(timer);
      body.off('data', onData);
      body.off('end', onEnd);
      body.off('error', onError);
      signal.off('abort', onAbort);
      resolve(result);
    };
    const onData = (chunk: Buffer): void => {
      chunks.push(chunk);
      heldBytes += chunk.length;
      probe.push(chunk);
      const f = probe.facts;
      if (f.firstTokenAt !== undefined || f.inbandError !== undefined || f.done || heldBytes > MAX_FIRST_TOKEN_HOLD_BYTES) {
        body.pause();
        finish({ kind: 'held', chunks });
      }
    };
    const onEnd = (): void => finish({ kind: 'held', chunks });
    const onError = (error: unknown): void => finish({ kind: 'error', error });
    const onAbort = (): void => finish({ kind: 'error', error: signal.reason });
    const timer = setTimeout(() => finish({ kind: 'timeout' }), timeoutMs);
    timer.unref();
    body.on('data', onData);
    body.once('end', onEnd);
    body.once('error', onError);
    signal.once('abort', onAbort);
  });
}

/**
 * A non-2xx upstream response whose body has the server key replaced as it streams: an upstream
 * that echoes the Authorization it received ("invalid key sk-or-...") must not hand the key to
 * the client. Error bodies only: 2xx bodies and streams are relayed untouched. A body error (a
 * cut, the idle timeout) reaches the scrubber, and so the relay, as it is; destroying the
 * scrubber (the client left) destroys the upstream body.
 */
function withScrubbedBody(res: UpstreamResponse, serverKey: string): UpstreamResponse {
  const scrubber = new SecretScrubber(serverKey);
  pipeline(res.body, scrubber, () => undefined);
  return { statusCode: res.statusCode, headers: res.headers, body: scrubber as unknown as UpstreamResponse['body'] };
}

/** Headers that make every proxy and client treat an SSE response as a live stream. */
const SSE_HEADERS = { 'cache-control': 'no-cache', 'x-accel-buffering': 'no' } as const;

function streamErrorKind(error: SignalboxError): StreamErrorKind {
  if (error instanceof ShuttingDownError) return 'shutdown';
  if (error instanceof UpstreamTimeoutError) return 'idle_timeout';
  return 'upstream_cut';
}

/**
 * The upstream call and the response relay for one exchange. Errors before the upstream answers
 * are thrown (the error handler turns them into the OpenAI envelope); once the upstream has
 * answered, its status, headers and body bytes go to the client as they are, and a tap reads
 * the facts to record from copies of the chunks already written.
 */
export async function forward(request: FastifyRequest, reply: FastifyReply, deps: ProxyDeps, target: ForwardTarget): Promise<void> {
  const exchange = request.exchange;
  const abort = new UpstreamAbort();
  exchange.upstreamAbort = abort;
  const headers = buildUpstreamHeaders(request.headers, deps.headerOptions, request.id);
  if (target.extraHeaders) Object.assign(headers, target.extraHeaders);

  deps.lifecycle.add(exchange);
  // The breaker's hold of the current attempt, released in `finally` when the client leaves first.
  let lease: CooldownLease | undefined;
  try {
    const policy = target.retry ?? NO_RETRY;
    const plan = target.plan;
    const cooldowns = deps.cooldowns;
    let upstreamRes: UpstreamResponse | undefined;
    /** Chunks read while waiting for the first token (first-token timeout), relayed first. */
    let held: Buffer[] = [];
    // The model of the attempt that just failed: the next attempt's models follow from it.
    let failed: string | undefined;
    // Cooldowns are per credential for a 429 (src/upstream/cooldown.ts): the key this request sends.
    const credential = plan && cooldowns.enabled ? cooldowns.credentialOf(headers.authorization) : '-';
    for (let attempt = 1; upstreamRes === undefined; attempt++) {
      lease?.release();
      const claim = plan ? claimAttemptModels(plan.models, failed, cooldowns, credential) : undefined;
      const models = claim?.models;
      lease = claim?.lease;
      const model = models ? models[0] : exchange.routedModel;
      exchange.routedModel = clipText(model);
      reply.header('x-signalbox-attempts', String(attempt));
      if (model !== undefined && plan) reply.header('x-signalbox-model', headerSafe(model));
      /**
       * The model the next attempt will try, as the breaker stands once this attempt's failure is
       * recorded (call it after that); it is chosen again when that attempt starts, which only
       * differs if another request changed a cooldown during the wait.
       */
      const nextModel = (): string | undefined => (plan ? attemptModels(plan.models, model, cooldowns, credential, Date.now())[0] : model);
      /** Counts a retry to `next` and waits for it; false when the client left meanwhile. */
      const retryNext = (next: string | undefined, reason: string, waitMs: number): Promise<boolean> => {
        deps.metrics?.fallback(model, next, reason);
        failed = model;
        exchange.markAttemptRetried(waitMs);
        return pause(waitMs, abort, reply);
      };
      exchange.markUpstreamSent(model);
      let res: UpstreamResponse;
      try {
        res = await deps.upstream.request({
          method: target.method, path: target.path, headers, body: plan && models ? plan.bodyFor(models) : target.body, signal: abort,
        });
      } catch (err) {
        const error = deps.upstream.mapError(err, abort);
        deps.metrics?.upstreamAttempt(model, error.code);
        exchange.markAttemptOutcome(error.code);
        if (error instanceof ClientClosedError) {
          // Nobody is left to answer; the log line records 499.
          reply.hijack();
          return;
        }
        if (isRetryableError(NETWORK_FAILURES, error)) lease?.failure('upstream');
        const next = nextModel();
        const verdict = isRetryableError(policy, error) ? nextAttempt(policy, attempt, exchange.elapsedMs(), undefined, next === model) : undefined;
        if (!verdict?.retry) throw error;
        if (!(await retryNext(next, error.code, verdict.waitMs))) return;
        continue;
      }
      deps.metrics?.upstreamAttempt(model, res.statusCode);
      exchange.markAttemptOutcome(res.statusCode);
      if (target.firstTokenTimeoutMs && res.statusCode === 200 && isSse(res)) {
        // Opt-in: hold this stream's first bytes until it yields a token, so that a provider that
        // accepts and then stalls can still be retried before the client saw anything.
        const first = await awaitFirstToken(res.body, target.firstTokenTimeoutMs, abort);
        if (first.kind === 'held') {
          held = first.chunks;
        } else {
          res.body.destroy();
          if (abort.aborted) {
            if (abort.reason instanceof SignalboxError) throw abort.reason;
            reply.hijack();
            return;
          }
          const error = first.kind === 'timeout'
            ? new UpstreamTimeoutError('first_token', target.firstTokenTimeoutMs)
            : deps.upstream.mapError(first.error, abort);
          exchange.markAttemptOutcome(first.kind === 'timeout' ? 'first_token_timeout' : error.code);
          // A local error (internal_error) is not the model's failure, and fails again on retry.
          if (first.kind === 'error' && !isRetryableError(NETWORK_FAILURES, error)) throw error;
          lease?.failure('upstream');
          const next = nextModel();
          const verdict = nextAttempt(policy, attempt, exchange.elapsedMs(), undefined, next === model);
          if (!verdict.retry) throw error;
          if (!(await retryNext(next, first.kind === 'timeout' ? 'first_token_timeout' : error.code, verdict.waitMs))) return;
          continue;
        }
      }
      const retryable = res.statusCode >= 400 && isRetryableStatus(policy, res.statusCode, res.headers);
      // A 429 is the rate limit of the key sent; a 5xx is the model's, whoever asks.
      if (res.statusCode === 429) lease?.failure('credential');
      else if (res.statusCode >= 500) lease?.failure('upstream');
      else lease?.success();
      if (retryable) {
        const next = nextModel();
        const verdict = nextAttempt(policy, attempt, exchange.elapsedMs(), retryAfterMs(res.headers), next === model);
        if (verdict.retry) {
          // Nothing of this answer reached the client: read it off the connection and try again.
          await res.body.dump().catch(() => undefined);
          if (!(await retryNext(next, String(res.statusCode), verdict.waitMs))) return;
          continue;
        }
      }
      upstreamRes = res;
    }
    exchange.markUpstreamHeaders();
    exchange.upstreamStatus = upstreamRes.statusCode;

    const serverKey = deps.headerOptions.apiKey;
    const scrubbed = serverKey !== undefined && (upstreamRes.statusCode < 200 || upstreamRes.statusCode > 299);
    if (scrubbed) upstreamRes = withScrubbedBody(upstreamRes, serverKey);
    const sse = isSse(upstreamRes);
    // A scrubbed body's length may change: it goes out chunked.
    const outHeaders: OutgoingHttpHeaders = buildDownstreamHeaders(upstreamRes.headers, { keepContentLength: !sse && !scrubbed, secret: serverKey });
    if (sse) Object.assign(outHeaders, SSE_HEADERS);
    // Headers set earlier in the Fastify lifecycle (x-request-id, routing headers) are the proxy's
    // own and win over any upstream header of the same name.
    const preset = reply.getHeaders();
    for (const name in preset) outHeaders[name] = preset[name];
    outHeaders['x-signalbox-overhead-ms'] = exchange.proxyMsNow().toFixed(3);
    // An upstream error the proxy already retried, or that no retry can fix: the SDK must not try
    // again (else 3 proxy attempts times 3 SDK calls reach OpenRouter; issue 11).
    if (upstreamRes.statusCode >= 400 && (exchange.upstreamAttempts > 1 || !sdkRetriesStatus(upstreamRes.statusCode))) {
      outHeaders['x-should-retry'] = 'false';
    }

    const res = reply.raw;
    try {
      res.writeHead(upstreamRes.statusCode, outHeaders);
    } catch (err) {
      // A header Node refuses to write (invalid characters): still Fastify's to answer, with a 502.
      upstreamRes.body.destroy();
      throw new UpstreamUnreachableError(`invalid response head from upstream (${(err as Error).message})`, { cause: err });
    }
    reply.hijack();
    // Send the head now: a stream's client sees its headers before the first token.
    if (sse) res.flushHeaders();
    exchange.markHeadWritten();
    // No attempt will follow: a stream must not hold the client's body and its parsed tree for
    // its whole life (with long prompts, most of what an open stream costs in memory).
    exchange.releaseBody();
    request.body = undefined;

    const tap = target.tap ? new ResponseTap(sse) : undefined;
    if (sse) deps.metrics?.activeStreams.inc();
    const relay = relayBody(res, upstreamRes.body, {
      sse,
      initial: held,
      eventId: `gen-signalbox-${request.id}`,
      model: exchange.routedModel,
      writeTimeoutMs: deps.clientWriteTimeoutMs,
      mapError: (err) => deps.upstream.mapError(err, abort),
      onChunk: (chunk) => {
        exchange.bytesOut += chunk.length;
        tap?.push(chunk);
      },
      onSettled: (outcome, error) => {
        if (sse) deps.metrics?.activeStreams.dec();
        exchange.facts = tap?.end();
        if (error) {
          exchange.error = error;
          exchange.endedByProxy = true;
          exchange.streamErrorKind = streamErrorKind(error);
        } else if (outcome === 'client_stalled') {
          exchange.endedByProxy = true;
          exchange.streamErrorKind = 'client_write_timeout';
        } else if (sse && outcome === 'complete' && exchange.facts?.inbandError) {
          exchange.streamErrorKind = 'upstream_inband';
        }
      },
    });
    exchange.terminateRelay = relay.terminate;
    await relay.done;
  } finally {
    lease?.release();
    exchange.terminateRelay = undefined;
    deps.lifecycle.delete(exchange);
  }
}
