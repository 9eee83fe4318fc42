import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import { scrubSecret } from './scrub.js';

/**
 * Header hygiene in both directions.
 *
 * Hop-by-hop headers (RFC 9110 §7.6.1) describe one connection, not the message, so a proxy must
 * drop them and any header the `Connection` header names. `host` and `content-length` belong to
 * the new message and are recomputed by the HTTP client. Cookies never cross: Signalbox is not
 * the origin of either side's session.
 */
const HOP_BY_HOP = [
  'connection', 'keep-alive', 'proxy-connection', 'proxy-authenticate', 'proxy-authorization',
  'te', 'trailer', 'transfer-encoding', 'upgrade',
];

const DROPPED_UPSTREAM = new Set([
  ...HOP_BY_HOP,
  'host', 'content-length', 'cookie', 'authorization', 'accept-encoding',
  // Anthropic's SDKs send their key here: it is a credential like Authorization, never forwarded as
  // such (upstreamAuthorization turns a pass-through client's into the Bearer OpenRouter reads).
  'x-api-key',
  // The body has been read already; the upstream must not wait for a 100-continue handshake.
  'expect',
  // Internal addresses and hops are nobody's business at a third-party API (the x-forwarded-*
  // family is dropped by prefix, FORWARDING_PREFIX). The rest are the client-address headers of
  // common CDNs and balancers (Akamai, Cloudflare, Fastly, Azure, nginx, HAProxy, Apache).
  'forwarded', 'via', 'x-real-ip', 'true-client-ip', 'cf-connecting-ip', 'cf-connecting-ipv6', 'cf-ipcountry',
  'cf-ray', 'cf-visitor', 'cf-worker', 'x-client-ip', 'x-cluster-client-ip', 'x-original-forwarded-for',
  'x-originating-ip', 'x-remote-ip', 'x-remote-addr', 'x-host', 'x-original-host', 'x-original-url',
  'x-rewrite-url', 'x-proxyuser-ip', 'x-azure-clientip', 'x-azure-socketip', 'fastly-client-ip', 'client-ip',
  'x-envoy-external-address', 'x-envoy-internal',
  // Set from config when configured; see below.
  'http-referer', 'x-title', 'x-openrouter-title',
]);

/** `x-forwarded-for`, `-host`, `-proto`, `-port`, `-server`, `-prefix`, `-uri`, `-ssl`, `-scheme`, ... */
const FORWARDING_PREFIX = 'x-forwarded-';

/**
 * Response headers the proxy sets itself: an upstream copy must never replace or precede them
 * (a client correlates logs by x-request-id and trusts x-signalbox-* to describe the routing).
 */
const PROXY_OWNED_PREFIX = 'x-signalbox-';

const DROPPED_DOWNSTREAM = new Set([
  'x-request-id',
  ...HOP_BY_HOP,
  'set-cookie',
  // Node writes its own Date; Alt-Svc and HSTS describe the upstream's origin, not the proxy's.
  'date', 'alt-svc', 'strict-transport-security',
]);

function connectionListed(value: string | string[] | undefined): Set<string> | undefined {
  // Nearly every message says just one of these two, which name no header: skip the parse.
  if (value === undefined || value === 'keep-alive' || value === 'close') return undefined;
  const joined = Array.isArray(value) ? value.join(',') : value;
  const names = joined.split(',').map((s) => s.trim().toLowerCase()).filter((s) => s.length > 0);
  return names.length > 0 ? new Set(names) : undefined;
}

/**
 * A STRIP_HEADERS entry: a header name (an RFC 9110 §5.6.2 token without `*`), or a prefix of
 * one followed by `*`. A bare `*` is refused: it would strip content-type and every other header.
 */
