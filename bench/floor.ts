/**
 * The floor: the least any Node proxy can do. A bare node:http server and one undici Pool,
 * forwarding method, path, headers and body bytes and piping the answer back, nothing else
 * (no parsing, routing, metrics or logs). Run as a child process by the benchmarks:
 *   PORT=... UPSTREAM=http://127.0.0.1:.../api/v1 node dist/bench/floor.js
 */
import { createServer } from 'node:http';
import { pipeline } from 'node:stream/promises';
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

function forward(method: string, url: string, headers: Record<string, string>, body: Buffer | null, res: import('node:http').ServerResponse): void {
  pool
    .request({ method: method as 'POST', path: basePath + url.replace(/^\/v1/, ''), headers, body })
    .then(async (up) => {
      const out: Record<string, string | string[]> = {};
      for (const [k, v] of Object.entries(up.headers)) if (!HOP.has(k) && v !== undefined) out[k] = v;
      res.writeHead(up.statusCode, out);
      await pipeline(up.body, res);
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
