import { randomUUID } from 'node:crypto';
import { STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { FastifyBaseLogger, FastifyReply, FastifyRequest } from 'fastify';
import { HeadersTooLargeError, InvalidRequestError, RequestTimeoutError, type SignalboxError } from '../errors.js';
import { envelopeOf, toClientError } from './error-envelope.js';
import { Exchange } from './exchange.js';
import type { ExchangeRecorder } from './recorder.js';

/**
 * How long a connection the HTTP parser refused stays open after its answer, reading and dropping
 * what the client still sends, so the client reads the answer instead of a reset (closing a socket
 * with unread bytes sends RST, which can discard the answer in the client's kernel). One timer per
 * refused connection, cleared when it closes.
 */
const REFUSED_LINGER_MS = 1000;

/** What a refusal needs: where it is recorded, and the limits its message names. */
export interface RefusalOptions {
  readonly recorder: ExchangeRecorder;
  readonly log: FastifyBaseLogger;
  readonly maxHeaderBytes: number;
  readonly requestTimeoutMs: number;
}

/**
 * Whether a response has started on this connection: then nothing more may be written to it (an
 * answer after a started response would corrupt it, as after a 401 to a client still uploading).
 * Node's own rule for its default 400/408 (lib/_http_server.js, socketOnError).
 */
function responseStarted(socket: Socket | Duplex): boolean {
  return (socket as { _httpMessage?: ServerResponse | null })._httpMessage?.headersSent === true;
}

/**
 * Answers a connection Fastify never sees (the parser refused it, or it asked to CONNECT) with
 * `error` in the OpenAI envelope, then logs and counts it. The caller guards against throws.
 */
function refuseSocket(options: RefusalOptions, socket: Socket | Duplex, error: SignalboxError, remoteAddress: string | undefined): void {
  const { status, body, headers } = toClientError(error);
  const id = randomUUID();
  const payload = JSON.stringify(body);
  const exchange = new Exchange();
  exchange.clientAddress = remoteAddress;
  exchange.error = error;
  if (socket.writable && !responseStarted(socket)) {
    exchange.sentBytes = Buffer.byteLength(payload);
    socket.end(
      `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\ncontent-type: application/json; charset=utf-8\r\n` +
      `content-length: ${exchange.sentBytes}\r\nx-request-id: ${id}\r\nx-should-retry: ${headers['x-should-retry']}\r\n` +
      `connection: close\r\n\r\n${payload}`,
    );
    socket.resume();
    const timer = setTimeout(() => socket.destroy(), REFUSED_LINGER_MS);
    timer.unref();
    socket.once('close', () => clearTimeout(timer));
  } else {
    socket.destroy();
  }
  options.recorder.record(exchange.record(status, false, '-', '-'), options.log.child({ reqId: id }), 'other');
}

/**
 * The server's 'clientError' handler (Fastify's `clientErrorHandler` option): Node's HTTP parser
 * refused a request (a malformed request line or header, HPE_HEADER_OVERFLOW, REQUEST_TIMEOUT_MS)
 * before Fastify saw it. Fastify's default answers in its own JSON shape; this answers in the
 * OpenAI envelope with `x-request-id` and `x-should-retry`, logs the refusal and counts it (there
 * is no path to trust: endpoint `other`, rule `unrouted`). https://nodejs.org/api/http.html#event-clienterror
 */
export function clientErrorHandler(options: RefusalOptions): (err: NodeJS.ErrnoException, socket: Socket) => void {
  return (err, socket) => {
    try {
      // A reset connection, or one already gone: there is no one to answer (Node's own rule).
      if (err.code === 'ECONNRESET' || socket.destroyed) {
        socket.destroy();
        return;
      }
      if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT' && (responseStarted(socket) || !socket.writable)) {
        // Answered already (its request line is written; a lingering close has half-closed the
        // socket): only the connection of a client still uploading after its answer ends here.
        options.log.info({ code: 'request_timeout', remote_addr: socket.remoteAddress }, 'request timeout after the answer: connection closed');
        socket.destroy();
        return;
      }
      const error: SignalboxError = err.code === 'HPE_HEADER_OVERFLOW' ? new HeadersTooLargeError(options.maxHeaderBytes)
        : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? new RequestTimeoutError(options.requestTimeoutMs)
        : new InvalidRequestError('Malformed HTTP request: the request line or a header cannot be parsed', 'bad_request');
      refuseSocket(options, socket, error, socket.remoteAddress);
    } catch (unexpected) {
      // Nothing thrown in an event listener may escape: it would end the process.
      socket.destroy();
      options.log.error({ err: unexpected }, 'answering a refused request failed');
    }
  };
}

/**
 * The server's 'connect' listener: an authority-form target (CONNECT host:port) never reaches
 * Fastify, and without a listener Node just closes the socket. Signalbox is no forward proxy
 * (RFC 9112 §3.2.3): answered with `invalid_request_target` like absolute-form targets.
 */
export function connectHandler(options: RefusalOptions, message: string): (req: IncomingMessage, socket: Duplex) => void {
  return (req, socket) => {
    try {
      socket.on('error', () => undefined);
      refuseSocket(options, socket, new InvalidRequestError(message, 'invalid_request_target'), req.socket.remoteAddress);
    } catch (unexpected) {
      socket.destroy();
      options.log.error({ err: unexpected }, 'answering a CONNECT request failed');
    }
  };
}

/**
 * Fastify's `frameworkErrors`: requests Fastify refuses before any hook runs (FST_ERR_BAD_URL, a
 * path that is not valid percent-encoding), answered in the envelope with `x-request-id`, logged
 * and counted like every other request (the exchange plugin's hooks do not run for them).
 */
export function frameworkErrorHandler(recorder: () => ExchangeRecorder) {
  return (err: unknown, request: FastifyRequest, reply: FastifyReply): void => {
    const exchange = new Exchange();
    request.exchange = exchange;
    exchange.clientAddress = request.raw.socket.remoteAddress;
    exchange.userAgent = request.headers['user-agent'];
    const { status, body, error, headers } = toClientError(err, { envelope: envelopeOf(request.url) });
    exchange.error = error;
    const payload = JSON.stringify(body);
    exchange.sentBytes = Buffer.byteLength(payload);
    reply.raw.once('close', () => {
      const finished = reply.raw.writableFinished;
      recorder().record(exchange.record(finished ? status : 499, !finished, request.method, request.url), request.log);
    });
    void reply.code(status).headers({ ...headers, 'x-request-id': request.id, 'x-signalbox-overhead-ms': exchange.proxyMs().toFixed(3) })
      .type('application/json; charset=utf-8').send(payload);
  };
}
