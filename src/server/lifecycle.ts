import type { SignalboxError } from '../errors.js';
import type { Exchange } from './exchange.js';

export type LifecycleState = 'starting' | 'ready' | 'draining';

/**
 * Readiness and the set of exchanges in flight, for graceful shutdown:
 * readiness fails first, then in-flight exchanges get the grace period, then the rest are ended.
 */
export class Lifecycle {
  state: LifecycleState = 'starting';
  private readonly inflight = new Set<Exchange>();
  private idleWaiters: (() => void)[] = [];

  get ready(): boolean {
    return this.state === 'ready';
  }

  get draining(): boolean {
    return this.state === 'draining';
  }

  get inflightCount(): number {
    return this.inflight.size;
  }

  markReady(): void {
    if (this.state === 'starting') this.state = 'ready';
  }

  startDraining(): void {
    this.state = 'draining';
  }

  add(exchange: Exchange): void {
    this.inflight.add(exchange);
  }

  delete(exchange: Exchange): void {
    if (this.inflight.delete(exchange) && this.inflight.size === 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
    }
  }

  /** Resolves when nothing is in flight, or after `timeoutMs`; true when it went idle. */
  waitForIdle(timeoutMs: number): Promise<boolean> {
    if (this.inflight.size === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      timer.unref();
      this.idleWaiters.push(() => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }

  /** Ends every exchange still in flight. */
  terminateAll(error: SignalboxError): number {
    const remaining = [...this.inflight];
    for (const exchange of remaining) exchange.terminate(error);
    return remaining.length;
  }
}
