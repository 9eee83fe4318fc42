import type { IncomingHttpHeaders } from 'node:http';
import type { RetryOverride } from './actions.js';

/**
 * The seam between the request and the upstream call: a router reads the request context and
 * returns a decision that may rewrite the body. The rules engine (`RuleSet`) is the router.
 */

export type JsonObject = Record<string, unknown>;

export interface RequestContext {
  readonly headers: IncomingHttpHeaders;
  /** The parsed chat-completions body, as the client sent it. Routers must not mutate it. */
  readonly body: Readonly<JsonObject>;
  /** `body.model` when it is a string. */
  readonly requestedModel: string | undefined;
  /** Evaluation time for `time.*` fields; now when absent. */
  readonly now?: Date;
}

export interface RouteDecision {
  /** Name of the rule that decided; `none` when no rule matched. */
  readonly rule: string;
  /** The model sent upstream. */
  readonly model: string | undefined;
  /** The body to send upstream. */
  readonly body: Readonly<JsonObject>;
  /**
   * False when `body` is the client's body untouched: the proxy then forwards the client's own
   * bytes and never serialises JSON again.
   */
  readonly bodyChanged: boolean;
  /** Extra headers for the upstream request. */
  readonly upstreamHeaders?: Readonly<Record<string, string>>;
  /** The tier the route came from, when it named one. */
  readonly tier?: string | undefined;
  /** The rule's own retry settings, over the global ones. */
  readonly retry?: RetryOverride | undefined;
  /** Answer the client with this error instead of calling upstream. */
  readonly reject?: { readonly status: number; readonly message: string };
}

export interface Router {
  decide(context: RequestContext): RouteDecision;
}

export const NO_RULE = 'none';
/**
 * The `rule` of a request the rules never saw: an endpoint they do not route (models,
 * embeddings, explain...) or a chat request refused before routing (invalid JSON, 413, 401...).
 * Kept apart from `none` (routed, no rule matched) so that refusals do not read as routed traffic.
 */
export const UNROUTED = 'unrouted';
