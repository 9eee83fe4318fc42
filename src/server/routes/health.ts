import type { FastifyInstance } from 'fastify';
import type { Lifecycle } from '../lifecycle.js';

/** Liveness (the process answers) and readiness (it routes traffic; 503 while starting or draining). */
export async function healthRoutes(app: FastifyInstance, opts: { lifecycle: Lifecycle }): Promise<void> {
  const { lifecycle } = opts;
  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_request, reply) => {
    if (!lifecycle.ready) reply.code(503);
    return { status: lifecycle.state };
  });
}
