import { randomUUID } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { Exchange } from '../exchange.js';

declare module 'fastify' {
  interface FastifyRequest {
    exchange: Exchange;
  }
}

/** A client's request id is reused only when it is short and plain: it ends up in logs and headers. */
const SAFE_REQUEST_ID = /^[A-Za-z0-9._:\-]{1,128}$/;

/** Fastify's `genReqId`: the client's `x-request-id` when it is safe, a fresh UUID otherwise. */
export function requestIdFrom(header: string | string[] | undefined): string {
  return typeof header === 'string' && SAFE_REQUEST_ID.test(header) ? header : randomUUID();
}

/** Probes are logged at debug: a kubelet polling every few seconds would drown the request log. */
const PROBE_PATHS = new Set(['/healthz', '/readyz', '/metrics']);

function pathOf(url: string): string {
  const q = url.indexOf('?');
  return q === -1 ? url : url.slice(0, q);
}

/**
 * Gives every request an Exchange and an `x-request-id` response header, aborts the upstream call
 * the moment the client goes away, and writes the one log line per request when the response closes.
 *
 * Why not `request.signal`: it listens to the IncomingMessage 'close' event, which Node emits as
 * soon as the request body has been read, long before the client leaves. The ServerResponse 'close'
 * event without `writableFinished` is the reliable "client went away" signal.
 */
async function exchangePlugin(app: FastifyInstance): Promise<void> {
  app.decorateRequest('exchange', null as unknown as Exchange);

  app.addHook('onRequest', (request: FastifyRequest, reply: FastifyReply, done: () => void) => {
    const exchange = new Exchange();
    request.exchange = exchange;
    reply.header('x-request-id', request.id);
    const res = reply.raw;
    res.once('close', () => {
      if (!res.writableFinished && !exchange.endedByProxy) {
        exchange.clientClosed = true;
        exchange.upstreamAbort?.abort();
      }
      logExchange(request, reply);
    });
    done();
  });

  // Bodies Fastify sends itself (errors, probes); relayed bodies are counted by the relay.
  app.addHook('onSend', (request: FastifyRequest, _reply: FastifyReply, payload: unknown, done: (err: null, payload: unknown) => void) => {
    if (typeof payload === 'string') request.exchange.bytesOut = Buffer.byteLength(payload);
    else if (Buffer.isBuffer(payload)) request.exchange.bytesOut = payload.length;
    done(null, payload);
  });
}

function logExchange(request: FastifyRequest, reply: FastifyReply): void {
  const x = request.exchange;
  const path = pathOf(request.url);
  const status = x.clientClosed ? 499 : reply.raw.statusCode;
  const line: Record<string, unknown> = {
    method: request.method,
    path,
    status,
    duration_ms: Math.round(x.elapsedMs() * 1000) / 1000,
    bytes_in: x.bytesIn,
    bytes_out: x.bytesOut,
  };
  if (x.requestedModel !== undefined) line.model = x.requestedModel;
  if (x.rule !== undefined) line.rule = x.rule;
  if (x.routedModel !== x.requestedModel) line.routed_model = x.routedModel;
  if (x.stream) line.stream = true;
  if (x.upstreamStatus !== undefined) line.upstream_status = x.upstreamStatus;
  if (x.clientClosed) line.client_closed = true;
  if (x.error) {
    line.error_code = x.error.code;
    line.error = x.error.message;
  }
  const log = request.log;
  if (PROBE_PATHS.has(path)) log.debug(line, 'request');
  else if (status >= 500 && status !== 499) log.warn(line, 'request');
  else log.info(line, 'request');
}

export default fp(exchangePlugin, { name: 'switchyard-exchange', fastify: '5.x' });
