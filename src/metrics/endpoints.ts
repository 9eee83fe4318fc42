/**
 * The `endpoint` label of the request metrics: which `/v1` endpoint a response answered. The
 * same list is the table in docs/metrics.md (a test compares them). `responses` and `messages`
 * are routed like `chat` (issue 18), their sub-paths forwarded.
 */
export const ENDPOINTS = ['chat', 'responses', 'messages', 'explain', 'models', 'embeddings', 'other'] as const;

export type Endpoint = (typeof ENDPOINTS)[number];

/** Whole paths (without the query string). */
const BY_PATH: ReadonlyMap<string, Endpoint> = new Map<string, Endpoint>([
  ['/v1/chat/completions', 'chat'],
  ['/v1/routing/explain', 'explain'],
  ['/v1/models', 'models'],
  ['/v1/embeddings', 'embeddings'],
  ['/v1/responses', 'responses'],
  ['/v1/messages', 'messages'],
]);

/** First segments after `/v1/` whose sub-paths belong to the same endpoint (`/v1/models/{id}`, `/v1/responses/{id}`, `/v1/messages/count_tokens`). */
const BY_FIRST_SEGMENT: ReadonlyMap<string, Endpoint> = new Map<string, Endpoint>([
  ['models', 'models'],
  ['responses', 'responses'],
  ['messages', 'messages'],
]);

const V1 = '/v1';
const V1_SLASH = '/v1/';

/**
 * The endpoint of a request URL, or undefined outside `/v1` (probes, `/metrics`, unknown
 * top-level paths), which are not counted. Plain string work, no regex: it runs once per request.
 * Paths are taken as the client sent them; issue 12 normalises them before routing.
 */
export function endpointOf(url: string): Endpoint | undefined {
  const q = url.indexOf('?');
  const path = q === -1 ? url : url.slice(0, q);
  if (path === V1) return 'other';
  if (!path.startsWith(V1_SLASH)) return undefined;
  const whole = BY_PATH.get(path);
  if (whole !== undefined) return whole;
  const slash = path.indexOf('/', V1_SLASH.length);
  return slash === -1 ? 'other' : (BY_FIRST_SEGMENT.get(path.slice(V1_SLASH.length, slash)) ?? 'other');
}
