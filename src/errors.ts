/**
 * Every error Signalbox itself answers with, as data: one row of ERRORS per stable `code`, with
 * its HTTP status, OpenAI error `type`, whether a client should try again (`x-should-retry`) and
 * its message. Shaped after fastify's lib/errors.js (createError(code, message, status)): the
 * classes below are made from the rows, so a code, its status and its retry advice live in one
 * place. `toClientError` (src/server/error-envelope.ts) is the one place they become a response,
 * Fastify's and Node's own errors (FST_ERR_*, the HTTP parser's) included. README.md's "Errors"
 * table lists every row (test/errors.test.ts reads ERRORS and keeps it true).
 */

/** OpenAI's error types, as its SDKs read them from `error.type`. */
export type OpenAIErrorType =
  | 'invalid_request_error'
  | 'authentication_error'
  | 'permission_error'
  | 'not_found_error'
  | 'rate_limit_error'
  | 'insufficient_quota'
  | 'server_error'
  | 'timeout_error';

export interface ErrorSpec {
  /** The HTTP status; `rule` for `rejected_by_rule`, whose status is the rule's. */
  readonly status: number | 'rule';
  /** `rule` for `rejected_by_rule`, whose type follows the rule's status. */
  readonly type: OpenAIErrorType | 'rule';
  /**
   * Sent as `x-should-retry`, which the official OpenAI and Anthropic SDKs obey over their own
   * status-based guess: true only when another try (on this or another instance) can succeed.
   * Always false once the proxy itself made more than one upstream attempt (toClientError).
   */
  readonly shouldRetry: boolean;
  /** `%s` is replaced by the detail the error is created with (fastify's createError does the same). */
  readonly message: string;
}

/**
 * The codes of InvalidRequestError: 400, `invalid_request_error`, not retried, the message given
 * where it is raised. Adding a code here adds its row to ERRORS (add its README row too).
 */
export const INVALID_REQUEST_CODES = [
  'bad_request', 'invalid_body', 'forbidden_json_key', 'invalid_path', 'invalid_request_target', 'invalid_url', 'json_too_deep', 'duplicate_key', 'unsafe_number', 'invalid_user',
] as const;

export type InvalidRequestCode = (typeof INVALID_REQUEST_CODES)[number];

const invalidRequestRows = Object.fromEntries(
  INVALID_REQUEST_CODES.map((code) => [code, { status: 400, type: 'invalid_request_error', shouldRetry: false, message: '%s' }]),
) as Record<InvalidRequestCode, ErrorSpec>;

