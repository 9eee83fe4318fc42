import type { Catalog } from '../catalog/catalog.js';
import { catalogCost } from '../catalog/cost.js';
import type { UpstreamClient } from '../upstream/client.js';
import { usageOf } from '../upstream/response-tap.js';
import type { Classification } from './labels.js';

/**
 * What the LLM and embedding classifiers share: one bounded upstream call with a strict timeout,
 * the outcome each call is counted by, and the price of what it used.
 */

/** How a classification went (`signalbox_classifier_requests_total{outcome}`). */
export type ClassifierOutcome = 'ok' | 'cached' | 'timeout' | 'error' | 'unparseable';
/** Which remote classifier made a call (`method` of the classifier metrics; a hybrid's calls are `llm`'s). */
export type RemoteMethod = 'llm' | 'embedding';

/** One classification by a remote method: its verdict (the local one on a failure) and what it cost the caller. */
export interface RemoteVerdict {
  readonly classification: Classification;
  readonly outcome: ClassifierOutcome;
  /** USD the upstream call cost (undefined: cached, failed before an answer, or unpriced). */
  readonly costUsd: number | undefined;
}

/** Where the classifiers' calls go and are counted; the app's, or a test's. */
export interface RemoteDeps {
  readonly upstream: Pick<UpstreamClient, 'fetchWhole'>;
  /** The catalog in force, to price an answer that reported no `usage.cost`. */
  readonly catalog: () => Catalog | undefined;
  /** Counts one call (or cache hit) and what it cost; the metrics, when on. */
  readonly observe?: (method: RemoteMethod, outcome: ClassifierOutcome, seconds: number, costUsd: number | undefined) => void;
  /** Monotonic milliseconds, for the duration histogram. */
  readonly now?: () => number;
}

/** A classification or embeddings answer is a few KB; a larger answer is refused, not read. */
export const MAX_CLASSIFIER_ANSWER_BYTES = 256 * 1024;

/** The call's answer as JSON, or why there is none. */
export type CallResult =
  | { readonly ok: true; readonly json: unknown }
  | { readonly ok: false; readonly outcome: 'timeout' | 'error' | 'unparseable' };

/**
 * POSTs `body` (JSON) to `path` with `authorization`, aborted after `timeoutMs`. Never rejects: a
 * timeout, a network error or a non-2xx answer is an outcome, and an answer that is not JSON is
 * `unparseable`.
 */
export async function postJson(deps: RemoteDeps, path: string, body: unknown, authorization: string | undefined, timeoutMs: number): Promise<CallResult> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new Error(`classifier call timed out after ${timeoutMs} ms`)), timeoutMs);
  timer.unref();
  try {
    const headers: Record<string, string> = { 'content-type': 'application/json', 'accept-encoding': 'identity' };
    if (authorization !== undefined) headers.authorization = authorization;
    const answer = await deps.upstream.fetchWhole({ method: 'POST', path, headers, body: JSON.stringify(body) }, MAX_CLASSIFIER_ANSWER_BYTES, controller.signal);
    if (answer.status < 200 || answer.status > 299) return { ok: false, outcome: 'error' };
    try {
      return { ok: true, json: JSON.parse(answer.body.toString('utf8')) };
    } catch {
      return { ok: false, outcome: 'unparseable' };
    }
  } catch {
    return { ok: false, outcome: controller.signal.aborted ? 'timeout' : 'error' };
  } finally {
    clearTimeout(timer);
  }
}

/**
 * What an answer cost: its `usage.cost` (OpenRouter's, USD) when present, else the catalog's price
 * of its token counts on `model`, else unknown. `usage` is read as the response tap reads it.
 */
export function answerCost(json: unknown, model: string, catalog: Catalog | undefined): number | undefined {
  const usage = usageOf((json as { usage?: unknown } | null)?.usage);
  if (usage === undefined) return undefined;
  if (usage.cost !== undefined) return usage.cost;
  return catalog === undefined ? undefined : catalogCost(catalog, model, usage, new Date());
}
