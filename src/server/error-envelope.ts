import {
  BodyTooLargeError, InternalError, InvalidJsonError, InvalidRequestError, RouteNotFoundError,
  SignalboxError, UnsupportedMediaTypeError,
} from '../errors.js';

/** OpenAI's error envelope, which every OpenAI SDK knows how to read. */
export interface OpenAIErrorBody {
  readonly error: { readonly message: string; readonly type: string; readonly code: string };
}

/**
 * The one place an error becomes what the client sees. Errors that are not Signalbox's own
 * (Fastify's body parsing, anything unexpected) are first mapped to a Signalbox class; anything
 * unknown is a 500 whose message hides the details (they go to the log, not to the client).
 */
/**
 * `contentType`: the request's, for a 415 message that says what was sent; `bodyLimitBytes`: the
 * route's, for a 413 message that says what is allowed (Fastify's error does not carry it).
 */
export function toSignalboxError(err: unknown, contentType?: string, bodyLimitBytes?: number): SignalboxError {
  if (err instanceof SignalboxError) return err;
  const e = err as { code?: string; statusCode?: number; message?: string } | null;
  switch (e?.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new BodyTooLargeError(bodyLimitBytes);
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new UnsupportedMediaTypeError(contentType);
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return new InvalidJsonError('empty or malformed body');
    case 'FST_ERR_BAD_URL':
      // The path is not echoed: it is the client's bytes, and the client has them.
      return new InvalidRequestError('The request path is not valid percent-encoding', 'invalid_url');
    case 'FST_ERR_NOT_FOUND':
      return new RouteNotFoundError('', '');
  }
  const status = e?.statusCode;
  if (typeof status === 'number' && status >= 400 && status < 500) {
    return new InvalidRequestError(e?.message ?? 'Bad request', 'bad_request');
  }
  return new InternalError({ cause: err });
}

/** What the request tells the mapping beyond the error itself. */
export interface ErrorContext {
  /** The request's content type, for a 415 message that says what was sent. */
  readonly contentType?: string | undefined;
  /** The route's body limit, for a 413 message that says what is allowed (Fastify's error does not carry it). */
  readonly bodyLimitBytes?: number | undefined;
  /**
   * How many upstream calls this request made. After more than one, the proxy has retried
   * already, and `x-should-retry: false` stops the SDK from multiplying them (issue 11).
   */
  readonly upstreamAttempts?: number | undefined;
}

export function toOpenAIError(err: unknown, context: ErrorContext = {}): {
  status: number; body: OpenAIErrorBody; error: SignalboxError; headers: { 'x-should-retry': 'true' | 'false' };
} {
  const error = toSignalboxError(err, context.contentType, context.bodyLimitBytes);
  const shouldRetry = error.shouldRetry && (context.upstreamAttempts ?? 0) <= 1;
  return {
    status: error.status,
    body: { error: { message: error.message, type: error.type, code: error.code } },
    error,
    headers: { 'x-should-retry': shouldRetry ? 'true' : 'false' },
  };
}
