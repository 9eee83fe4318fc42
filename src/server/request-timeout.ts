import type { Server, ServerOptions, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyBaseLogger } from 'fastify';
import { RequestTimeoutError } from '../errors.js';
import { toOpenAIError } from './error-envelope.js';

/** Node checks its connections for an expired request at least this often (its own default). */
const MAX_CHECK_INTERVAL_MS = 30_000;

/**
 * The Node server options that bound the time a request (head and body) may take to arrive
 * (issue 12, defect 12: with Fastify's `requestTimeout: 0` a client trickling its body held its
 * connection for minutes). Node checks open connections every `connectionsCheckingInterval`
 * (lib/_http_server.js, checkConnections), 30 s by default, which would let a 1 s timeout last
 * 31 s: a quarter of the timeout keeps the overshoot within 25 %. The head has its own Node
 * default of 60 s (`headersTimeout`), which may not exceed the whole request's.
 */
export function requestTimeoutOptions(requestTimeoutMs: number): ServerOptions {
  return {
    requestTimeout: requestTimeoutMs,
    headersTimeout: Math.min(60_000, requestTimeoutMs),
    connectionsCheckingInterval: Math.max(1, Math.min(MAX_CHECK_INTERVAL_MS, Math.floor(requestTimeoutMs / 4))),
  };
}

/**
 * Answers Node's request timeouts (its 'clientError' event with ERR_HTTP_REQUEST_TIMEOUT) with a
 * 408 in the OpenAI envelope when no response has started on the connection (as Node itself
 * decides, lib/_http_server.js socketOnError: writing after a started response would corrupt it,
 * as after a 401 to a client still uploading), and closes the connection either way. Installed
 * ahead of Fastify's client error handler, which leaves a destroyed socket alone and handles
 * every other client error.
 */
export function answerRequestTimeouts(server: Server, requestTimeoutMs: number, log: FastifyBaseLogger): void {
  server.prependListener('clientError', (err: Error & { code?: string }, socket: Socket) => {
    if (err.code !== 'ERR_HTTP_REQUEST_TIMEOUT' || socket.destroyed) return;
    const inFlight = (socket as Socket & { _httpMessage?: ServerResponse | null })._httpMessage;
    const answered = socket.writable && !inFlight?.headersSent;
    const { status, body, error, headers } = toOpenAIError(new RequestTimeoutError(requestTimeoutMs));
    log.info({ code: error.code, remote_address: socket.remoteAddress, answered }, error.message);
    if (answered) {
      const payload = JSON.stringify(body);
      socket.write(
        `HTTP/1.1 ${status} Request Timeout\r\nconnection: close\r\ncontent-type: application/json; charset=utf-8\r\n`
        + `content-length: ${Buffer.byteLength(payload)}\r\nx-should-retry: ${headers['x-should-retry']}\r\n\r\n${payload}`,
      );
    }
    socket.destroy();
  });
}
