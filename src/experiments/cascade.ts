import type { FastifyReply, FastifyRequest } from 'fastify';
import { clipText } from '../bounded-text.js';
import type { Catalog } from '../catalog/catalog.js';
import { requestCost, spentUsd } from '../catalog/cost.js';
import type { RequestContext, RouteDecision } from '../rules/decision.js';
import { cascadeStep } from '../rules/ruleset.js';
import { chatView } from '../rules/shapes.js';
import { Forwarding, type ForwardDeps, type ForwardTarget } from '../server/forward.js';
import type { AttemptRecord } from '../upstream/attempts.js';
import type { ResponseFacts } from '../upstream/response-tap.js';
import { asksJson, type EscalationReason } from './cascade-checks.js';
import { CascadeGate } from './cascade-gate.js';

/**
 * The cascade's executor (issue 17, item 3): sends the first tier; while its answer fails the
 * plan's checks (or the tier fails outright) and escalations are left, sends the next tier
 * instead. The client gets the first answer that passes, or the last tier's, which is never held.
 * Each tier is one Forwarding, with its own retries and fallbacks; a tier with a tier after it
 * carries a CascadeGate, so nothing of its answer reaches the client before it passed (the status
 * and headers the client sees are those of the tier that answered).
 */

/** One escalation, for the request log line, the metric and the caller's spend. */
export interface Escalation {
  readonly from: string;
  readonly to: string;
  readonly reason: EscalationReason;
  /** The discarded tier's model (the served one when reported), for the cost metric. */
  readonly model: string | undefined;
  /** What the discarded answer cost, USD, when known (a stream aborted before its usage reports nothing). */
  readonly costUsd: number | undefined;
}

/** The response header that counts a cascade's escalations (0 included; cascade rules only). */
export const ESCALATIONS_HEADER = 'x-signalbox-escalations';

export interface CascadeRequest {
  /** The rule's decision: its route is the first tier, `cascade` the plan. */
  readonly decision: RouteDecision;
  /** The context the decision was made on (later tiers are built on it). */
  readonly context: RequestContext;
  /** The upstream call of a tier's decision; undefined when that tier cannot be sent (a model the caller may not use, a body that cannot be rewritten). */
  readonly targetFor: (decision: RouteDecision) => ForwardTarget | undefined;
  /** Prices a discarded answer that reported no cost. */
  readonly catalog: Catalog | undefined;
}

/** What a discarded answer cost its caller, as the answer's own is counted (spentUsd). */
function discardedCost(facts: ResponseFacts | undefined, model: string | undefined, catalog: Catalog | undefined): number | undefined {
  const usage = facts?.usage;
  if (usage === undefined) return undefined;
  return spentUsd(usage, requestCost(usage.cost, catalog, facts?.model ?? model, usage, new Date()));
}

export async function runCascade(request: FastifyRequest, reply: FastifyReply, deps: ForwardDeps, cascade: CascadeRequest): Promise<void> {
  const plan = cascade.decision.cascade!;
  const api = cascade.context.api ?? 'chat';
  // Read through the chat view: a Responses `text.format` asks for JSON as chat's `response_format` does.
  const askedJson = asksJson(chatView(api, cascade.context.body));
  const exchange = request.exchange;
  const res = reply.raw;
  const escalations: Escalation[] = [];
  exchange.escalations = escalations;
  /** The attempts of the tiers left so far (each at most RETRY_MAX_ATTEMPTS, at most MAX_CASCADE_TIERS tiers). */
  let discardedAttempts: readonly AttemptRecord[] = [];
  let index = 0;
  let decision = cascade.decision;
  let target = cascade.targetFor(decision)!;
  for (;;) {
    // The next tier, when one is left that can be sent; otherwise this tier is the last and is not held.
    let next: { decision: RouteDecision; target: ForwardTarget } | undefined;
    if (index < plan.maxEscalations) {
      const nextDecision = cascadeStep(plan, index + 1, cascade.context);
      const nextTarget = nextDecision.reject === undefined ? cascade.targetFor(nextDecision) : undefined;
      if (nextTarget !== undefined) next = { decision: nextDecision, target: nextTarget };
    }
    const gate = next === undefined ? undefined : new CascadeGate(plan, askedJson, api);
    // On the raw response: merged into whichever head is written, the relay's or an error's.
    res.setHeader(ESCALATIONS_HEADER, String(escalations.length));
    const escalated = await new Forwarding(request, reply, deps, { ...target, gate, earlierAttempts: discardedAttempts }).run();
    if (escalated === undefined || next === undefined) return;
    discardedAttempts = exchange.upstream?.attempts ?? discardedAttempts;
    const model = clipText(target.model);
    const costUsd = discardedCost(gate!.facts(), model, cascade.catalog);
    escalations.push({ from: plan.steps[index]!.tier, to: plan.steps[index + 1]!.tier, reason: escalated.reason, model, costUsd });
    if (costUsd !== undefined) exchange.escalationCostUsd = (exchange.escalationCostUsd ?? 0) + costUsd;
    // The client left as the tier ended: nothing more is sent upstream (its record already says 499).
    if (res.destroyed || request.raw.socket?.destroyed === true) {
      reply.hijack();
      return;
    }
    index++;
    ({ decision, target } = next);
    exchange.routedModel = clipText(decision.model);
  }
}
