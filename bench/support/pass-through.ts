/**
 * What the two floors (bench/floor.ts, bench/floor-fastify.ts) share: the upstream pool, header
 * forwarding and the byte relay, so that they differ only in the server in front.
 */
import type { IncomingHttpHeaders, ServerResponse } from 'node:http';
import { Pool, type Dispatcher } from 'undici';

const upstream = new URL(process.env.UPSTREAM ?? 'http://127.0.0.1:8081/api/v1');
const basePath = upstream.pathname.replace(/\/+$/, '');
export const pool = new Pool(upstream.origin, { connections: null, pipelining: 1 });
const HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'host', 'content-length', 'upgrade', 'te', 'trailer']);

/** The upstream path for a client's `/v1/...` URL. */
export function upstreamPath(url: string): string {
  return basePath + url.replace(/^\/v1/, '');
}

/** The client's headers, less the hop-by-hop ones and those the new message recomputes. */
export function forwardedHeaders(incoming: IncomingHttpHeaders): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(incoming)) if (!HOP.has(k) && typeof v === 'string') headers[k] = v;
  return headers;
}

/**
 * Writes the upstream's status and headers, then each chunk as it arrives, pausing on
 * backpressure. Not stream.pipeline: on Node 20 its every completion aborts an internal
 * AbortController, whose DOMException (with a captured stack) cost about half of the floor's CPU
 * per request; the floor must be the least a Node proxy can do.
 */
export function relayResponse(up: Dispatcher.ResponseData, res: ServerResponse): void {
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(up.headers)) if (!HOP.has(k) && v !== undefined) out[k] = v;
  res.writeHead(up.statusCode, out);
  up.body.on('data', (chunk: Buffer) => {
    if (!res.write(chunk)) up.body.pause();
  });
  res.on('drain', () => up.body.resume());
  up.body.on('end', () => res.end());
  up.body.on('error', () => res.destroy());
  res.on('close', () => {
    if (!res.writableFinished) up.body.destroy();
  });
}
