import { hash, randomUUID } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import type { Logger } from 'pino';
import type { SwitchyardMetrics } from '../../metrics/metrics.js';
import { NO_RULE } from '../../rules/decision.js';
import { lastUserText } from '../../rules/fields.js';
import { Exchange } from '../exchange.js';
import { writeLine } from '../logger.js';

declare module 'fastify' {
  interface FastifyRequest {
    exchange: Exchange;
  }
}

export interface ExchangePluginOptions {
  readonly metrics: SwitchyardMetrics | undefined;
  /** Put the last user message's text on the log line (otherwise only its hash). */
  readonly logPrompts: boolean;
}

/** A client's request id is reused only when it is short and plain: it ends up in logs and headers. */
const SAFE_REQUEST_ID = /^[A-Za-z0-9._:\-]{1,128}$/;

/** Fastify's `genReqId`: the client's `x-request-id` when it is safe, a fresh UUID otherwise. */
export function requestIdFrom(header: string | string[] | undefined): string {
  return typeof header === 'string' && SAFE_REQUEST_ID.test(header) ? header : randomUUID();
}

/** Probes are logged at debug: a kubelet polling every few seconds would drown the request log. */
const PROBE_PATHS = new Set(['/healthz', '/readyz', '/metrics']);

function pathOf(url: string): string {
  const q = url.indexOf('?');
  return q === -1 ? url : url.slice(0, q);
}

/**
 * Gives every request an Exchange and an `x-request-id` response header, aborts the upstream call
 * the moment the client goes away, and when the response closes writes the one log line of the
 * request and records its metrics.
 *
 * Why not `request.signal`: it listens to the IncomingMessage 'close' event, which Node emits as
 * soon as the request body has been read, long before the client leaves. The ServerResponse 'close'
 * event without `writableFinished` is the reliable "client went away" signal.
 */
async function exchangePlugin(app: FastifyInstance, options: ExchangePluginOptions): Promise<void> {
  app.decorateRequest('exchange', null as unknown as Exchange);

  app.addHook('onRequest', (request: FastifyRequest, reply: FastifyReply, done: () => void) => {
    const exchange = new Exchange();
    request.exchange = exchange;
    reply.header('x-request-id', request.id);
    const res = reply.raw;
    res.once('close', () => {
      if (!res.writableFinished && !exchange.endedByProxy) {
        exchange.clientClosed = true;
        exchange.upstreamAbort?.abort();
      }
      const status = exchange.clientClosed ? 499 : res.statusCode;
      logExchange(request, status, options.logPrompts);
      if (options.metrics && exchange.kind) recordMetrics(options.metrics, exchange, status);
    });
    done();
  });

  // Bodies Fastify sends itself (errors, probes); relayed bodies are counted by the relay.
  app.addHook('onSend', (request: FastifyRequest, _reply: FastifyReply, payload: unknown, done: (err: null, payload: unknown) => void) => {
    if (typeof payload === 'string') request.exchange.bytesOut = Buffer.byteLength(payload);
    else if (Buffer.isBuffer(payload)) request.exchange.bytesOut = payload.length;
    done(null, payload);
  });
}

function recordMetrics(metrics: SwitchyardMetrics, x: Exchange, status: number): void {
  const served = x.facts?.model;
  metrics.exchangeFinished({
    routed: x.kind === 'chat',
    rule: x.rule ?? NO_RULE,
    requestedModel: x.requestedModel,
    model: served ?? x.routedModel,
    routedModel: x.routedModel,
    servedModel: served,
    status,
    stream: x.stream,
    durationSeconds: x.elapsedMs() / 1000,
    ttftSeconds: x.ttftSeconds(),
    overheadSeconds: x.overheadSeconds(),
    usage: x.facts?.usage,
    streamErrorKind: x.streamErrorKind,
    clientClosed: x.clientClosed,
  });
}

function round3(n: number): number {
  return Math.round(n * 1000) / 1000;
}

function logExchange(request: FastifyRequest, status: number, logPrompts: boolean): void {
  const x = request.exchange;
  const path = pathOf(request.url);
  const log = request.log as unknown as Logger;
  const level = PROBE_PATHS.has(path) ? 'debug' : status >= 500 && status !== 499 ? 'warn' : 'info';
  // Build nothing (and hash no prompt) for a line the level drops.
  if (!log.isLevelEnabled(level)) return;
  const line: Record<string, unknown> = {
    method: request.method,
    path,
    status,
    duration_ms: round3(x.elapsedMs()),
    bytes_in: x.bytesIn,
    bytes_out: x.bytesOut,
  };
  if (x.requestedModel !== undefined) line.model = x.requestedModel;
  if (x.rule !== undefined) line.rule = x.rule;
  if (x.routedModel !== x.requestedModel) line.routed_model = x.routedModel;
  if (x.stream) line.stream = true;
  if (x.upstreamStatus !== undefined) line.upstream_status = x.upstreamStatus;
  if (x.upstreamAttempts > 0) {
    line.upstream_attempts = x.upstreamAttempts;
    line.overhead_ms = round3(x.overheadSeconds() * 1000);
  }
  const facts = x.facts;
  if (facts) {
    if (facts.model !== undefined) line.served_model = facts.model;
    if (facts.provider !== undefined) line.provider = facts.provider;
    if (facts.finishReason !== undefined) line.finish_reason = facts.finishReason;
    if (facts.usage) {
      line.prompt_tokens = facts.usage.prompt;
      line.completion_tokens = facts.usage.completion;
      if (facts.usage.reasoning > 0) line.reasoning_tokens = facts.usage.reasoning;
      if (facts.usage.cached > 0) line.cached_tokens = facts.usage.cached;
      if (facts.usage.cost !== undefined) line.cost_usd = facts.usage.cost;
    }
    const ttft = x.ttftSeconds();
    if (ttft !== undefined) line.ttft_ms = round3(ttft * 1000);
    if (facts.inbandError) line.upstream_error = facts.inbandError.code;
  }
  if (x.chatBody) {
    const prompt = lastUserText(x.chatBody);
    if (prompt !== undefined) {
      // A hash groups identical prompts (retries, loops) without writing personal data to logs.
      line.prompt_hash = hash('sha256', prompt, 'hex').slice(0, 16);
      if (logPrompts) line.prompt = prompt;
    }
  }
  if (x.clientClosed) line.client_closed = true;
  if (x.streamErrorKind) line.stream_error = x.streamErrorKind;
  if (x.error) {
    line.error_code = x.error.code;
    line.error = x.error.message;
  }
  writeLine(log, level, line, 'request');
}

export default fp(exchangePlugin, { name: 'switchyard-exchange', fastify: '5.x' });
