import type { FastifyInstance } from 'fastify';
import type { RulesSource } from '../../rules/ruleset.js';
import { NO_RETRY } from '../../upstream/attempts.js';
import { buildUpstreamHeaders } from '../../upstream/headers.js';
import { scrubSecret } from '../../upstream/scrub.js';
import { forward, type ForwardDeps } from '../forward.js';
import { queryOf } from './routed.js';

/**
 * The largest model list the proxy reads whole to add its tiers to. OpenRouter's whole catalog
 * is 1 to 2 MB; a larger answer is refused (502) rather than held in memory.
 */
export const MAX_MODEL_LIST_BYTES = 16 * 1024 * 1024;

/**
 * GET /v1/models: the upstream's list, as it is. With `aliases: true` in the rules in force, the
 * tiers a client may send as its model are listed beside the upstream's models
 * (`owned_by: "signalbox"`), so that an SDK or a UI that offers the list offers them too.
 */
export async function modelsRoute(app: FastifyInstance, opts: { rules: RulesSource; proxy: ForwardDeps }): Promise<void> {
  const { rules, proxy } = opts;
  app.get('/v1/models', async (request, reply) => {
    const path = `/models${queryOf(request.url)}`;
    const tiers = rules.current.aliasTiers;
    if (tiers.size === 0) {
      await forward(request, reply, proxy, { method: 'GET', path, body: undefined, model: undefined, retry: NO_RETRY, firstTokenTimeoutMs: 0, tap: false });
      return;
    }
    const headers = buildUpstreamHeaders(request.headers, proxy.headerOptions, request.id);
    const upstream = await proxy.upstream.fetchWhole({ method: 'GET', path, headers, body: undefined }, MAX_MODEL_LIST_BYTES);
    const list = upstream.status === 200 ? parseList(upstream.body) : undefined;
    if (list === undefined) {
      // Not a list to extend: the upstream's answer as it is, the server key never echoed.
      const secret = proxy.headerOptions.apiKey;
      const text = upstream.body.toString('utf8');
      const contentType = upstream.headers['content-type'];
      return reply.code(upstream.status).type(typeof contentType === 'string' ? contentType : 'application/json').send(secret === undefined ? text : scrubSecret(text, secret));
    }
    for (const [name, route] of tiers) {
      list.data.push({ id: name, object: 'model', created: 0, owned_by: 'signalbox', name: `Signalbox tier ${name}`, description: `Routed by Signalbox to ${route.model}` });
    }
    return reply.code(200).type('application/json; charset=utf-8').send(JSON.stringify(list));
  });
}

function parseList(body: Buffer): { data: unknown[] } | undefined {
  try {
    const value: unknown = JSON.parse(body.toString('utf8'));
    if (value !== null && typeof value === 'object' && Array.isArray((value as { data?: unknown }).data)) return value as { data: unknown[] };
  } catch {
    // not JSON: relayed as it is
  }
  return undefined;
}
