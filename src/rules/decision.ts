import type { IncomingHttpHeaders } from 'node:http';

/**
 * The seam between the request and the upstream call: a router reads the request context and
 * returns a decision that may rewrite the body. The rules engine (next issue) is one router;
 * `passThroughRouter` is the identity.
 */

export type JsonObject = Record<string, unknown>;

export interface RequestContext {
  readonly headers: IncomingHttpHeaders;
  /** The parsed chat-completions body, as the client sent it. Routers must not mutate it. */
  readonly body: Readonly<JsonObject>;
  /** `body.model` when it is a string. */
  readonly requestedModel: string | undefined;
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
}

export interface Router {
  decide(context: RequestContext): RouteDecision;
}

export const NO_RULE = 'none';

/** Forwards every request unchanged. */
export const passThroughRouter: Router = {
  decide(context: RequestContext): RouteDecision {
    return { rule: NO_RULE, model: context.requestedModel, body: context.body, bodyChanged: false };
  },
};
