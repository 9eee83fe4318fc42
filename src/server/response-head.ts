import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import { sdkRetriesStatus } from '../upstream/retry.js';
import { buildDownstreamHeaders } from '../upstream/headers.js';

/** An unpaired UTF-16 surrogate (with the u flag, a paired one is one code point and does not match). */
const LONE_SURROGATE = /\p{Surrogate}/gu;

/** The longest response header value made from a client-chosen string. */
const MAX_HEADER_VALUE_CHARS = 200;
const HEADER_SAFE = /^[\x21-\x7e]{1,200}$/;

/** A response header value from a client-chosen string: visible ASCII only, at most 200 characters. */
export function headerSafe(value: string): string {
  if (HEADER_SAFE.test(value)) return value;
  // Cut first: only the first 200 characters can show, and a 15 MB model is not encoded whole.
  // encodeURIComponent throws URIError on an unpaired surrogate (a rule's model can hold one, and
  // the cut can split a pair), so those become U+FFFD first.
  const head = value.slice(0, MAX_HEADER_VALUE_CHARS).replace(LONE_SURROGATE, '\ufffd');
  return encodeURIComponent(head).slice(0, MAX_HEADER_VALUE_CHARS) || '-';
}

/** The proxy's own response headers: they describe the routing, whoever answered. */
export interface ProxyHeaderValues {
  readonly requestId: string;
  /** The deciding rule (x-signalbox-rule); undefined when the rules never saw the request. */
  readonly rule: string | undefined;
  /** The model of the last attempt of a routed request (x-signalbox-model). */
  readonly model: string | undefined;
  /** Upstream attempts made (x-signalbox-attempts); 0: none, no header. */
  readonly attempts: number;
  readonly overheadMs: number;
  /** A routed answer's feedback token (x-signalbox-feedback-token, src/experiments/feedback.ts); relayed answers only. */
  readonly feedbackToken?: string | undefined;
}

/** x-signalbox-* headers from their values (x-request-id is Fastify's, set on arrival, for its own answers). */
export function proxyHeaders(values: ProxyHeaderValues): Record<string, string> {
  const out: Record<string, string> = { 'x-signalbox-overhead-ms': values.overheadMs.toFixed(3) };
  if (values.rule !== undefined) out['x-signalbox-rule'] = values.rule;
  if (values.attempts > 0) out['x-signalbox-attempts'] = String(values.attempts);
  if (values.model !== undefined) out['x-signalbox-model'] = headerSafe(values.model);
  return out;
}

/** Headers that make every proxy and client treat an SSE response as a live stream. */
const SSE_HEADERS = { 'cache-control': 'no-cache', 'x-accel-buffering': 'no' } as const;

export interface RelayedHeadOptions {
  readonly sse: boolean;
  /** The body's length may change (a scrubbed error body): it goes out chunked. */
  readonly lengthMayChange: boolean;
  /** Replaced wherever an upstream header echoes it. */
  readonly secret: string | undefined;
}

/**
 * The head of a relayed response, built from values: the upstream's headers without hop-by-hop
 * and origin-bound ones, then the proxy's own, which win over an upstream header of the same name.
 */
export function relayedHead(status: number, upstream: IncomingHttpHeaders, options: RelayedHeadOptions, values: ProxyHeaderValues): OutgoingHttpHeaders {
  const out = buildDownstreamHeaders(upstream, { keepContentLength: !options.sse && !options.lengthMayChange, secret: options.secret });
  if (options.sse) Object.assign(out, SSE_HEADERS);
  out['x-request-id'] = values.requestId;
  Object.assign(out, proxyHeaders(values));
  if (values.feedbackToken !== undefined) out['x-signalbox-feedback-token'] = values.feedbackToken;
  // An upstream error the proxy already retried, or that no retry can fix: the SDK must not try
  // again (else 3 proxy attempts times 3 SDK calls reach OpenRouter; issue 11).
  if (status >= 400 && (values.attempts > 1 || !sdkRetriesStatus(status))) out['x-should-retry'] = 'false';
  return out;
}
