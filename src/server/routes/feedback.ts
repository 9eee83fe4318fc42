import type { FastifyInstance } from 'fastify';
import { FeedbackDisabledError, InvalidFeedbackError, InvalidFeedbackTokenError } from '../../errors.js';
import type { FeedbackTokens, TokenProblem } from '../../experiments/feedback.js';
import type { SignalboxMetrics } from '../../metrics/metrics.js';
import { parseJsonBody, type ParsedJsonBody } from './routed.js';

export const FEEDBACK_PATH = '/v1/feedback';

/** A feedback body is a token (at most 2 KiB), a label and a score: anything near this size is not one. */
const FEEDBACK_BODY_LIMIT_BYTES = 16 * 1024;

const PROBLEMS: Readonly<Record<TokenProblem, string>> = {
  oversized: 'longer than any token this proxy issues',
  malformed: 'not a feedback token',
  forged: 'not signed by this proxy',
  expired: 'expired (FEEDBACK_TOKEN_TTL_MS)',
  future: 'issued in the future',
};

export interface FeedbackRoutesOptions {
  /** Undefined while FEEDBACK_SECRET is unset: the route answers 404 feedback_disabled. */
  readonly tokens: FeedbackTokens | undefined;
  readonly labels: readonly string[];
  readonly metrics: SignalboxMetrics | undefined;
}

/**
 * POST /v1/feedback `{ token, label, score? }` (issue 17, item 4): a client rates an answer by
 * sending back its x-signalbox-feedback-token. The token says what was rated, so nothing is looked
 * up; the feedback is counted (signalbox_feedback_total) and logged (`msg: 'feedback'`, never the
 * token), which `signalbox report --by variant` reads.
 */
export async function feedbackRoutes(app: FastifyInstance, opts: FeedbackRoutesOptions): Promise<void> {
  const { tokens, metrics } = opts;
  const labels = new Set(opts.labels);
  const labelList = opts.labels.join(', ');
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, parseJsonBody);

  app.post(FEEDBACK_PATH, { bodyLimit: FEEDBACK_BODY_LIMIT_BYTES }, async (request, reply) => {
    if (tokens === undefined) throw new FeedbackDisabledError();
    const body = (request.body as ParsedJsonBody | undefined)?.value;
    if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new InvalidFeedbackError('send a JSON object { token, label, score? }');
    const { token, label, score } = body as Record<string, unknown>;
    const verdict = tokens.verify(token);
    if (!verdict.ok) throw new InvalidFeedbackTokenError(PROBLEMS[verdict.problem]);
    // The client's label is not echoed: it may be anything, of any length.
    if (typeof label !== 'string' || !labels.has(label)) throw new InvalidFeedbackError(`label must be one of ${labelList}`);
    if (score !== undefined && (typeof score !== 'number' || !(score >= 0 && score <= 1))) throw new InvalidFeedbackError('score must be a number from 0 to 1');
    const { rule, variant, model } = verdict.claims;
    metrics?.feedbackReceived(rule, variant, model, label);
    request.log.info({ rule, variant: variant ?? 'none', model, label, score }, 'feedback');
    return reply.code(200).type('application/json; charset=utf-8').send('{"ok":true}');
  });
}
