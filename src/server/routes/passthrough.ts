import type { FastifyInstance } from 'fastify';
import { clipText } from '../../bounded-text.js';
import { EndpointNotAllowedError, InvalidRequestError, ModelNotAllowedError } from '../../errors.js';
import { isAccountable } from '../../accounts/budget.js';
import { topLevelMembers } from '../../upstream/json-members.js';
import { NO_RETRY } from '../../upstream/attempts.js';
import { forward, type ForwardDeps } from '../forward.js';
import { ROUTED_V1_PATHS } from './chat-completions.js';

const V1_PREFIX = '/v1';

/**
 * A path segment that climbs (`..`, also percent-encoded) could reach upstream endpoints outside
 * the API base with the server's key; such paths are refused rather than normalised.
 */
function climbs(path: string): boolean {
  let decoded: string;
  try {
    decoded = decodeURIComponent(path);
  } catch {
    return true;
  }
  return decoded.split(/[/\\]/).some((segment) => segment === '..' || segment === '.');
}

/** Percent-decoding rounds: enough for double encoding (`%252F`) by a proxy in front. */
const MAX_DECODES = 3;

/**
 * The path as a lenient upstream or intermediary may read it: percent-decoded (repeatedly),
 * lower case, `\` as `/`, matrix parameters (`;x`) and surrounding blanks cut from each segment,
 * empty segments (`//`, a trailing `/`) removed. Undefined when it does not decode (nothing
 * routed can then be meant). Only compared with ROUTED_PATHS, never forwarded.
 */
function canonicalPath(path: string): string | undefined {
  let decoded = path;
  for (let i = 0; i < MAX_DECODES && decoded.includes('%'); i++) {
    try {
      decoded = decodeURIComponent(decoded);
    } catch {
      return undefined;
    }
  }
  const segments: string[] = [];
  for (const segment of decoded.toLowerCase().split(/[/\\]/)) {
    const semicolon = segment.indexOf(';');
    const bare = (semicolon === -1 ? segment : segment.slice(0, semicolon)).trim();
    if (bare.length > 0) segments.push(bare);
  }
  return segments.join('/');
}

/**
 * The endpoints the rules route (chat-completions.ts), below /v1, as `canonicalPath` gives them.
 * A request for one of them must never be forwarded unrouted, whatever its spelling.
 */
const ROUTED_PATHS: ReadonlySet<string> = new Set(ROUTED_V1_PATHS.map((path) => canonicalPath(path.slice(V1_PREFIX.length)) ?? path));

const MODEL_MEMBER: ReadonlySet<string> = new Set(['model']);
/**
 * How far into a body, from either end, `model` is looked for: clients write it first or last,
 * and the bulk between (embeddings input, a prompt) is never parsed just to label the metrics
 * (issue 12, defect 25). A `model` behind 64 KiB from both ends is not found: labelled unknown.
 */
const MODEL_SCAN_WINDOW_BYTES = 64 * 1024;

/** `model` of a JSON body, without parsing the rest or failing on anything. */
export function modelOf(body: Buffer): string | undefined {
  const model = topLevelMembers(body, MODEL_MEMBER, MODEL_SCAN_WINDOW_BYTES).get('model');
  return typeof model === 'string' ? model : undefined;
}

/**
 * Every other `/v1/*` endpoint (models, embeddings, completions, generation stats...) goes
 * upstream unchanged, any method and content type, with the same auth and header handling.
 */
export async function passthroughRoutes(app: FastifyInstance, opts: { proxy: ForwardDeps }): Promise<void> {
  const { proxy } = opts;
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_request, body, done) => done(null, body));

  app.all(`${V1_PREFIX}/*`, async (request, reply) => {
    const upstreamPath = request.url.slice(V1_PREFIX.length);
    const q = upstreamPath.indexOf('?');
    if (climbs(q === -1 ? upstreamPath : upstreamPath.slice(0, q))) {
      throw new InvalidRequestError('Path segments "." and ".." are not allowed', 'invalid_path');
    }
    // `/v1/chat/completions/`, `//`, `;x`, `%2F`...: refused rather than normalised, so that the
    // rules (rejects, token caps) cannot be skipped by a spelling the router does not match but
    // the upstream may accept, and so that the client learns the one spelling that is routed.
    if (ROUTED_PATHS.has(canonicalPath(q === -1 ? upstreamPath : upstreamPath.slice(0, q)) ?? '')) {
      throw new InvalidRequestError(`${request.method} ${clipText(request.url.split('?')[0])} is not routed: send POST ${ROUTED_V1_PATHS.join(' or POST ')}, spelled exactly`, 'invalid_path');
    }
    // A pass-through body is never parsed, so its model cannot be checked: a key with an
    // allow-list may only read (GET /v1/models, generation records), or its allow-list could be
    // spent on /v1/completions or /v1/embeddings with any model.
    if (request.exchange.caller?.models !== undefined && request.method !== 'GET' && request.method !== 'HEAD') {
      throw new ModelNotAllowedError(undefined, `${request.method} ${clipText(request.url.split('?')[0])}: a key with a model allow-list may only send the routed endpoints (chat completions, responses, messages)`);
    }
    // Likewise for a key with budgets or rate limits: a pass-through answer is not metered against
    // them, so its POSTs would be spend and traffic no budget or limit counts (the bypass of
    // LiteLLM's budgets, BerriAI/litellm#26672).
    const caller = request.exchange.caller;
    if (caller !== undefined && isAccountable(caller) && request.method !== 'GET' && request.method !== 'HEAD') {
      throw new EndpointNotAllowedError(`${request.method} ${clipText(request.url.split('?')[0])}: a key with budgets or rate limits may only send the routed endpoints here (chat completions, responses, messages: the others are not metered)`);
    }
    const body = Buffer.isBuffer(request.body) ? request.body : undefined;
    const exchange = request.exchange;
    exchange.bytesIn = body?.length ?? 0;
    // A JSON body's model (embeddings, completions) labels the metrics; anything else stays unparsed.
    if (body && request.method === 'POST' && /^application\/json/i.test(request.headers['content-type'] ?? '')) {
      exchange.requestedModel = clipText(modelOf(body));
      exchange.routedModel = exchange.requestedModel;
    }
    // Never retried: a pass-through request may not be idempotent, and has no route to fall back on.
    // POST endpoints (completions, embeddings) report usage; catalogs and GETs are only relayed.
    await forward(request, reply, proxy, {
      method: request.method, path: upstreamPath, body, model: exchange.routedModel, retry: NO_RETRY, firstTokenTimeoutMs: 0, tap: request.method === 'POST',
    });
  });
}
