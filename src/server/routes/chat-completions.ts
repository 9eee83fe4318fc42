import type { FastifyInstance, FastifyRequest } from 'fastify';
import sjson from 'secure-json-parse';
import { InvalidJsonError, InvalidRequestError } from '../../errors.js';
import type { JsonObject, Router } from '../../rules/decision.js';
import { forward, type ProxyDeps } from '../proxy.js';

/** A chat body as parsed once: the value for the router, the bytes for a body nobody rewrote. */
export interface ParsedJsonBody {
  readonly value: unknown;
  readonly raw: Buffer;
}

/**
 * Parses JSON once, rejecting `__proto__` and `constructor.prototype` keys (prototype poisoning
 * of whatever later merges the body, https://github.com/fastify/secure-json-parse).
 */
export function parseJsonBody(request: FastifyRequest, raw: Buffer, done: (err: Error | null, body?: ParsedJsonBody) => void): void {
  request.exchange.bytesIn = raw.length;
  let value: unknown;
  try {
    value = sjson.parse(raw.toString('utf8'), undefined, { protoAction: 'error', constructorAction: 'error' });
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    if (/prototype/i.test(message)) {
      done(new InvalidRequestError('Request body contains a forbidden key (__proto__ or constructor.prototype)', 'forbidden_json_key'));
    } else {
      done(new InvalidJsonError(message));
    }
    return;
  }
  done(null, { value, raw });
}

function isJsonObject(value: unknown): value is JsonObject {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function queryOf(url: string): string {
  const q = url.indexOf('?');
  return q === -1 ? '' : url.slice(q);
}

/** POST /v1/chat/completions: parse once, route, forward, relay. */
export async function chatCompletionsRoutes(app: FastifyInstance, opts: { router: Router; proxy: ProxyDeps }): Promise<void> {
  const { router, proxy } = opts;
  // Only JSON is a chat request: any other content type is a 415 (Fastify's answer when no parser matches).
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, parseJsonBody);

  app.post('/v1/chat/completions', async (request, reply) => {
    const parsed = request.body as ParsedJsonBody | undefined;
    if (parsed === undefined || !isJsonObject(parsed.value)) {
      throw new InvalidRequestError('The request body must be a JSON object', 'invalid_body');
    }
    const body = parsed.value;
    const exchange = request.exchange;
    exchange.requestedModel = typeof body.model === 'string' ? body.model : undefined;
    exchange.stream = body.stream === true;

    const decision = router.decide({ headers: request.headers, body, requestedModel: exchange.requestedModel });
    exchange.rule = decision.rule;
    exchange.routedModel = decision.model;

    let upstreamBody: Buffer | string = parsed.raw;
    let extraHeaders = decision.upstreamHeaders;
    if (decision.bodyChanged) {
      upstreamBody = JSON.stringify(decision.body);
      extraHeaders = { ...extraHeaders, 'content-type': 'application/json' };
    }
    await forward(request, reply, proxy, {
      method: 'POST',
      path: `/chat/completions${queryOf(request.url)}`,
      body: upstreamBody,
      extraHeaders,
    });
  });
}