/** Every error the proxy produces. One row per code; the README's Errors table has the same rows. */
export const ERRORS = {
  ...invalidRequestRows,
  invalid_json: { status: 400, type: 'invalid_request_error', shouldRetry: false, message: 'Request body is not valid JSON: %s' },
  invalid_messages: { status: 400, type: 'invalid_request_error', shouldRetry: false, message: 'Invalid messages: %s' },
  // A rule answers the same request the same way every time.
  rejected_by_rule: { status: 'rule', type: 'rule', shouldRetry: false, message: '%s' },
  // A `choose` rule found no candidate that can serve this request (its size, tools, images...).
  no_model_fits: { status: 400, type: 'invalid_request_error', shouldRetry: false, message: 'No model of the routing rule fits this request: %s' },
  // POST /v1/feedback: a token that is not one this proxy signed, is cut, expired or from the future; or a label or score outside what is accepted.
  invalid_feedback_token: { status: 400, type: 'invalid_request_error', shouldRetry: false, message: 'Invalid feedback token: %s' },
  invalid_feedback: { status: 400, type: 'invalid_request_error', shouldRetry: false, message: 'Invalid feedback: %s' },
  invalid_api_key: { status: 401, type: 'authentication_error', shouldRetry: false, message: 'Missing or invalid API key for this Signalbox proxy' },
  // The admin API's own key (ADMIN_KEY); a client key is never one.
  invalid_admin_key: { status: 401, type: 'authentication_error', shouldRetry: false, message: 'Missing or invalid admin key for this Signalbox admin API' },
  model_not_allowed: { status: 403, type: 'permission_error', shouldRetry: false, message: 'This API key may not use %s' },
  endpoint_not_allowed: { status: 403, type: 'permission_error', shouldRetry: false, message: 'This API key may not send %s' },
  // True: waiting as long as Retry-After says lets the same request through (docs/keys-and-budgets.md).
  rate_limit_exceeded: { status: 429, type: 'rate_limit_error', shouldRetry: true, message: 'Rate limit reached: %s' },
  // OpenAI's own shape for spent credit (type and code `insufficient_quota`, 429): its SDKs and
  // clients already know not to retry it. Retrying cannot help before the period ends.
  insufficient_quota: { status: 429, type: 'insufficient_quota', shouldRetry: false, message: 'Budget exhausted: %s' },
  not_found: { status: 404, type: 'not_found_error', shouldRetry: false, message: 'No route for %s' },
  // An admin request names a key the keys in force do not hold.
  key_not_found: { status: 404, type: 'not_found_error', shouldRetry: false, message: 'No client key named %s' },
  // FEEDBACK_SECRET is unset: no tokens are issued, so there is nothing to send feedback about.
  feedback_disabled: { status: 404, type: 'not_found_error', shouldRetry: false, message: 'Feedback is not enabled on this Signalbox proxy (FEEDBACK_SECRET is unset)' },
  body_too_large: { status: 413, type: 'invalid_request_error', shouldRetry: false, message: 'Request body is larger than %s' },
  unsupported_media_type: { status: 415, type: 'invalid_request_error', shouldRetry: false, message: 'Unsupported content type %s: send application/json' },
  // Node's HTTP parser (HPE_HEADER_OVERFLOW): the request line and headers exceed MAX_HEADER_BYTES.
  headers_too_large: { status: 431, type: 'invalid_request_error', shouldRetry: false, message: 'Request headers are larger than %s' },
  // Node's request timeout (the head or body did not arrive in time); a faster link may succeed.
  // False: the same upload over the same link would be as slow again, and a slow client must not be invited back.
  request_timeout: { status: 408, type: 'timeout_error', shouldRetry: false, message: 'Request timeout: the request was not received within %s' },
  client_closed_request: { status: 499, type: 'invalid_request_error', shouldRetry: false, message: 'Client closed the connection' },
  // False: a bug on this input recurs on the next try, and must not triple a hostile request's cost.
  internal_error: { status: 500, type: 'server_error', shouldRetry: false, message: 'Internal error in Signalbox' },
  // True after one attempt: nothing was answered, the next try may reach a healthy upstream.
  upstream_unreachable: { status: 502, type: 'server_error', shouldRetry: true, message: 'Upstream unreachable: %s' },
  // True: the request never reached upstream, and another instance (the load balancer's next pick) can serve it.
  shutting_down: { status: 503, type: 'server_error', shouldRetry: true, message: 'Signalbox is shutting down; retry on another instance' },
  // True: Redis reconnects on its own, and the next try (here or on another replica) may find it back (REDIS_FAILURE_MODE=closed).
  rate_limit_store_unavailable: { status: 503, type: 'server_error', shouldRetry: true, message: 'Rate-limit store unavailable: %s' },
  // True: the admin API could not read or reset spend counters (Redis unreachable); Redis reconnects on its own.
  spend_store_unavailable: { status: 503, type: 'server_error', shouldRetry: true, message: 'Spend store unavailable: %s' },
  upstream_timeout: { status: 504, type: 'timeout_error', shouldRetry: true, message: 'Upstream timeout: %s' },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERRORS;

function typeForStatus(status: number): OpenAIErrorType {
  if (status === 401) return 'authentication_error';
  if (status === 403) return 'permission_error';
  if (status === 404) return 'not_found_error';
  if (status === 429) return 'rate_limit_error';
  return status >= 500 ? 'server_error' : 'invalid_request_error';
}

export class SignalboxError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly type: OpenAIErrorType;
  /** ERRORS[code].shouldRetry: see ErrorSpec. */
  readonly shouldRetry: boolean;

  /**
   * `detail` fills the row's `%s`; `status` only for a row whose status is `rule` (400 when absent).
   * Plain string work: errors are made per request, and a template has at most one `%s`.
   */
  constructor(code: ErrorCode, detail = '', options?: ErrorOptions & { readonly status?: number }) {
    const spec: ErrorSpec = ERRORS[code];
    super(spec.message.replace('%s', () => detail), options);
    this.name = new.target.name;
    this.code = code;
    this.status = spec.status === 'rule' ? (options?.status ?? 400) : spec.status;
    this.type = spec.type === 'rule' ? typeForStatus(this.status) : spec.type;
    this.shouldRetry = spec.shouldRetry;
  }
}

/**
 * A class for one row, like fastify's createError: `new C(detail, options)`. The named classes
 * below exist so that `instanceof` and the names other modules import keep working.
 */
function errorClass(code: ErrorCode) {
  return class extends SignalboxError {
    constructor(detail?: string, options?: ErrorOptions) {
      super(code, detail, options);
    }
  };
}

export class InvalidJsonError extends errorClass('invalid_json') {}

export class InvalidRequestError extends SignalboxError {
  constructor(message: string, code: InvalidRequestCode) {
    super(code, message);
  }
}

/**
 * A chat body whose `messages` is not a non-empty array of message objects: refused before any
 * rule sees it, since an action could otherwise send upstream a request without the user's prompt.
 */
export class InvalidMessagesError extends errorClass('invalid_messages') {}

export class BodyTooLargeError extends SignalboxError {
  /** `limitBytes` unknown: the message cannot name it rather than name a wrong one. */
  constructor(limitBytes?: number) {
    super('body_too_large', limitBytes === undefined ? 'the limit' : `the limit of ${limitBytes} bytes`);
  }
}

