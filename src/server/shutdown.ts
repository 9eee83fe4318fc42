import type { FastifyInstance } from 'fastify';
import { ShuttingDownError } from '../errors.js';
import type { Lifecycle } from './lifecycle.js';

export interface ShutdownResult {
  /** Exchanges that did not finish within the grace period and were ended by the proxy. */
  readonly terminated: number;
}

/**
 * Graceful shutdown: readiness fails and new requests get 503 with `Connection: close` at once;
 * the server stops accepting connections; in-flight exchanges get `graceMs` to finish untouched;
 * those still running are then ended (streams with a final SSE error event) and the app closes.
 */
export async function gracefulShutdown(app: FastifyInstance, lifecycle: Lifecycle, graceMs: number): Promise<ShutdownResult> {
  lifecycle.startDraining();
  const closed = app.close();
  const idle = await lifecycle.waitForIdle(graceMs);
  const terminated = idle ? 0 : lifecycle.terminateAll(new ShuttingDownError());
  if (terminated > 0) app.log.warn({ terminated, grace_ms: graceMs }, 'shutdown grace period elapsed; ended the exchanges still in flight');
  await closed;
  return { terminated };
}
