import type { FastifyInstance } from 'fastify';
import { clipText } from '../../bounded-text.js';
import { InvalidRequestError } from '../../errors.js';
import { topLevelMembers } from '../../upstream/json-members.js';
import { forward, type ProxyDeps } from '../proxy.js';

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
export async function passthroughRoutes(app: FastifyInstance, opts: { proxy: ProxyDeps }): Promise<void> {
  const { proxy } = opts;
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_request, body, done) => done(null, body));

  app.all(`${V1_PREFIX}/*`, async (request, reply) => {
    const upstreamPath = request.url.slice(V1_PREFIX.length);
    const q = upstreamPath.indexOf('?');
    if (climbs(q === -1 ? upstreamPath : upstreamPath.slice(0, q))) {
      throw new InvalidRequestError('Path segments "." and ".." are not allowed', 'invalid_path');
    }
    const body = Buffer.isBuffer(request.body) ? request.body : undefined;
    const exchange = request.exchange;
    exchange.bytesIn = body?.length ?? 0;
    // A JSON body's model (embeddings, completions) labels the metrics; anything else stays unparsed.
    if (body && request.method === 'POST' && /^application\/json/i.test(request.headers['content-type'] ?? '')) {
      exchange.requestedModel = clipText(modelOf(body));
      exchange.routedModel = exchange.requestedModel;
    }
    // POST endpoints (completions, embeddings) report usage; catalogs and GETs are only relayed.
    await forward(request, reply, proxy, { method: request.method, path: upstreamPath, body, tap: request.method === 'POST' });
  });
}