/** Node's HTTP parser refused the request head (HPE_HEADER_OVERFLOW); answered from the 'clientError' event. */
export class HeadersTooLargeError extends SignalboxError {
  constructor(limitBytes?: number) {
    super('headers_too_large', limitBytes === undefined ? 'the limit' : `the limit of ${limitBytes} bytes`);
  }
}

export class UnsupportedMediaTypeError extends SignalboxError {
  constructor(contentType?: string) {
    super('unsupported_media_type', contentType ? JSON.stringify(contentType) : '(none)');
  }
}

export class UnauthorizedError extends errorClass('invalid_api_key') {}

/** A model outside the caller's allow-list (the keys file's `models`), refused before anything is sent. */
export class ModelNotAllowedError extends SignalboxError {
  constructor(model: string | undefined, detail = model === undefined ? 'the account\'s default model: name a model this key may use' : `the model ${JSON.stringify(model)}`) {
    super('model_not_allowed', detail);
  }
}
/** A key's or team's requests or tokens per minute are used up; the detail names which. */
export class RateLimitExceededError extends errorClass('rate_limit_exceeded') {}

/** A pass-through POST of a key whose budgets or rate limits only the routed endpoints can count. */
export class EndpointNotAllowedError extends errorClass('endpoint_not_allowed') {}

/** A budget (daily_usd, monthly_usd of a key, team or end user) cannot hold the request's reservation. */
export class InsufficientQuotaError extends errorClass('insufficient_quota') {}

/** A request to the admin API without the admin key (ADMIN_KEY). */
export class InvalidAdminKeyError extends errorClass('invalid_admin_key') {}

/** An admin request names a key that is not in force; the detail is the name asked for. */
export class KeyNotFoundError extends errorClass('key_not_found') {}

/** The admin API's listing or reset of spend counters failed (the store, e.g. Redis, did not answer). */
export class SpendStoreUnavailableError extends errorClass('spend_store_unavailable') {}

export class RouteNotFoundError extends SignalboxError {
  constructor(method = '', path = '') {
    super('not_found', `${method} ${path}`);
  }
}

/** POST /v1/feedback with a token this proxy did not sign, or one malformed, oversized, expired or future-dated. */
export class InvalidFeedbackTokenError extends errorClass('invalid_feedback_token') {}

/** POST /v1/feedback with a label outside FEEDBACK_LABELS, a score outside 0..1 or a body of another shape. */
export class InvalidFeedbackError extends errorClass('invalid_feedback') {}

/** POST /v1/feedback while FEEDBACK_SECRET is unset. */
export class FeedbackDisabledError extends errorClass('feedback_disabled') {}

export class ShuttingDownError extends errorClass('shutting_down') {}

export class UpstreamUnreachableError extends errorClass('upstream_unreachable') {}

/** REDIS_FAILURE_MODE=closed and Redis did not answer: the request is refused rather than admitted unlimited. */
export class RateLimitStoreUnavailableError extends errorClass('rate_limit_store_unavailable') {}

export type UpstreamTimeoutPhase = 'connect' | 'headers' | 'first_token' | 'idle';

export class UpstreamTimeoutError extends SignalboxError {
  readonly phase: UpstreamTimeoutPhase;
  constructor(phase: UpstreamTimeoutPhase = 'headers', timeoutMs = 0, options?: ErrorOptions) {
    const what = phase === 'connect' ? 'connecting to'
      : phase === 'headers' ? 'waiting for response headers from'
      : phase === 'first_token' ? 'waiting for the first token from'
      : 'waiting for the next body chunk from';
    super('upstream_timeout', `${timeoutMs} ms elapsed ${what} the upstream`, options);
    this.phase = phase;
  }
}

/** Node's HTTP server timed the request out (ERR_HTTP_REQUEST_TIMEOUT); answered from the 'clientError' event. */
/** The client took longer than REQUEST_TIMEOUT_MS to send its request (head and body). */
export class RequestTimeoutError extends SignalboxError {
  constructor(timeoutMs?: number) {
    super('request_timeout', timeoutMs === undefined ? 'the time allowed' : `${timeoutMs} ms`);
  }
}

/** The client went away; nothing is sent, the exchange is logged with status 499. */
export class ClientClosedError extends errorClass('client_closed_request') {}

/** A `choose` rule had no candidate that can serve the request; the detail gives each one's reason. */
export class NoModelFitsError extends errorClass('no_model_fits') {}

/** A routing rule answered the request itself (`route.reject`). */
export class RuleRejectedError extends SignalboxError {
  constructor(status: number, message: string) {
    super('rejected_by_rule', message, { status });
  }
}

export class InternalError extends SignalboxError {
  constructor(options?: ErrorOptions) {
    super('internal_error', '', options);
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
