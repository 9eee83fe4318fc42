/**
 * The framework's floor: bench/floor.ts's pass-through as a Fastify route (body read whole by
 * Fastify's buffer parser, reply hijacked, the upstream answer written chunk by chunk). Not a
 * target of the issue: it splits Switchyard's cost over the floor into what Fastify itself costs
 * and what Switchyard adds on top (docs/benchmarks.md).
 *   PORT=... UPSTREAM=http://127.0.0.1:.../api/v1 node dist/bench/floor-fastify.js
 */
import Fastify from 'fastify';
import { Pool } from 'undici';

const upstream = new URL(process.env.UPSTREAM ?? 'http://127.0.0.1:8081/api/v1');
const basePath = upstream.pathname.replace(/\/+$/, '');
const pool = new Pool(upstream.origin, { connections: null, pipelining: 1 });
const HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'host', 'content-length', 'upgrade', 'te', 'trailer']);

const app = Fastify({ logger: false, keepAliveTimeout: 65_000 });
app.removeAllContentTypeParsers();
app.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));
app.post('/v1/*', async (request, reply) => {
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(request.headers)) if (!HOP.has(k) && typeof v === 'string') headers[k] = v;
  const up = await pool.request({ method: 'POST', path: basePath + request.url.replace(/^\/v1/, ''), headers, body: request.body as Buffer });
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(up.headers)) if (!HOP.has(k) && v !== undefined) out[k] = v;
  const res = reply.raw;
  reply.hijack();
  res.writeHead(up.statusCode, out);
  up.body.on('data', (chunk: Buffer) => {
    if (!res.write(chunk)) up.body.pause();
  });
  res.on('drain', () => up.body.resume());
  up.body.on('end', () => res.end());
  up.body.on('error', () => res.destroy());
});
const address = await app.listen({ port: Number(process.env.PORT ?? 8091), host: '127.0.0.1' });
process.stdout.write(`fastify floor listening on ${new URL(address).port}\n`);
process.on('SIGTERM', () => {
  void app.close().then(() => pool.close()).then(() => process.exit(0));
});
