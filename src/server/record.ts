import type { SpendSettlement } from '../accounts/accounts.js';
import type { TokenCharge } from '../accounts/rate-limit.js';
import type { Classification } from '../classify/labels.js';
import type { SplitAssignment } from '../rules/split.js';
import type { SignalboxError } from '../errors.js';
import type { Escalation } from '../experiments/cascade.js';
import type { StreamErrorKind } from '../metrics/metrics.js';
import type { AttemptRecord } from '../upstream/attempts.js';
import type { ResponseFacts } from '../upstream/response-tap.js';
import type { PreparedShadow } from '../experiments/shadow.js';

/**
 * What happened to one client request, assembled once when its response has closed
 * (`Exchange.record`, or the refusal paths of client-error.ts) from the stages' results. The log
 * line and the metrics read this and nothing else (recorder.ts). Every name in it is already cut
 * to its bound (clipText where the stage took it).
 */
export interface ExchangeRecord {
  readonly method: string;
  /** The request target as received (the log cuts its query string). */
  readonly url: string;
  /** Status the client got (499: it left). */
  readonly status: number;
  /** Arrival to the response's close. */
  readonly durationMs: number;
  readonly clientAddress: string | undefined;
  readonly userAgent: string | undefined;
  readonly clientKeyId: string | undefined;
  /** The token estimate the rate limits took, to settle to the reported usage; undefined when no tpm applied. */
  readonly tokenCharge?: TokenCharge | undefined;
  /** The budget reservation to give back and the spend counters to add the cost to; undefined without a caller. */
  readonly spendSettlement?: SpendSettlement | undefined;
  readonly bytesIn: number;
  readonly bytesOut: number;
  /** Model the client asked for. */
  readonly requestedModel: string | undefined;
  /** The deciding rule, `none` when no rule matched, undefined when the rules never saw the request. */
  readonly rule: string | undefined;
  /** Model of the last upstream attempt (else the decision's). */
  readonly routedModel: string | undefined;
  /** The model the rules measure this request's cost against (`baseline:`). */
  readonly baselineModel: string | undefined;
  /** The verdict the rules read (`classify.*`), when one did. */
  readonly classification: Classification | undefined;
  /** The arm of the rule's `split` the request landed in; undefined when the rule does not split. */
  readonly variant?: string | undefined;
  /** How the arm was chosen (signalbox_split_assignments_total). */
  readonly splitAssignment?: SplitAssignment | undefined;
  /** The shadow copy to send now that the response has ended (src/experiments/shadow.ts). */
  readonly shadow?: PreparedShadow | undefined;
  /** What the classifier's upstream call for this request cost, USD; undefined when none was made or it is unknown. */
  readonly classifierCostUsd: number | undefined;
  /** A cascade rule's escalations (empty: none); undefined for other rules. */
  readonly escalations?: readonly Escalation[] | undefined;
  /** What the answers the cascade discarded cost, USD, as far as known. */
  readonly escalationCostUsd?: number | undefined;
  readonly stream: boolean;
  /** Every upstream attempt, in order (empty when none was made). */
  readonly attempts: readonly AttemptRecord[];
  /** Status of the upstream response relayed to the client. */
  readonly upstreamStatus: number | undefined;
  /** Time inside the proxy, not waiting on upstream; all of it when no upstream call was made. */
  readonly overheadMs: number;
  /** What the response tap read from the upstream response. */
  readonly facts: ResponseFacts | undefined;
  /** Arrival to the first token of a stream whose first token was seen. */
  readonly ttftMs: number | undefined;
  /** The last user message's text, for the log's prompt hash; only taken when the log writes request lines. */
  readonly promptText: string | undefined;
  /** The client went away before its response was complete. */
  readonly clientClosed: boolean;
  readonly streamErrorKind: StreamErrorKind | undefined;
  /** The proxy's own error, when there was one (also mid-stream). */
  readonly error: SignalboxError | undefined;
}
