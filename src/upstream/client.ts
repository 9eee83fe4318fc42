import { Pool, type Dispatcher } from 'undici';
import type { UpstreamAbort } from './abort.js';
import {
  ClientClosedError, SignalboxError, UpstreamTimeoutError, UpstreamUnreachableError,
} from '../errors.js';

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
  /** Aborts the request, at any stage, when the client has gone. */
  readonly signal: UpstreamAbort;
}

export interface UpstreamResponse {
  readonly statusCode: number;
  readonly headers: Record<string, string | string[] | undefined>;
  /** The raw body bytes, exactly as upstream sent them (after transfer decoding); `dump()` discards them. */
  readonly body: Dispatcher.ResponseData['body'];
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

  async request(req: UpstreamRequest): Promise<UpstreamResponse> {
    try {
      const res = await this.pool.request({
        method: req.method as 'POST',
        path: this.basePath + req.path,
        headers: req.headers,
        body: req.body ?? null,
        signal: req.signal,
      });
      return { statusCode: res.statusCode, headers: res.headers, body: res.body };
    } catch (err) {
      throw this.mapError(err, req.signal);
    }
  }

  /** Maps an undici or socket error to the proxy's own error classes. */
  mapError(err: unknown, signal?: UpstreamAbort): SignalboxError {
    if (err instanceof SignalboxError) return err;
    // An abort with a Signalbox error as its reason is the proxy's own (shutdown); any other
    // abort means the client went away.
    if (signal?.aborted) return signal.reason instanceof SignalboxError ? signal.reason : new ClientClosedError();
    const code = (err as { code?: string } | null)?.code;
    switch (code) {
      case 'UND_ERR_CONNECT_TIMEOUT':
        return new UpstreamTimeoutError('connect', this.options.connectTimeoutMs, { cause: err });
      case 'UND_ERR_HEADERS_TIMEOUT':
        return new UpstreamTimeoutError('headers', this.options.headersTimeoutMs, { cause: err });
      case 'UND_ERR_BODY_TIMEOUT':
        return new UpstreamTimeoutError('idle', this.options.idleTimeoutMs, { cause: err });
      default: {
        const message = err instanceof Error ? err.message : String(err);
        return new UpstreamUnreachableError(code ? `${code} ${message}` : message, { cause: err });
      }
    }
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}
