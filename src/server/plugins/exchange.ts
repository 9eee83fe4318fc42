import { randomUUID } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import type { Logger } from 'pino';
import { Exchange } from '../exchange.js';
import type { ExchangeRecorder } from '../recorder.js';

declare module 'fastify' {
  interface FastifyRequest {
    exchange: Exchange;
  }
}

export interface ExchangePluginOptions {
  /** Writes the log line and the metrics of each finished exchange. */
  readonly recorder: ExchangeRecorder;
}

/** A client's request id is reused only when it is short and plain: it ends up in logs and headers. */
const SAFE_REQUEST_ID = /^[A-Za-z0-9._:\-]{1,128}$/;

/** Fastify's `genReqId`: the client's `x-request-id` when it is safe, a fresh UUID otherwise. */
export function requestIdFrom(header: string | string[] | undefined): string {
  return typeof header === 'string' && SAFE_REQUEST_ID.test(header) ? header : randomUUID();
}

/**
 * Gives every request an Exchange and an `x-request-id` response header, aborts the upstream call
 * the moment the client goes away, and when the response closes hands the exchange to the
 * recorder (its log line and metrics).
 *
 * Why not `request.signal`: it listens to the IncomingMessage 'close' event, which Node emits as
 * soon as the request body has been read, long before the client leaves. The ServerResponse 'close'
 * event without `writableFinished` is the reliable "client went away" signal.
 */
async function exchangePlugin(app: FastifyInstance, options: ExchangePluginOptions): Promise<void> {
  app.decorateRequest('exchange', null as unknown as Exchange);
  // The per-attempt lines are debug lines: below debug, no attempt is recorded at all.
  const recordAttempts = (app.log as unknown as Logger).isLevelEnabled('debug');

  app.addHook('onRequest', (request: FastifyRequest, reply: FastifyReply, done: () => void) => {
    const exchange = new Exchange();
    request.exchange = exchange;
    // Taken now: once the client has gone, the closed socket no longer knows its peer. There is no
    // trust-proxy setting, so this is the TCP peer (a load balancer's address behind one).
    exchange.clientAddress = request.raw.socket.remoteAddress;
    exchange.userAgent = request.headers['user-agent'];
    if (recordAttempts) exchange.attempts = [];
    reply.header('x-request-id', request.id);
    const res = reply.raw;
    res.once('close', () => {
      // Nothing thrown here may escape: an event listener's exception kills the process and every
      // stream in flight (issue 12, defect 1). A bug in the log line or metrics costs that line only.
      try {
        if (!res.writableFinished && !exchange.endedByProxy) {
          exchange.clientClosed = true;
          exchange.upstreamAbort?.abort();
        }
        exchange.finish(exchange.clientClosed ? 499 : res.statusCode);
        options.recorder.record(request.exchange, request.log, request.method, request.url);
      } catch (err) {
        request.log.error({ err }, 'recording the finished request failed');
      }
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

export default fp(exchangePlugin, { name: 'signalbox-exchange', fastify: '5.x' });
