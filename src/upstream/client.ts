import type { Dispatcher } from 'undici';
// undici's Pool module, not its index: the index loads about 110 modules (fetch, WebSocket, the
// cache and mock agents...) and adds request() and the other API methods to Dispatcher, none of
// which the proxy uses since it calls dispatch() itself; about 45-70 ms of a cold start on Node 20.
// undici has no "exports" map, and the lockfile pins the version these paths were checked against
// (test/upstream/client.test.ts).
import Pool from 'undici/lib/dispatcher/pool.js';
import { parseHeaders } from 'undici/lib/core/util.js';
import {
  InternalError, SignalboxError, UpstreamTimeoutError, UpstreamUnreachableError,
} from '../errors.js';

/**
 * undici's codes for a connection that failed or an answer the upstream got wrong: the upstream's
 * fault, worth another attempt and counted against the model. Every other undici code
 * (UND_ERR_INVALID_ARG, UND_ERR_NOT_SUPPORTED, UND_ERR_REQ_CONTENT_LENGTH_MISMATCH...) is a request
 * this process built wrong (issue 12, defect 7).
 */
const UPSTREAM_FAULT_CODES: ReadonlySet<string> = new Set([
  'UND_ERR_SOCKET', 'UND_ERR_HEADERS_OVERFLOW', 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH', 'UND_ERR_RES_EXCEEDED_MAX_SIZE',
  'UND_ERR_INFO', 'UND_ERR_PRX_TLS',
]);

/**
 * TLS failures (Node's ERR_TLS_* and ERR_SSL_*, OpenSSL's certificate verification codes, which
 * carry no syscall) and llhttp's HPE_* for a response that is not valid HTTP.
 */
const UPSTREAM_FAULT_PREFIX = /^(?:ERR_TLS_|ERR_SSL_|HPE_|CERT_|UNABLE_TO_|DEPTH_ZERO_|SELF_SIGNED_|HOSTNAME_|ERR_OSSL_)/;

/**
 * Whether `err` means the upstream could not be reached or answered wrongly, rather than a local
 * mistake. A system error (one with a `syscall`: ECONNREFUSED, ECONNRESET, EPIPE, ETIMEDOUT,
 * ENOTFOUND...) is the network's.
 */
function isUpstreamFault(err: object, code: string): boolean {
  if (typeof (err as { syscall?: unknown }).syscall === 'string') return true;
  return UPSTREAM_FAULT_CODES.has(code) || UPSTREAM_FAULT_PREFIX.test(code);
}

/**
 * The calls undici's core makes on a request's handler (lib/core/request.js), the interface its
 * own `api-stream` implements. Chosen over the onRequestStart/onResponse* interface, which every
 * dispatcher turns back into these calls through an UnwrapHandler and an UnwrapController per
 * request (lib/handler/unwrap-handler.js): measured with `npm run bench:profile`, that wrapper
 * cost about 5-10% of the proxy's CPU per request (docs/benchmarks.md).
 */
export interface UpstreamHandler {
  /** The request is on a socket; `abort` ends it (undici then calls onError with the reason). */
  onConnect(abort: (reason: Error) => void): void;
  /** The response head; return false to pause the body until `resume` is called. */
  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean;
  /** A body chunk; return false to pause the body until `resume` is called. */
  onData(chunk: Buffer): boolean;
  onComplete(trailers: Buffer[] | null): void;
  onError(error: Error): void;
}

/** A whole upstream response, read into memory (small answers only: see `fetchWhole`). */
export interface WholeResponse {
  readonly status: number;
  readonly headers: Record<string, string | string[]>;
  readonly body: Buffer;
}

/** Collects one response whole, up to `maxBytes`; past it the call is aborted and fails. */
class WholeResponseHandler implements UpstreamHandler {
  private abortCall: ((reason: Error) => void) | undefined;
  private status = 0;
  private headers: Record<string, string | string[]> = {};
  private readonly chunks: Buffer[] = [];
  private bytes = 0;

  constructor(
    private readonly maxBytes: number,
    private readonly settle: (error: Error | undefined, response?: WholeResponse) => void,
  ) {}

  onConnect(abort: (reason: Error) => void): void {
    this.abortCall = abort;
    if (this.abortedWith !== undefined) abort(this.abortedWith);
  }

  /** Ends the call with `reason` (now, or as soon as undici hands over its abort). */
  abort(reason: Error): void {
    this.abortedWith ??= reason;
    this.abortCall?.(reason);
  }

  private abortedWith: Error | undefined;

  onHeaders(statusCode: number, rawHeaders: Buffer[]): boolean {
    this.status = statusCode;
    this.headers = parseHeaders(rawHeaders) as Record<string, string | string[]>;
    return true;
  }

  onData(chunk: Buffer): boolean {
    this.bytes += chunk.length;
    if (this.bytes > this.maxBytes) {
      this.abortCall?.(new UpstreamUnreachableError(`response larger than ${this.maxBytes} bytes`));
      return false;
    }
    this.chunks.push(chunk);
    return true;
  }

  onComplete(): void {
    this.settle(undefined, { status: this.status, headers: this.headers, body: Buffer.concat(this.chunks, this.bytes) });
  }

