import type { IncomingHttpHeaders } from 'node:http';
import type { RequestContext, ResolvedFields, RouteDecision } from '../rules/decision.js';
import type { ClassifierConfig } from './config.js';
import { EmbeddingClassifier } from './embedding.js';
import { LlmClassifier } from './llm.js';
import type { RemoteDeps, RemoteVerdict } from './remote.js';
import type { Classification } from './labels.js';
import { classifierInput } from './window.js';
import { chatView } from '../rules/shapes.js';

/**
 * The asynchronous step before the pure engine (issue 15, "the engine stays pure"): the verdicts
 * that need I/O (the llm, hybrid and embedding methods) are fetched here and handed to `decide` as
 * `context.resolved`. Called after authentication, so a refused caller never triggers a paid call,
 * and only when this request's evaluation reads `classify.*`.
 */

/** What the resolver needs of a rules file: one RuleSet for the whole request. */
export interface ClassifyingRules {
  readonly readsClassification: boolean;
  /** Undefined when the rules were compiled without one (they then read no classify.*). */
  readonly classifier: ClassifierConfig | undefined;
  decide(context: RequestContext): RouteDecision;
}

export interface ResolverDeps extends RemoteDeps {
  /** Where the embedding method caches the examples' vectors (DATA_DIR). */
  readonly dataDir: string;
  /** The Authorization a classifier call made for a client with these headers sends (upstreamAuthorization). */
  readonly credential: (headers: IncomingHttpHeaders) => string | undefined;
  /** The embedding method could not write its cache file (it goes on with the vectors in memory). */
  readonly onCacheWriteError?: (err: unknown) => void;
}

export interface Resolution {
  readonly resolved: ResolvedFields;
  /** What the classifier's upstream call cost (the request's `classifier_cost_usd`); undefined when none was made or it is unknown. */
  readonly costUsd: number | undefined;
}

type RemoteClassifier = { classify(window: string, local: Classification, authorization: string | undefined): Promise<RemoteVerdict> };

export class ClassifierResolver {
  /**
   * Each rules load's classifier, with its caches: a reload that changes the prompt or the examples
   * starts afresh, and the old caches go with the old rules.
   */
  private readonly classifiers = new WeakMap<ClassifierConfig, RemoteClassifier>();

  constructor(private readonly deps: ResolverDeps) {}

  /**
   * The fields `rules` would read that need I/O, for `context`: undefined (and no promise) when the
   * rules read no `classify.*` field, the method is local, or this request is decided before a rule
   * reads one; a value at once for a hybrid the local classifier is sure of.
   */
  resolve(rules: ClassifyingRules, context: RequestContext): Resolution | Promise<Resolution> | undefined {
    if (!rules.readsClassification) return undefined;
    const config = rules.classifier;
    if (config === undefined || config.method === 'local') return undefined;
    // A dry run of the pure engine with the local verdict (microseconds): whether this request's
    // evaluation reads classify.* at all (an earlier rule may decide first), and the verdict to
    // fall back on.
    const local = rules.decide(context).classification;
    if (local === undefined) return undefined;
    if (config.method === 'hybrid' && local.confidence >= config.hybrid.minConfidence) return { resolved: { classification: local }, costUsd: undefined };
    const classifier = this.classifierFor(config);
    if (classifier === undefined) return undefined;
    // The chat-shaped view: the Responses and Messages shapes are classified alike (src/rules/shapes.ts).
    const messages = chatView(context.api ?? 'chat', context.body).messages;
    const window = classifierInput(Array.isArray(messages) ? messages : []).text;
    return classifier.classify(window, local, this.deps.credential(context.headers))
      .then((verdict) => ({ resolved: { classification: verdict.classification }, costUsd: verdict.costUsd }));
  }

  private classifierFor(config: ClassifierConfig): RemoteClassifier | undefined {
    let classifier = this.classifiers.get(config);
    if (classifier !== undefined) return classifier;
    if (config.method === 'embedding') {
      // A method embedding without examples is a load error: such rules never reach a request.
      if (config.embedding === undefined) return undefined;
      classifier = new EmbeddingClassifier(config.embedding, this.deps.dataDir, this.deps, this.deps.onCacheWriteError);
    } else {
      classifier = new LlmClassifier(config.llm, this.deps);
    }
    this.classifiers.set(config, classifier);
    return classifier;
  }
}
