import type { Api } from '../rules/shapes.js';
import type { ResponseFacts } from '../upstream/response-tap.js';
import { messagesErrorEvent, responsesErrorEvent } from '../upstream/shape-facts.js';
import { sseErrorEvent } from '../upstream/sse.js';
import {
  BodyTooLargeError, InternalError, InvalidJsonError, InvalidRequestError, RouteNotFoundError,
  SignalboxError, UnsupportedMediaTypeError,
} from '../errors.js';

/** OpenAI's error envelope, which every OpenAI SDK knows how to read. */
export interface OpenAIErrorBody {
  readonly error: { readonly message: string; readonly type: string; readonly code: string };
}

/**
 * Anthropic's error envelope (https://docs.anthropic.com/en/api/errors), which the Anthropic SDKs
 * and coding agents read: what a client of the Messages API (`/v1/messages`) gets.
 */
export interface AnthropicErrorBody {
  readonly type: 'error';
  readonly error: { readonly type: string; readonly message: string };
}

/** Which envelope a client reads: Anthropic's for the Messages API, OpenAI's for everything else. */
export type ErrorEnvelope = 'openai' | 'anthropic';

/** The envelope of a request path: `/v1/messages` (and its query) is Anthropic's. */
export function envelopeOf(url: string | undefined): ErrorEnvelope {
  return url !== undefined && (url === '/v1/messages' || url.startsWith('/v1/messages?') || url.startsWith('/v1/messages/')) ? 'anthropic' : 'openai';
}

/** Anthropic's error type for a status (its documented set; 503 is its `overloaded_error`, which it sends as 529). */
function anthropicType(status: number): string {
  switch (status) {
    case 400: case 405: case 408: case 415: case 431: return 'invalid_request_error';
    case 401: return 'authentication_error';
    case 402: return 'billing_error';
    case 403: return 'permission_error';
    case 404: return 'not_found_error';
    case 413: return 'request_too_large';
    case 429: return 'rate_limit_error';
    case 503: return 'overloaded_error';
    default: return status < 500 ? 'invalid_request_error' : 'api_error';
  }
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
  /** The client's envelope (envelopeOf the request's path); OpenAI's when absent. */
  readonly envelope?: ErrorEnvelope | undefined;
}

export function toClientError(err: unknown, context: ErrorContext = {}): {
  status: number; body: OpenAIErrorBody | AnthropicErrorBody; error: SignalboxError; headers: { 'x-should-retry': 'true' | 'false' };
} {
  const error = toSignalboxError(err, context.contentType, context.bodyLimitBytes);
  const shouldRetry = error.shouldRetry && (context.upstreamAttempts ?? 0) <= 1;
  return {
    status: error.status,
    // Anthropic's envelope has no code: the stable code leads the message, so a client still sees it.
    body: context.envelope === 'anthropic'
      ? { type: 'error', error: { type: anthropicType(error.status), message: `${error.code}: ${error.message}` } }
      : { error: { message: error.message, type: error.type, code: error.code } },
    error,
    headers: { 'x-should-retry': shouldRetry ? 'true' : 'false' },
  };
}

/** What the proxy knows of a stream it must end with an error. */
export interface StreamErrorFields {
  readonly requestId: string;
  /** The model of the attempt being relayed. */
  readonly model: string | undefined;
  /** What the tap read of the stream so far. */
  readonly facts: ResponseFacts | undefined;
}

/**
 * The event that ends a stream the proxy cuts (an upstream failure mid-body, the idle timeout,
 * shutdown), in the form the client's SDK reads as an error: chat's OpenRouter-style chunk with
 * `finish_reason: "error"`, a Responses `response.failed`, a Messages `error` event (whose message
 * starts with the stable code, as Anthropic's envelope has no code field). Issue 18, item 3.
 */
export function streamErrorEvent(api: Api, error: SignalboxError, fields: StreamErrorFields, tail: Buffer | undefined): Buffer {
  switch (api) {
    case 'messages':
      return messagesErrorEvent(anthropicType(error.status), `${error.code}: ${error.message}`, tail);
    case 'responses':
      return responsesErrorEvent(error.code, error.message, { id: fields.facts?.id, model: fields.facts?.model ?? fields.model }, tail);
    default:
      return sseErrorEvent({ id: `gen-signalbox-${fields.requestId}`, model: fields.model, code: error.code, message: error.message }, tail);
  }
}