const HEADER_PATTERN = /^[!#$%&'+.^_`|~0-9A-Za-z-]+\*?$/;

export function isHeaderPattern(pattern: string): boolean {
  return HEADER_PATTERN.test(pattern);
}

/**
 * A header value from config or rules, as RFC 9110 §5.5 field-value: visible characters, with
 * spaces and tabs only between them. Checked at load, because undici refuses a value with CR, LF
 * or NUL on every request (issue 12, defect 7). The obs-text the RFC tolerates (bytes 0x80-0xFF) is
 * refused too: a YAML string is Unicode, and undici would send "é" as one Latin-1 byte, not the
 * UTF-8 its author meant.
 */
const FIELD_VALUE = /^(?:[\x21-\x7e](?:[\x20-\x7e\t]*[\x21-\x7e])?)?$/;

export function isFieldValue(value: string): boolean {
  return FIELD_VALUE.test(value);
}

/** Why a value is not `isFieldValue`, for load errors that must not print it (it may be a secret). */
export const FIELD_VALUE_RULE = 'visible ASCII characters, with spaces or tabs only between them (RFC 9110 §5.5): no line break, control character or non-ASCII letter';

/**
 * The client headers that are never forwarded upstream (STRIP_HEADERS), compiled once at
 * startup: exact names in a set, prefixes in a short list. Node gives request header names in
 * lower case, so lower-casing the patterns here makes matching case-insensitive.
 */
export class HeaderNameMatcher {
  private readonly names: ReadonlySet<string>;
  private readonly prefixes: readonly string[];

  constructor(patterns: readonly string[]) {
    const lower = patterns.map((p) => p.toLowerCase());
    this.names = new Set(lower.filter((p) => !p.endsWith('*')));
    this.prefixes = lower.filter((p) => p.endsWith('*')).map((p) => p.slice(0, -1));
  }

  /** `name` in lower case, as Node's IncomingHttpHeaders has it. */
  matches(name: string): boolean {
    if (this.names.has(name)) return true;
    for (const prefix of this.prefixes) if (name.startsWith(prefix)) return true;
    return false;
  }
}

/** What the upstream headers take from config: built once at app start by `upstreamHeaderOptions`. */
export interface UpstreamHeaderOptions {
  /** Server-side key: when set, it is sent and the client's Authorization never is (also what the proxy scrubs). */
  readonly apiKey: string | undefined;
  /** `Bearer <apiKey>`, made once rather than per request; undefined without a server key. */
  readonly authorization: string | undefined;
  readonly httpReferer: string | undefined;
  readonly appTitle: string | undefined;
  /** Client headers removed before forwarding (the rules have read them already). */
  readonly strip?: HeaderNameMatcher | undefined;
}

export function upstreamHeaderOptions(config: Omit<UpstreamHeaderOptions, 'authorization'>): UpstreamHeaderOptions {
  return Object.freeze({ ...config, authorization: config.apiKey === undefined ? undefined : `Bearer ${config.apiKey}` });
}

/**
 * The Authorization an upstream call made for this client sends: the server key when one is
 * configured, else the client's own (pass-through: the caller pays), unless STRIP_HEADERS drops it.
 */
export function upstreamAuthorization(client: IncomingHttpHeaders, options: UpstreamHeaderOptions): string | undefined {
  if (options.authorization !== undefined) return options.authorization;
  if (options.strip?.matches('authorization')) return undefined;
  if (typeof client.authorization === 'string') return client.authorization;
  // Pass-through mode: an Anthropic client's key (`x-api-key`) is its OpenRouter key, which
  // OpenRouter reads as a Bearer token (its Messages API too). Only a valid header value.
  const apiKey = client['x-api-key'];
  return typeof apiKey === 'string' && apiKey !== '' && isFieldValue(apiKey) ? `Bearer ${apiKey}` : undefined;
}

/** Headers for the upstream request, from the client's request headers. */
export function buildUpstreamHeaders(client: IncomingHttpHeaders, options: UpstreamHeaderOptions, requestId: string): Record<string, string> {
  const listed = connectionListed(client.connection);
  const strip = options.strip;
  const out: Record<string, string> = {};
  for (const name in client) {
    if (DROPPED_UPSTREAM.has(name) || name.startsWith(FORWARDING_PREFIX) || listed?.has(name) || strip?.matches(name)) continue;
    const value = client[name];
    if (value === undefined) continue;
    out[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  // Identity, so that the response bytes can be relayed as they are and tapped by the proxy.
  out['accept-encoding'] = 'identity';
  out['x-request-id'] = requestId;

  const authorization = upstreamAuthorization(client, options);
  if (authorization !== undefined) out.authorization = authorization;

  const referer = options.httpReferer ?? fromClient(client, 'http-referer', strip);
  if (referer !== undefined) out['http-referer'] = referer;
  if (options.appTitle !== undefined) {
    out['x-title'] = options.appTitle;
    out['x-openrouter-title'] = options.appTitle;
  } else {
    const title = fromClient(client, 'x-title', strip);
    const orTitle = fromClient(client, 'x-openrouter-title', strip);
    if (title !== undefined) out['x-title'] = title;
    if (orTitle !== undefined) out['x-openrouter-title'] = orTitle;
  }
  return out;
}

/** A client header the proxy copies itself (not in the loop above), unless STRIP_HEADERS names it. */
function fromClient(client: IncomingHttpHeaders, name: string, strip: HeaderNameMatcher | undefined): string | undefined {
  const value = client[name];
  if (value === undefined || strip?.matches(name)) return undefined;
  return Array.isArray(value) ? value[0] : value;
}

/**
 * Headers for the client, from the upstream response headers. Everything useful (content-type,
 * x-generation-id, retry-after, rate-limit headers) passes; `keepContentLength: false` is for
 * responses whose length the proxy may change (SSE, which can get a final error event).
 */
export function buildDownstreamHeaders(
  upstream: Record<string, string | string[] | undefined>,
  options: { keepContentLength: boolean; secret?: string | undefined },
): OutgoingHttpHeaders {
  const listed = connectionListed(upstream.connection);
  const secret = options.secret;
  const out: OutgoingHttpHeaders = {};
  for (const name in upstream) {
    if (DROPPED_DOWNSTREAM.has(name) || name.startsWith(PROXY_OWNED_PREFIX) || listed?.has(name)) continue;
    if (name === 'content-length' && !options.keepContentLength) continue;
    const value = upstream[name];
    if (value === undefined) continue;
    // An upstream that echoes the server key (www-authenticate, a debug header) must not hand it to clients.
    out[name] = secret === undefined ? value : Array.isArray(value) ? value.map((v) => scrubSecret(v, secret)) : scrubSecret(value, secret);
  }
  return out;
}

