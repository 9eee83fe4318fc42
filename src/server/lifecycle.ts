import type { FastifyReply } from 'fastify';
import type { SignalboxError } from '../errors.js';
import type { Exchange } from './exchange.js';
import type { Forwarding } from './forward.js';

export type LifecycleState = 'starting' | 'ready' | 'draining';

/**
 * Readiness and the set of exchanges in flight, for graceful shutdown:
 * readiness fails first, then in-flight exchanges get the grace period, then the rest are ended.
 */
export class Lifecycle {
  state: LifecycleState = 'starting';
  /** Upstream calls waiting on or streaming from the upstream (the in-flight gauge); each removed when it settles. */
  private readonly inflight = new Set<Forwarding>();
  /**
   * Every request received before draining began, from its arrival to its response's close, with
   * its reply: shutdown also waits for requests still uploading their body or still being written
   * to a slow client, which are not (or no longer) upstream (issue 12, defect 13). Holds at most
   * the requests in flight, each removed when its response closes.
   */
  private readonly open = new Map<Exchange, FastifyReply>();
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

  /** The upstream calls in flight, to look at (tests wait on a call's phase with it). */
  get calls(): ReadonlySet<Forwarding> {
    return this.inflight;
  }

  /** SSE responses being relayed now (the signalbox_active_streams gauge, read at scrape time). */
  get activeStreams(): number {
    let n = 0;
    for (const call of this.inflight) if (call.streaming) n++;
    return n;
  }

  add(call: Forwarding): void {
    this.inflight.add(call);
  }

  delete(call: Forwarding): void {
    if (this.inflight.delete(call)) this.wakeIfIdle();
  }

  /** A request has arrived (its body may still be on its way); untracked when its response closes. */
  track(exchange: Exchange, reply: FastifyReply): void {
    this.open.set(exchange, reply);
  }

  untrack(exchange: Exchange): void {
    if (this.open.delete(exchange)) this.wakeIfIdle();
  }

  private get idle(): boolean {
    return this.inflight.size === 0 && this.open.size === 0;
  }

  private wakeIfIdle(): void {
    if (!this.idle || this.idleWaiters.length === 0) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }

  /** Resolves when no request is in flight (nor still uploading or being written), or after `timeoutMs`; true when it went idle. */
  waitForIdle(timeoutMs: number): Promise<boolean> {
    if (this.idle) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      timer.unref();
      this.idleWaiters.push(() => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }

  /**
   * Ends every exchange still in flight: a relay with a final error, an upstream call with `error`
   * as its answer, a request still uploading its body with `error` at once (the error handler
   * closes its connection once the rest of the body is discarded). A response the proxy has
   * finished but the client has not read is left to the final cut.
   */
  terminateAll(error: SignalboxError): number {
    const calls = [...this.inflight];
    const remaining = new Set(this.open.keys());
    const upstreamBound = new Set<Exchange>();
    for (const call of calls) upstreamBound.add(call.exchange);
    for (const [exchange, reply] of this.open) {
      if (!upstreamBound.has(exchange) && !reply.sent && !reply.request.raw.complete) reply.send(error);
    }
    for (const exchange of upstreamBound) remaining.add(exchange);
    for (const call of calls) call.terminate(error);
    return remaining.size;
  }
}
