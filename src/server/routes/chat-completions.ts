import type { FastifyInstance, FastifyRequest } from 'fastify';
import sjson from 'secure-json-parse';
import { InvalidJsonError, InvalidRequestError, RuleRejectedError } from '../../errors.js';
import type { JsonObject, RequestContext } from '../../rules/decision.js';
import type { RuleSet } from '../../rules/ruleset.js';
import { forward, type ProxyDeps } from '../proxy.js';

/** Where the rules in force are read from, once per request (the hot-reload store, or a fixed set). */
export interface RulesSource {
  readonly current: RuleSet;
}

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

/** A response header value from a client-chosen string: visible ASCII only, at most 200 characters. */
function headerSafe(value: string): string {
  const safe = /^[\x21-\x7e]{1,200}$/.test(value) ? value : encodeURIComponent(value).slice(0, 200);
  return safe || '-';
}

function chatContext(request: FastifyRequest): RequestContext {
  const parsed = request.body as ParsedJsonBody | undefined;
  if (parsed === undefined || !isJsonObject(parsed.value)) {
    throw new InvalidRequestError('The request body must be a JSON object', 'invalid_body');
  }
  const body = parsed.value;
  return { headers: request.headers, body, requestedModel: typeof body.model === 'string' ? body.model : undefined };
}

/**
 * POST /v1/chat/completions: parse once, route, forward, relay.
 * POST /v1/routing/explain: the same input, the routing decision and its reasons, nothing sent upstream.
 */
export async function chatCompletionsRoutes(app: FastifyInstance, opts: { rules: RulesSource; proxy: ProxyDeps }): Promise<void> {
  const { rules, proxy } = opts;
  // Only JSON is a chat request: any other content type is a 415 (Fastify's answer when no parser matches).
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, parseJsonBody);

  app.post('/v1/chat/completions', async (request, reply) => {
    const context = chatContext(request);
    const exchange = request.exchange;
    exchange.kind = 'chat';
    exchange.chatBody = context.body;
    exchange.requestedModel = context.requestedModel;
    exchange.stream = context.body.stream === true;

    // One RuleSet for the whole request, even if the rules reload meanwhile.
    const decision = rules.current.decide(context);
    exchange.rule = decision.rule;
    exchange.routedModel = decision.model;
    reply.header('x-switchyard-rule', decision.rule);
    if (decision.reject) throw new RuleRejectedError(decision.reject.status, decision.reject.message);
    if (decision.model !== undefined) reply.header('x-switchyard-model', headerSafe(decision.model));

    let upstreamBody: Buffer | string = (request.body as ParsedJsonBody).raw;
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
      tap: true,
    });
  });

  app.post('/v1/routing/explain', async (request) => {
    const context = chatContext(request);
    return rules.current.explain(context);
  });
}
