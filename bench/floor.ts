/**
 * The floor: the least any Node proxy can do. A bare node:http server and one undici Pool,
 * forwarding method, path, headers and body bytes and relaying the answer, nothing else
 * (no parsing, routing, metrics or logs). Run as a child process by the benchmarks:
 *   PORT=... UPSTREAM=http://127.0.0.1:.../api/v1 node dist/bench/floor.js
 */
import { createServer } from 'node:http';
import { forwardedHeaders, pool, relayResponse, upstreamPath } from './support/pass-through.js';

const server = createServer((req, res) => {
  const headers = forwardedHeaders(req.headers);
  // The body is read whole and sent with a length, as any proxy that looks at a request must;
  // streaming it on would make the upstream request chunked, slower than what it is the floor of.
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    pool
      .request({ method: (req.method ?? 'GET') as 'POST', path: upstreamPath(req.url ?? '/'), headers, body: chunks.length ? Buffer.concat(chunks) : null })
      .then((up) => relayResponse(up, res))
      .catch(() => {
        if (!res.headersSent) res.writeHead(502);
        res.end();
      });
  });
});
server.keepAliveTimeout = 65_000;
server.listen(Number(process.env.PORT ?? 8090), '127.0.0.1', () => {
  process.stdout.write(`floor listening on ${(server.address() as { port: number }).port}\n`);
});
process.on('SIGTERM', () => {
  server.close();
  void pool.close().then(() => process.exit(0));
  server.closeAllConnections();
});
