/**
 * Every error Signalbox raises has a class, a stable `code`, an HTTP status and an OpenAI error
 * `type`. `toOpenAIError` (src/server/error-envelope.ts) is the one place they become a response.
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

  constructor(message: string, code: string, status: number, type: OpenAIErrorType, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
    this.status = status;
    this.type = type;
  }
}

export class InvalidJsonError extends SignalboxError {
  constructor(detail: string) {
    super(`Request body is not valid JSON: ${detail}`, 'invalid_json', 400, 'invalid_request_error');
  }
}

export class InvalidRequestError extends SignalboxError {
  constructor(message: string, code = 'invalid_request') {
    super(message, code, 400, 'invalid_request_error');
  }
}

export class BodyTooLargeError extends SignalboxError {
  /** `limitBytes` unknown: the message cannot name it rather than name a wrong one. */
  constructor(limitBytes: number | undefined) {
    const limit = limitBytes === undefined ? 'the limit' : `the limit of ${limitBytes} bytes`;
    super(`Request body is larger than ${limit}`, 'body_too_large', 413, 'invalid_request_error');
  }
}

export class UnsupportedMediaTypeError extends SignalboxError {
  constructor(contentType: string | undefined) {
    super(
      `Unsupported content type ${contentType ? JSON.stringify(contentType) : '(none)'}: send application/json`,
      'unsupported_media_type', 415, 'invalid_request_error',
    );
  }
}

export class UnauthorizedError extends SignalboxError {
  constructor() {
    super('Missing or invalid API key for this Signalbox proxy', 'invalid_api_key', 401, 'authentication_error');
  }
}

export class RouteNotFoundError extends SignalboxError {
  constructor(method: string, path: string) {
    super(`No route for ${method} ${path}`, 'not_found', 404, 'not_found_error');
  }
}

export class ShuttingDownError extends SignalboxError {
  constructor() {
    super('Signalbox is shutting down; retry on another instance', 'shutting_down', 503, 'server_error');
  }
}

export class UpstreamUnreachableError extends SignalboxError {
  constructor(detail: string, options?: ErrorOptions) {
    super(`Upstream unreachable: ${detail}`, 'upstream_unreachable', 502, 'server_error', options);
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
    super(`Upstream timeout: ${timeoutMs} ms elapsed ${what} the upstream`, 'upstream_timeout', 504, 'timeout_error', options);
    this.phase = phase;
  }
}

/** The client went away; nothing is sent, the exchange is logged with status 499. */
export class ClientClosedError extends SignalboxError {
  constructor() {
    super('Client closed the connection', 'client_closed_request', 499, 'invalid_request_error');
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
    super(message, 'rejected_by_rule', status, typeForStatus(status));
  }
}

export class InternalError extends SignalboxError {
  constructor(options?: ErrorOptions) {
    super('Internal error in Signalbox', 'internal_error', 500, 'server_error', options);
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
