import type { IncomingHttpHeaders } from 'node:http';
import type { BudgetFields } from '../accounts/budget.js';
import type { Caller } from '../accounts/caller.js';
import type { CascadePlan } from './cascade.js';
import type { Api } from './shapes.js';
import type { ShadowPlan } from './shadow.js';
import type { SplitAssignment } from './split.js';
import type { Catalog } from '../catalog/catalog.js';
import type { Classification } from '../classify/labels.js';
import { InvalidMessagesError } from '../errors.js';
import type { RetryOverride } from './actions.js';
import type { StickyTier, StickyTierReader } from './tier-from.js';

/**
 * The seam between the request and the upstream call: `RuleSet.decide` reads the request context
 * and returns a decision that may rewrite the body.
 */

export type JsonObject = Record<string, unknown>;

export interface RequestContext {
  readonly headers: IncomingHttpHeaders;
  /** The parsed body, as the client sent it, in its shape (`api`). The rules must not mutate it. */
  readonly body: Readonly<JsonObject>;
  /** `body.model` when it is a string. */
  readonly requestedModel: string | undefined;
  /** Evaluation time for `time.*` fields; `clock()` when absent. */
  readonly now?: Date;
  /**
   * Where the time comes from when `now` is absent (default: the system clock). Called at most
   * once per decision, and only when a rule reads a `time.*` field.
   */
  readonly clock?: () => Date;
  /**
   * The model catalog in force (a value, read by `model.*` and `request.cost_estimate_usd`);
   * absent: those fields are unknown (null), and rules on them do not match.
   */
  readonly catalog?: Catalog | undefined;
  /** Fields resolved before evaluation by the asynchronous step (I/O the pure engine never does). */
  readonly resolved?: ResolvedFields | undefined;
  /** Who the request's key says the caller is (`key.*`); absent without client keys: those fields are missing. */
  readonly caller?: Caller | undefined;
  /** The request's shape (src/rules/shapes.ts); chat when absent. */
  readonly api?: Api | undefined;
  /** Draws of a split without a subject, in [0, 1); Math.random when absent (tests inject one). */
  readonly random?: (() => number) | undefined;
  /**
   * The tiers conversations keep (`tier_from.stick_by`), read-only: the server stores what a
   * decision's `stick` says. Absent: no tier is kept (each request is classified).
   */
  readonly stickyTiers?: StickyTierReader | undefined;
}

/**
 * Values the rules read that need I/O to know, fetched before evaluation and only when the
 * compiled rules read them (src/classify/resolver.ts). Absent: computed locally, or unknown.
 */
export interface ResolvedFields {
  /** The verdict of the LLM or embedding method (or the hybrid's), read as `classify.*`. */
  readonly classification?: Classification;
  /** The caller's spend and budgets (`budget.*`, `team.*`, `user.*`), read from the account store. */
  readonly budget?: BudgetFields;
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
  /** With `aliases: true`: the tier the client's model named, when the request was routed as it. */
  readonly alias?: string | undefined;
  /**
   * What the same request would have cost without routing is priced on this model (the rule's
   * `baseline:`, else the file's; a tier resolved to its model).
   */
  readonly baseline?: string | undefined;
  /**
   * The route's fallbacks, for a shape that has no `models` list (Responses, Messages): the proxy
   * tries them itself. Chat puts them in the body's `models`, where OpenRouter walks them.
   */
  readonly fallbacks?: readonly string[] | undefined;
  /** The rule's own retry settings, over the global ones. */
  readonly retry?: RetryOverride | undefined;
  /** Answer the client with this error instead of calling upstream (`no_model_fits`: a `choose` none of whose candidates fits). */
  readonly reject?: { readonly status: number; readonly message: string; readonly code?: 'no_model_fits' };
  /** Something the operator should know about this decision (choose without a catalog). */
  readonly warning?: string;
  /** The request's classification, when a rule read `classify.*` (for the log, the metrics and explain). */
  readonly classification?: Classification;
  /** Fallbacks of the route left out of `models`: the catalog says they cannot serve this request. */
  readonly droppedFallbacks?: readonly { readonly model: string; readonly reason: string }[];
  /** A `tier_from` rule with `stick_by` chose a conversation's tier: the server keeps it for `ttlMs`. */
  readonly stick?: StickyTier;
  /** The arm of the rule's `split` the request landed in, and how it was assigned. */
  readonly split?: { readonly variant: string; readonly assignment: SplitAssignment };
  /** The rule's `cascade`: the decision's route is its first tier; the server escalates along the plan. */
  readonly cascade?: CascadePlan;
  /** The rule's `shadow`: the server copies a sample of its requests to the candidate. */
  readonly shadow?: ShadowPlan;
}

export const NO_RULE = 'none';

/** The `variant` (metrics, reports) of a request whose rule does not split; no arm may be named so. */
export const NO_VARIANT = 'none';

function kindOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}

/**
 * Why a chat body cannot be routed, or undefined when it can: `messages` must be a non-empty array
 * whose every element is a non-null, non-array object. Checked before any rule sees the body, by
 * the chat route, explain and the offline cases alike, so no action ever runs on a body without a
 * conversation (a `system_prompt` would otherwise go upstream alone, and be billed). The detail
 * names the first offending position and the JSON kind found there, never the client's content.
 */
export function invalidMessages(body: Readonly<JsonObject>): InvalidMessagesError | undefined {
  const messages = body.messages;
  if (messages === undefined) return new InvalidMessagesError('`messages` is required: a non-empty array of message objects');
  if (!Array.isArray(messages)) return new InvalidMessagesError(`\`messages\` must be a non-empty array of message objects, not ${kindOf(messages)}`);
  if (messages.length === 0) return new InvalidMessagesError('`messages` must not be empty');
  for (let i = 0; i < messages.length; i++) {
    const message: unknown = messages[i];
    if (message === null || typeof message !== 'object' || Array.isArray(message)) {
      return new InvalidMessagesError(`\`messages[${i}]\` must be a message object, not ${kindOf(message)}`);
    }
  }
  return undefined;
}

/**
 * The `rule` of a request the rules never saw: an endpoint they do not route (models,
 * embeddings, explain...) or a chat request refused before routing (invalid JSON, 413, 401...).
 * Kept apart from `none` (routed, no rule matched) so that refusals do not read as routed traffic.
 */
export const UNROUTED = 'unrouted';
