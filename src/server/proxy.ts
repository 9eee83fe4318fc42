import type { OutgoingHttpHeaders } from 'node:http';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { ClientClosedError, ShuttingDownError, UpstreamTimeoutError, UpstreamUnreachableError, type SwitchyardError } from '../errors.js';
import type { StreamErrorKind, SwitchyardMetrics } from '../metrics/metrics.js';
import type { UpstreamClient } from '../upstream/client.js';
import { buildDownstreamHeaders, buildUpstreamHeaders, type UpstreamHeaderOptions } from '../upstream/headers.js';
import { relayBody } from '../upstream/relay.js';
import { ResponseTap } from '../upstream/response-tap.js';
import type { Lifecycle } from './lifecycle.js';

export interface ProxyDeps {
  readonly upstream: UpstreamClient;
  readonly lifecycle: Lifecycle;
  readonly headerOptions: Omit<UpstreamHeaderOptions, 'requestId'>;
  readonly metrics: SwitchyardMetrics | undefined;
}

export interface ForwardTarget {
  readonly method: string;
  /** Path below the upstream base URL, with the client's query string. */
  readonly path: string;
  readonly body: Buffer | string | undefined;
  readonly extraHeaders?: Readonly<Record<string, string>> | undefined;
  /** Read usage, model and errors from the response (completions, embeddings), not just relay it. */
  readonly tap: boolean;
}

/** Headers that make every proxy and client treat an SSE response as a live stream. */
const SSE_HEADERS = { 'cache-control': 'no-cache', 'x-accel-buffering': 'no' } as const;

function streamErrorKind(error: SwitchyardError): StreamErrorKind {
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
  const abort = new AbortController();
  exchange.upstreamAbort = abort;
  const headers = buildUpstreamHeaders(request.headers, { ...deps.headerOptions, requestId: request.id });
  if (target.extraHeaders) Object.assign(headers, target.extraHeaders);

  deps.lifecycle.add(exchange);
  try {
    let upstreamRes;
    exchange.markUpstreamSent();
    try {
      upstreamRes = await deps.upstream.request({ method: target.method, path: target.path, headers, body: target.body, signal: abort.signal });
    } catch (err) {
      const error = deps.upstream.mapError(err, abort.signal);
      deps.metrics?.upstreamAttempt(exchange.routedModel, error.code);
      if (error instanceof ClientClosedError) {
        // Nobody is left to answer; the log line records 499.
        reply.hijack();
        return;
      }
      throw error;
    }
    exchange.markUpstreamHeaders();
    exchange.upstreamStatus = upstreamRes.statusCode;
    deps.metrics?.upstreamAttempt(exchange.routedModel, upstreamRes.statusCode);

    const contentType = upstreamRes.headers['content-type'];
    const sse = typeof contentType === 'string' && contentType.startsWith('text/event-stream');
    const outHeaders: OutgoingHttpHeaders = buildDownstreamHeaders(upstreamRes.headers, { keepContentLength: !sse });
    if (sse) Object.assign(outHeaders, SSE_HEADERS);
    // Headers set earlier in the Fastify lifecycle (x-request-id, routing headers) go out too.
    const preset = reply.getHeaders();
    for (const name in preset) outHeaders[name] ??= preset[name];
    outHeaders['x-switchyard-overhead-ms'] = exchange.proxyMsNow().toFixed(3);

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

    const tap = target.tap ? new ResponseTap(sse) : undefined;
    if (sse) deps.metrics?.activeStreams.inc();
    const relay = relayBody(res, upstreamRes.body, {
      sse,
      eventId: `gen-switchyard-${request.id}`,
      model: exchange.routedModel,
      mapError: (err) => deps.upstream.mapError(err, abort.signal),
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
        } else if (sse && outcome === 'complete' && exchange.facts?.inbandError) {
          exchange.streamErrorKind = 'upstream_inband';
        }
      },
    });
    exchange.terminateRelay = relay.terminate;
    await relay.done;
  } finally {
    exchange.terminateRelay = undefined;
    deps.lifecycle.delete(exchange);
  }
}
