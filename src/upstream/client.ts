import { Pool, type Dispatcher } from 'undici';
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

/** The controller of a request undici never started: nothing to pause or abort. */
const NO_CONTROLLER: Dispatcher.DispatchController = Object.freeze({
  aborted: true, paused: false, reason: null, abort: () => undefined, pause: () => undefined, resume: () => undefined,
});

export interface UpstreamClientOptions {
  readonly baseUrl: string;
  readonly connectTimeoutMs: number;
  readonly headersTimeoutMs: number;
  readonly idleTimeoutMs: number;
  readonly keepAliveTimeoutMs: number;
}

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
  private readonly pool: Pool;
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
   * Sends one request on undici's dispatcher handler API, as undici's own api-stream does: the
   * handler gets the response head, each body chunk and the end as calls, with a controller to
   * pause, resume and abort. No body Readable, no listeners, no promise per attempt
   * (https://github.com/nodejs/undici/blob/main/docs/docs/api/Dispatcher.md#dispatcherdispatchoptions-handler).
   * Errors, synchronous ones included, reach `handler.onResponseError`.
   */
  dispatch(req: UpstreamRequest, handler: Dispatcher.DispatchHandler): void {
    try {
      this.pool.dispatch({ method: req.method as Dispatcher.HttpMethod, path: this.basePath + req.path, headers: req.headers, body: req.body ?? null }, handler);
    } catch (err) {
      // undici 7.30 throws a request it refuses to build (an invalid header value) out of
      // dispatch() instead of handing it to a new-API handler's onResponseError, as it does for a
      // legacy handler's onError: one way in for every failure.
      handler.onResponseError?.(NO_CONTROLLER, err as Error);
    }
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
