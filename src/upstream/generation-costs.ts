import type { UpstreamClient } from './client.js';

/**
 * Reconciles the cost of a response that reported none it could be billed by (a stream cut before
 * its usage chunk, an answer without usage) from OpenRouter's `GET /generation?id=` (issue 14,
 * item 5). OpenRouter stores a generation's stats a few seconds after it ends and answers 404
 * until then, so each lookup is retried on a schedule; the queue is bounded, and a lookup that
 * never succeeds is given up. Off the request path: nothing here delays or fails a request.
 */

/** Lookups waiting or in flight; past it the oldest waiting one is dropped (and counted). */
export const MAX_PENDING_LOOKUPS = 1000;
/** Delays before each attempt, in ms from the previous one: the stats appear a few seconds late. */
export const LOOKUP_DELAYS_MS: readonly number[] = [2_000, 5_000, 15_000, 40_000];
/** A generation's stats are a few hundred bytes; a larger answer is not read. */
const MAX_ANSWER_BYTES = 64 * 1024;

export interface GenerationLookup {
  /** OpenRouter's generation id (the response's `id`). */
  readonly id: string;
  readonly rule: string;
  /** The split arm of the request (the cost metric's `variant`), when its rule splits. */
  readonly variant?: string | undefined;
  /** The model label the metrics use for this request. */
  readonly model: string | undefined;
  readonly requestId: string;
  /** The caller's spend, settled provisionally, to correct with this cost (USD) once it is known. */
  readonly reconcileSpend?: ((usd: number) => void) | undefined;
}

export interface ReconciledCost {
  readonly lookup: GenerationLookup;
  /** `total_cost`, USD. */
  readonly usd: number;
}

/** The timers of the reconciler, injected by tests. */
export interface LookupTimers {
  set(fn: () => void, ms: number): { unref?(): void };
  clear(handle: unknown): void;
}

const REAL_TIMERS: LookupTimers = {
  set: (fn, ms) => setTimeout(fn, ms),
  clear: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

interface Pending {
  readonly lookup: GenerationLookup;
  attempt: number;
  timer: unknown;
}

export class GenerationCosts {
  private readonly pending = new Map<string, Pending>();
  private closed = false;
  /** Lookups dropped because the queue was full, and given up after every attempt. */
  dropped = 0;
  givenUp = 0;

  constructor(
    private readonly upstream: Pick<UpstreamClient, 'fetchWhole'>,
    /** The Authorization the lookups send: the server key (a client's own key is never kept). */
    private readonly authorization: string,
    private readonly onReconciled: (cost: ReconciledCost) => void,
    private readonly timers: LookupTimers = REAL_TIMERS,
  ) {}

  get size(): number {
    return this.pending.size;
  }

  /** Looks the generation's cost up later; a generation already waiting is not looked up twice. */
  add(lookup: GenerationLookup): void {
    if (this.closed || this.pending.has(lookup.id)) return;
    if (this.pending.size >= MAX_PENDING_LOOKUPS) {
      const [oldestId, oldest] = this.pending.entries().next().value!;
      this.timers.clear(oldest.timer);
      this.pending.delete(oldestId);
      this.dropped++;
    }
    const entry: Pending = { lookup, attempt: 0, timer: undefined };
    this.pending.set(lookup.id, entry);
    this.schedule(entry);
  }

  close(): void {
    this.closed = true;
    for (const entry of this.pending.values()) this.timers.clear(entry.timer);
    this.pending.clear();
  }

  private schedule(entry: Pending): void {
    const delay = LOOKUP_DELAYS_MS[entry.attempt];
    if (delay === undefined) {
      this.pending.delete(entry.lookup.id);
      this.givenUp++;
      return;
    }
    const timer = this.timers.set(() => void this.attempt(entry), delay);
    timer.unref?.();
    entry.timer = timer;
  }

  private async attempt(entry: Pending): Promise<void> {
    if (this.closed || this.pending.get(entry.lookup.id) !== entry) return;
    entry.attempt++;
    let usd: number | undefined;
    try {
      const answer = await this.upstream.fetchWhole({
        method: 'GET',
        path: `/generation?id=${encodeURIComponent(entry.lookup.id)}`,
        headers: { authorization: this.authorization, 'accept-encoding': 'identity' },
        body: undefined,
      }, MAX_ANSWER_BYTES);
      if (answer.status === 200) usd = totalCost(answer.body);
    } catch {
      // unreachable, timed out: tried again on schedule
    }
    if (this.closed || this.pending.get(entry.lookup.id) !== entry) return;
    if (usd === undefined) {
      this.schedule(entry);
      return;
    }
    this.pending.delete(entry.lookup.id);
    try {
      this.onReconciled({ lookup: entry.lookup, usd });
    } catch {
      // the caller's bug costs this one cost, never the process (a timer's exception would kill it)
    }
  }
}

/** `data.total_cost` of a generation's stats: a finite, non-negative number, else none. */
function totalCost(body: Buffer): number | undefined {
  try {
    const value = (JSON.parse(body.toString('utf8')) as { data?: { total_cost?: unknown } } | null)?.data?.total_cost;
    return typeof value === 'number' && Number.isFinite(value) && value >= 0 ? value : undefined;
  } catch {
    return undefined;
  }
}
