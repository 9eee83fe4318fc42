import { randomUUID } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { Exchange } from '../exchange.js';
import type { Lifecycle } from '../lifecycle.js';
import type { ExchangeRecorder } from '../recorder.js';

declare module 'fastify' {
  interface FastifyRequest {
    exchange: Exchange;
  }
}

export interface ExchangePluginOptions {
  /** Writes the log line and the metrics of each finished exchange. */
  readonly recorder: ExchangeRecorder;
  /** Tracks each request from its arrival to its response's close, for graceful shutdown. */
  readonly lifecycle?: Lifecycle;
}

/** A client's request id is reused only when it is short and plain: it ends up in logs and headers. */
const SAFE_REQUEST_ID = /^[A-Za-z0-9._:\-]{1,128}$/;

/** Fastify's `genReqId`: the client's `x-request-id` when it is safe, a fresh UUID otherwise. */
export function requestIdFrom(header: string | string[] | undefined): string {
  return typeof header === 'string' && SAFE_REQUEST_ID.test(header) ? header : randomUUID();
}

/**
 * Gives every request an Exchange and an `x-request-id` response header, and when the response
 * closes hands the exchange's record to the recorder (its log line and metrics). The upstream call
 * listens to the same 'close' itself, to abort the moment the client goes away.
 *
 * Why not `request.signal`: it listens to the IncomingMessage 'close' event, which Node emits as
 * soon as the request body has been read, long before the client leaves. The ServerResponse 'close'
 * event without `writableFinished` is the reliable "client went away" signal.
 */
async function exchangePlugin(app: FastifyInstance, options: ExchangePluginOptions): Promise<void> {
  app.decorateRequest('exchange', null as unknown as Exchange);

  app.addHook('onRequest', (request: FastifyRequest, reply: FastifyReply, done: () => void) => {
    const exchange = new Exchange();
    request.exchange = exchange;
    // Taken now: once the client has gone, the closed socket no longer knows its peer. There is no
    // trust-proxy setting, so this is the TCP peer (a load balancer's address behind one).
    exchange.clientAddress = request.raw.socket.remoteAddress;
    exchange.userAgent = request.headers['user-agent'];
    reply.header('x-request-id', request.id);
    // Arrivals while draining are answered 503 at once; those before it are waited for, uploads included.
    const lifecycle = options.lifecycle;
    if (lifecycle !== undefined && !lifecycle.draining) lifecycle.track(exchange, reply);
    const res = reply.raw;
    // A pipelined request waits for the responses ahead of it without a socket of its own, and
    // Node emits 'close' only on the response that holds the socket when the connection closes
    // (lib/_http_server.js, onServerResponseClose): a queued one never hears of it, and its
    // upstream stream would run on, billed, unlogged and unmetered (issue 12, defect 8). Only such
    // a response listens to the connection, until it gets the socket; then Node's own 'close' covers it.
    if (res.socket === null) closeWithConnection(res, request.raw.socket);
    res.once('close', () => {
      lifecycle?.untrack(exchange);
      // Nothing thrown here may escape: an event listener's exception kills the process and every
      // stream in flight (issue 12, defect 1). A bug in the log line or metrics costs that line only.
      try {
        // The upstream call has heard of it already (its own 'close' listener runs first).
        const clientClosed = !res.writableFinished && exchange.upstream?.relay?.endedByProxy !== true;
        options.recorder.record(exchange.record(clientClosed ? 499 : res.statusCode, clientClosed, request.method, request.url), request.log);
      } catch (err) {
        request.log.error({ err }, 'recording the finished request failed');
      }
    });
    done();
  });

  // Bodies Fastify sends itself (errors, probes); relayed bodies are counted by the relay.
  app.addHook('onSend', (request: FastifyRequest, _reply: FastifyReply, payload: unknown, done: (err: null, payload: unknown) => void) => {
    if (typeof payload === 'string') request.exchange.sentBytes = Buffer.byteLength(payload);
    else if (Buffer.isBuffer(payload)) request.exchange.sentBytes = payload.length;
    done(null, payload);
  });
}

/**
 * The responses of each connection still queued behind others (HTTP/1.1 pipelining), with one
 * 'close' listener per connection rather than one per response: a client pipelining dozens of
 * requests would otherwise trip Node's MaxListenersExceededWarning. A set holds at most the
 * requests its connection has in flight, and goes with the connection.
 */
const queuedResponses = new WeakMap<Socket, Set<ServerResponse>>();

/**
 * Closes a queued response when its connection closes, as Node does for the response that holds
 * the socket: 'close' without `writableFinished` is "the client went away", for the relay and for
 * the exchange's log line alike. A response that gets the socket leaves the set: Node's own
 * 'close' covers it from then on.
 */
function closeWithConnection(res: ServerResponse, socket: Socket): void {
  let queued = queuedResponses.get(socket);
  if (queued === undefined) {
    const responses = new Set<ServerResponse>();
    queued = responses;
    queuedResponses.set(socket, responses);
    socket.once('close', () => {
      queuedResponses.delete(socket);
      for (const r of responses) {
        if (r.socket !== null || r.closed) continue;
        r.destroy();
        r.emit('close');
      }
      responses.clear();
    });
  }
  const responses = queued;
  responses.add(res);
  res.once('socket', () => responses.delete(res));
}

export default fp(exchangePlugin, { name: 'signalbox-exchange', fastify: '5.x' });
