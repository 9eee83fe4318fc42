/**
 * The floor: the least any Node proxy can do. A bare node:http server and one undici Pool,
 * forwarding method, path, headers and body bytes and piping the answer back, nothing else
 * (no parsing, routing, metrics or logs). Run as a child process by the benchmarks:
 *   PORT=... UPSTREAM=http://127.0.0.1:.../api/v1 node dist/bench/floor.js
 */
import { createServer, type ServerResponse } from 'node:http';
import { Pool } from 'undici';

const upstream = new URL(process.env.UPSTREAM ?? 'http://127.0.0.1:8081/api/v1');
const basePath = upstream.pathname.replace(/\/+$/, '');
const pool = new Pool(upstream.origin, { connections: null, pipelining: 1 });
const HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'host', 'content-length', 'upgrade', 'te', 'trailer']);

const server = createServer((req, res) => {
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(req.headers)) if (!HOP.has(k) && typeof v === 'string') headers[k] = v;
  // The body is read whole and sent with a length, as any proxy that looks at a request must;
  // streaming it on would make the upstream request chunked, slower than what it is the floor of.
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => forward(req.method ?? 'GET', req.url ?? '/', headers, chunks.length ? Buffer.concat(chunks) : null, res));
});

function forward(method: string, url: string, headers: Record<string, string>, body: Buffer | null, res: ServerResponse): void {
  pool
    .request({ method: method as 'POST', path: basePath + url.replace(/^\/v1/, ''), headers, body })
    .then((up) => {
      const out: Record<string, string | string[]> = {};
      for (const [k, v] of Object.entries(up.headers)) if (!HOP.has(k) && v !== undefined) out[k] = v;
      res.writeHead(up.statusCode, out);
      // Each chunk is written as it arrives, pausing on backpressure. Not stream.pipeline: on
      // Node 20 its every completion aborts an internal AbortController, whose DOMException
      // (with a captured stack) costs about a tenth of a request; the floor must be the least.
      up.body.on('data', (chunk: Buffer) => {
        if (!res.write(chunk)) up.body.pause();
      });
      res.on('drain', () => up.body.resume());
      up.body.on('end', () => res.end());
      up.body.on('error', () => res.destroy());
      res.on('close', () => {
        if (!res.writableFinished) up.body.destroy();
      });
    })
    .catch(() => {
      if (!res.headersSent) res.writeHead(502);
      res.end();
    });
}
server.keepAliveTimeout = 65_000;
server.listen(Number(process.env.PORT ?? 8090), '127.0.0.1', () => {
  process.stdout.write(`floor listening on ${(server.address() as { port: number }).port}\n`);
});
process.on('SIGTERM', () => {
  server.close();
  void pool.close().then(() => process.exit(0));
  server.closeAllConnections();
});