  onError(error: Error): void {
    this.settle(error);
  }
}

export interface UpstreamClientOptions {
  readonly baseUrl: string;
  readonly connectTimeoutMs: number;
  readonly headersTimeoutMs: number;
  readonly idleTimeoutMs: number;
  readonly keepAliveTimeoutMs: number;
}

export { parseHeaders };

export interface UpstreamRequest {
  readonly method: string;
  /** Path below the base URL, with its query string: `/chat/completions`. */
  readonly path: string;
  readonly headers: Record<string, string>;
  readonly body: Buffer | string | undefined;
}

/**
 * One keep-alive connection pool to the upstream origin.
 *
 * - no connection cap (`connections: null`): a cap would queue new requests behind long-lived streams;
 * - no pipelining: a slow stream must never hold up the response of the request behind it;
 * - three timeouts and no overall one: connect, response headers, and idle body (the gap between
 *   two chunks, reset by every chunk), so a live stream of any length is never cut.
 */
export class UpstreamClient {
  readonly origin: string;
  readonly basePath: string;
  private readonly pool: InstanceType<typeof Pool>;
  private readonly options: UpstreamClientOptions;

  constructor(options: UpstreamClientOptions) {
    this.options = options;
    const url = new URL(options.baseUrl);
    this.origin = url.origin;
    this.basePath = url.pathname.replace(/\/+$/, '');
    this.pool = new Pool(this.origin, {
      connections: null,
      pipelining: 1,
      connect: { timeout: options.connectTimeoutMs },
      headersTimeout: options.headersTimeoutMs,
      bodyTimeout: options.idleTimeoutMs,
      keepAliveTimeout: options.keepAliveTimeoutMs,
    });
  }

  /**
   * Sends one request through undici's dispatcher, as undici's own `api-stream` does
   * (lib/api/api-stream.js): the handler gets the response head, each body chunk and the end as
   * calls, pauses the body by returning false and aborts through the function it was given. No body
   * Readable, no listeners, no promise per attempt. Errors, synchronous ones included, reach
   * `handler.onError`.
   */
  dispatch(req: UpstreamRequest, handler: UpstreamHandler): void {
    // The methods of UpstreamHandler are the calls undici's core makes (lib/core/request.js);
    // its types mark them deprecated in favour of onRequestStart/onResponse*, which every
    // dispatcher wraps back into these with an UnwrapHandler and an UnwrapController per request.
    this.pool.dispatch(
      { method: req.method as Dispatcher.HttpMethod, path: this.basePath + req.path, headers: req.headers, body: req.body ?? null },
      handler as Dispatcher.DispatchHandler,
    );
  }

  /**
   * One request whose answer is read whole, for the proxy's own small calls (the model list it
   * extends with its tiers). Bounded by `maxBytes`; errors are mapped as for a relayed call.
   * `signal` aborts the call (the classifier's timeout): it then rejects with the signal's reason.
   */
  fetchWhole(req: UpstreamRequest, maxBytes: number, signal?: AbortSignal): Promise<WholeResponse> {
    return new Promise((resolve, reject) => {
      const onAbort = (): void => handler.abort(signal!.reason instanceof Error ? signal!.reason : new Error('aborted'));
      const handler = new WholeResponseHandler(maxBytes, (error, response) => {
        signal?.removeEventListener('abort', onAbort);
        if (error === undefined) resolve(response!);
        else reject(this.mapError(error));
      });
      if (signal !== undefined) {
        if (signal.aborted) {
          reject(this.mapError(signal.reason));
          return;
        }
        signal.addEventListener('abort', onAbort, { once: true });
      }
      this.dispatch(req, handler);
    });
  }

  /**
   * Maps an undici or socket error to the proxy's own error classes. Only a network or upstream
   * fault is `upstream_unreachable` (retried, counted against the model); anything else, such as
   * an invalid header value undici refuses before sending, is an `internal_error`: retrying it
   * fails the same way, and the model is not to blame.
   */
  mapError(err: unknown): SignalboxError {
    // The proxy aborts a call with its own error as the reason (client gone, shutdown), and undici
    // hands that reason back as the call's error.
    if (err instanceof SignalboxError) return err;
    const code = (err as { code?: unknown } | null)?.code;
    if (typeof code !== 'string') return new InternalError({ cause: err });
    switch (code) {
      case 'UND_ERR_CONNECT_TIMEOUT':
        return new UpstreamTimeoutError('connect', this.options.connectTimeoutMs, { cause: err });
      case 'UND_ERR_HEADERS_TIMEOUT':
        return new UpstreamTimeoutError('headers', this.options.headersTimeoutMs, { cause: err });
      case 'UND_ERR_BODY_TIMEOUT':
        return new UpstreamTimeoutError('idle', this.options.idleTimeoutMs, { cause: err });
      default: {
        if (!isUpstreamFault(err as object, code)) return new InternalError({ cause: err });
        const message = err instanceof Error ? err.message : String(err);
        return new UpstreamUnreachableError(`${code} ${message}`, { cause: err });
      }
    }
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}
