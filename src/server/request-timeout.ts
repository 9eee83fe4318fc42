import type { ServerOptions } from 'node:http';

/** Node checks its connections for an expired request at least this often (its own default). */
const MAX_CHECK_INTERVAL_MS = 30_000;

/**
 * The Node server options that bound the time a request (head and body) may take to arrive
 * (issue 12, defect 12: with Fastify's `requestTimeout: 0` a client trickling its body held its
 * connection for minutes). Node checks open connections every `connectionsCheckingInterval`
 * (lib/_http_server.js, checkConnections), 30 s by default, which would let a 1 s timeout last
 * 31 s: a quarter of the timeout keeps the overshoot within 25 %. The head has its own Node
 * default of 60 s (`headersTimeout`), which may not exceed the whole request's.
 */
export function requestTimeoutOptions(requestTimeoutMs: number): ServerOptions {
  // requestTimeout itself is Fastify's option (it sets server.requestTimeout after creating the server).
  return {
    headersTimeout: Math.min(60_000, requestTimeoutMs),
    connectionsCheckingInterval: Math.max(1, Math.min(MAX_CHECK_INTERVAL_MS, Math.floor(requestTimeoutMs / 4))),
  };
}
