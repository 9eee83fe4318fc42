import type { FastifyInstance } from 'fastify';
import { ShuttingDownError } from '../errors.js';
import type { Lifecycle } from './lifecycle.js';

export interface ShutdownResult {
  /** Exchanges that did not finish within the grace period and were ended by the proxy. */
  readonly terminated: number;
}

/**
 * How often idle keep-alive connections are closed while draining. Node's `server.close()`
 * closes the connections idle at that moment only; a client that keeps its connection after its
 * stream finished (fetch, the OpenAI SDKs) would otherwise hold the process until the keep-alive
 * timeout, past Kubernetes' grace period.
 */
const IDLE_SWEEP_MS = 50;
/** After the grace period and the final error events, how long writes may take to flush before every socket is cut. */
const FINAL_FLUSH_MS = 2000;

/**
 * Graceful shutdown: readiness fails and new requests get 503 with `Connection: close` at once;
 * the server stops accepting connections; in-flight exchanges get `graceMs` to finish untouched;
 * those still running are then ended (streams with a final SSE error event) and the app closes.
 */
export async function gracefulShutdown(app: FastifyInstance, lifecycle: Lifecycle, graceMs: number): Promise<ShutdownResult> {
  lifecycle.startDraining();
  const closed = app.close();
  const sweep = setInterval(() => app.server.closeIdleConnections(), IDLE_SWEEP_MS);
  sweep.unref();
  try {
    const idle = await lifecycle.waitForIdle(graceMs);
    const terminated = idle ? 0 : lifecycle.terminateAll(new ShuttingDownError());
    if (terminated > 0) app.log.warn({ terminated, grace_ms: graceMs }, 'shutdown grace period elapsed; ended the exchanges still in flight');
    let cut: NodeJS.Timeout | undefined;
    await Promise.race([
      closed,
      new Promise<void>((resolve) => {
        cut = setTimeout(() => {
          app.server.closeAllConnections();
          resolve();
        }, FINAL_FLUSH_MS);
        cut.unref();
      }),
    ]);
    clearTimeout(cut);
    await closed;
    return { terminated };
  } finally {
    clearInterval(sweep);
  }
}
