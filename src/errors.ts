/**
 * Every error Signalbox raises has a class, a stable `code`, an HTTP status, an OpenAI error
 * `type` and whether a client should try again (`x-should-retry`). `toOpenAIError`
 * (src/server/error-envelope.ts) is the one place they become a response. README.md's "Errors"
 * table lists every code (test/errors.test.ts keeps it true).
 */

/** OpenAI's error types, as its SDKs read them from `error.type`. */
export type OpenAIErrorType =
  | 'invalid_request_error'
  | 'authentication_error'
  | 'permission_error'
  | 'not_found_error'
  | 'rate_limit_error'
  | 'server_error'
  | 'timeout_error';

export class SignalboxError extends Error {
  readonly code: string;
  readonly status: number;
  readonly type: OpenAIErrorType;
  /**
   * Sent as `x-should-retry`, which the official OpenAI and Anthropic SDKs obey over their own
   * status-based guess: true only when another try (on this or another instance) can succeed.
   * Always false once the proxy itself made more than one upstream attempt (toOpenAIError).
   */
  readonly shouldRetry: boolean;

  constructor(message: string, code: string, status: number, type: OpenAIErrorType, shouldRetry: boolean, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
    this.status = status;
    this.type = type;
    this.shouldRetry = shouldRetry;
  }
}

export class InvalidJsonError extends SignalboxError {
  constructor(detail: string) {
    super(`Request body is not valid JSON: ${detail}`, 'invalid_json', 400, 'invalid_request_error', false);
  }
}

/** The codes of InvalidRequestError, as data so that the docs test can check each is documented. */
export const INVALID_REQUEST_CODES = ['bad_request', 'invalid_body', 'forbidden_json_key', 'invalid_path'] as const;

export class InvalidRequestError extends SignalboxError {
  constructor(message: string, code: (typeof INVALID_REQUEST_CODES)[number]) {
    super(message, code, 400, 'invalid_request_error', false);
  }
}

/**
 * A chat body whose `messages` is not a non-empty array of message objects: refused before any
 * rule sees it, since an action could otherwise send upstream a request without the user's prompt.
 */
export class InvalidMessagesError extends SignalboxError {
  constructor(detail: string) {
    super(`Invalid messages: ${detail}`, 'invalid_messages', 400, 'invalid_request_error', false);
  }
}

export class BodyTooLargeError extends SignalboxError {
  /** `limitBytes` unknown: the message cannot name it rather than name a wrong one. */
  constructor(limitBytes: number | undefined) {
    const limit = limitBytes === undefined ? 'the limit' : `the limit of ${limitBytes} bytes`;
    super(`Request body is larger than ${limit}`, 'body_too_large', 413, 'invalid_request_error', false);
  }
}

export class UnsupportedMediaTypeError extends SignalboxError {
  constructor(contentType: string | undefined) {
    super(
      `Unsupported content type ${contentType ? JSON.stringify(contentType) : '(none)'}: send application/json`,
      'unsupported_media_type', 415, 'invalid_request_error', false,
    );
  }
}

export class UnauthorizedError extends SignalboxError {
  constructor() {
    super('Missing or invalid API key for this Signalbox proxy', 'invalid_api_key', 401, 'authentication_error', false);
  }
}

export class RouteNotFoundError extends SignalboxError {
  constructor(method: string, path: string) {
    super(`No route for ${method} ${path}`, 'not_found', 404, 'not_found_error', false);
  }
}

export class ShuttingDownError extends SignalboxError {
  constructor() {
    // True: the request never reached upstream, and another instance (the load balancer's next pick) can serve it.
    super('Signalbox is shutting down; retry on another instance', 'shutting_down', 503, 'server_error', true);
  }
}

export class UpstreamUnreachableError extends SignalboxError {
  constructor(detail: string, options?: ErrorOptions) {
    // True after one attempt: nothing was answered, the next try may reach a healthy upstream.
    super(`Upstream unreachable: ${detail}`, 'upstream_unreachable', 502, 'server_error', true, options);
  }
}

export type UpstreamTimeoutPhase = 'connect' | 'headers' | 'first_token' | 'idle';

export class UpstreamTimeoutError extends SignalboxError {
  readonly phase: UpstreamTimeoutPhase;
  constructor(phase: UpstreamTimeoutPhase, timeoutMs: number, options?: ErrorOptions) {
    const what = phase === 'connect' ? 'connecting to'
      : phase === 'headers' ? 'waiting for response headers from'
      : phase === 'first_token' ? 'waiting for the first token from'
      : 'waiting for the next body chunk from';
    super(`Upstream timeout: ${timeoutMs} ms elapsed ${what} the upstream`, 'upstream_timeout', 504, 'timeout_error', true, options);
    this.phase = phase;
  }
}

/** The client took longer than REQUEST_TIMEOUT_MS to send its request (head and body). */
export class RequestTimeoutError extends SignalboxError {
  constructor(timeoutMs: number) {
    // False: the same upload over the same link would be as slow again.
    super(`Request timeout: the request was not received within ${timeoutMs} ms`, 'request_timeout', 408, 'timeout_error', false);
  }
}

/** The client went away; nothing is sent, the exchange is logged with status 499. */
export class ClientClosedError extends SignalboxError {
  constructor() {
    super('Client closed the connection', 'client_closed_request', 499, 'invalid_request_error', false);
  }
}

function typeForStatus(status: number): OpenAIErrorType {
  if (status === 401) return 'authentication_error';
  if (status === 403) return 'permission_error';
  if (status === 404) return 'not_found_error';
  if (status === 429) return 'rate_limit_error';
  return status >= 500 ? 'server_error' : 'invalid_request_error';
}

/** A routing rule answered the request itself (`route.reject`). */
export class RuleRejectedError extends SignalboxError {
  constructor(status: number, message: string) {
    // A rule answers the same request the same way every time.
    super(message, 'rejected_by_rule', status, typeForStatus(status), false);
  }
}

export class InternalError extends SignalboxError {
  constructor(options?: ErrorOptions) {
    // False: a bug on this input recurs on the next try, and must not triple a hostile request's cost.
    super('Internal error in Signalbox', 'internal_error', 500, 'server_error', false, options);
  }
}

/** A configuration that cannot be used; lists every problem found, not just the first. */
export class ConfigError extends Error {
  readonly problems: readonly string[];
  constructor(what: string, problems: readonly string[]) {
    super(`${what}:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}
