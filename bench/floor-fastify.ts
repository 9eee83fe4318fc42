/**
 * The framework's floor: bench/floor.ts's pass-through as a Fastify route (body read whole by
 * Fastify's buffer parser, reply hijacked, the upstream answer written chunk by chunk). Not a
 * target of the issue: it splits Signalbox's cost over the floor into what Fastify itself costs
 * and what Signalbox adds on top (docs/benchmarks.md).
 *   PORT=... UPSTREAM=http://127.0.0.1:.../api/v1 node dist/bench/floor-fastify.js
 */
import Fastify from 'fastify';
import { forwardedHeaders, pool, relayResponse, upstreamPath } from './support/pass-through.js';

const app = Fastify({ logger: false, keepAliveTimeout: 65_000 });
app.removeAllContentTypeParsers();
app.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));
app.post('/v1/*', async (request, reply) => {
  const up = await pool.request({ method: 'POST', path: upstreamPath(request.url), headers: forwardedHeaders(request.headers), body: request.body as Buffer });
  reply.hijack();
  relayResponse(up, reply.raw);
});
const address = await app.listen({ port: Number(process.env.PORT ?? 8091), host: '127.0.0.1' });
process.stdout.write(`fastify floor listening on ${new URL(address).port}\n`);
process.on('SIGTERM', () => {
  void app.close().then(() => pool.close()).then(() => process.exit(0));
});
