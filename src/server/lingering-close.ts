import type { IncomingMessage, Server } from 'node:http';
import { Socket } from 'node:net';
import type { FastifyBaseLogger, FastifyReply, FastifyRequest } from 'fastify';

/** How much of a refused request body is read and thrown away before its connection closes. */
export interface LingeringCloseLimits {
  /** Body bytes discarded at most; past them the connection is cut. */
  readonly maxBytes: number;
  /** From the refusal to the cut, however steadily the client sends. */
  readonly maxMs: number;
  /** The longest silence from the client while its body is discarded. */
  readonly idleMs: number;
}

/** Why a lingering connection closed, on its debug line. */
type LingerOutcome = 'drained' | 'max_bytes' | 'max_time' | 'idle' | 'client_closed';

/**
 * Closes the connection of a request answered before its body was read (413, 401, 503...)
 * without losing the answer: the rest of the body is read and discarded, then the connection
 * closes; past `limits` it is cut.
 *
 * Why: Node closes a `Connection: close` response's socket as soon as the response is written.
 * The client is still uploading, and a socket closed with unread bytes (or receiving more after
 * its close) makes the kernel send a reset, which makes the client's kernel drop the response it
 * had not read yet: the client sees EPIPE or ECONNRESET instead of the 413. Reading the body to its end first, and only then closing, is
 * the staged close of RFC 9112 §9.6 (https://www.rfc-editor.org/rfc/rfc9112#section-9.6) as nginx
 * does it (https://nginx.org/en/docs/http/ngx_http_core_module.html#lingering_close).
 *
 * The caller sends the response with `Connection: close`. Node ends such a response with
 * `socket.destroySoon()` (lib/_http_server.js, resOnFinish); this socket's `destroySoon` instead
 * half-closes (FIN, like nginx's shutdown(SHUT_WR), so the client knows the answer is whole and
 * may stop uploading) and closes fully once the body has been read. Discarding starts at once.
 */
export function closeAfterDiscardingBody(request: IncomingMessage, limits: LingeringCloseLimits, log: FastifyBaseLogger): void {
  const socket = request.socket;
  let discarded = 0;
  let outcome: LingerOutcome | undefined;
  const cut = (why: LingerOutcome): void => {
    outcome ??= why;
    socket.destroy();
  };
  /** What Node would have done at once: close when the response has been flushed. */
  const closeWhenFlushed = (): void => {
    outcome ??= 'drained';
    Socket.prototype.destroySoon.call(socket);
  };

  const timer = setTimeout(cut, limits.maxMs, 'max_time');
  timer.unref();
  socket.setTimeout(limits.idleMs, () => cut('idle'));
  socket.once('close', () => {
    clearTimeout(timer);
    log.debug({ discarded_bytes: discarded, outcome: outcome ?? 'client_closed' }, 'closed the connection of a request answered before its body was read');
  });

  socket.destroySoon = () => {
    if (request.complete) {
      closeWhenFlushed();
      return;
    }
    socket.end();
  };
  request.on('data', (chunk: Buffer) => {
    discarded += chunk.length;
    if (discarded > limits.maxBytes) cut('max_bytes');
  });
  // Drained before the response was written: destroySoon above closes once it is.
  request.once('end', () => {
    if (socket.writableEnded) closeWhenFlushed();
  });
  request.resume();
}

/**
 * For the error handlers: an answer given before the request body was read goes out with
 * `Connection: close`, and its connection closes once the body has been discarded.
 */
export function answeredBeforeBody(limits: LingeringCloseLimits): (request: FastifyRequest, reply: FastifyReply) => void {
  return (request, reply) => {
    if (request.raw.complete) return;
    reply.header('connection', 'close');
    closeAfterDiscardingBody(request.raw, limits, request.log);
  };
}

/**
 * Node answers `Expect: 100-continue` itself unless the server listens for 'checkContinue'
 * (https://nodejs.org/api/http.html#event-checkcontinue). A body declared over the limit is
 * refused without being invited (RFC 9110 §10.1.1: the client then need not send it); either way
 * the request goes to the server's request handler (Fastify), which answers and logs it as any other.
 */
export function inviteBodiesWithinLimit(server: Server, bodyLimitBytes: number): void {
  server.on('checkContinue', (req, res) => {
    if (!(Number(req.headers['content-length']) > bodyLimitBytes)) res.writeContinue();
    server.emit('request', req, res);
  });
}
