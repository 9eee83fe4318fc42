/**
 * A bounded least-recently-used map of answers, with the misses in flight: a key asked again while
 * its first lookup is still running waits for that lookup instead of paying for another (the LLM's
 * and the embedding's per-request caches).
 */
export class AnswerCache<V> {
  private readonly entries = new Map<string, V>();
  private readonly inflight = new Map<string, Promise<V>>();

  /** `capacity` answers at most (0: nothing is kept; identical concurrent misses still share a call). */
  constructor(private readonly capacity: number) {}

  get size(): number {
    return this.entries.size;
  }

  /** The cached answer, made the most recent; undefined on a miss. */
  get(key: string): V | undefined {
    const value = this.entries.get(key);
    if (value === undefined) return undefined;
    // A Map iterates in insertion order: re-inserting makes it the newest, the first key the oldest.
    this.entries.delete(key);
    this.entries.set(key, value);
    return value;
  }

  /** The lookup already running for `key`, if any. */
  pending(key: string): Promise<V> | undefined {
    return this.inflight.get(key);
  }

  /**
   * Runs `lookup` for `key` as the one call in flight for it; its value is kept when `keep` says so
   * (a failure is shared with the callers waiting on it, not kept). `lookup` must not reject.
   */
  run(key: string, lookup: () => Promise<V>, keep: (value: V) => boolean): Promise<V> {
    // Out of the in-flight map however it ends: a lookup that broke its promise and rejected must
    // not leave every later asker of the key waiting on it.
    const call = lookup().then((value) => {
      if (keep(value)) this.set(key, value);
      return value;
    }).finally(() => this.inflight.delete(key));
    this.inflight.set(key, call);
    return call;
  }

  /**
   * The kept answer for `key`, else the call in flight for it, else `call`'s (run as above);
   * `shared` when this caller made no call of its own.
   */
  async answer(key: string, call: () => Promise<V>, keep: (value: V) => boolean): Promise<{ readonly value: V; readonly shared: boolean }> {
    const kept = this.get(key);
    if (kept !== undefined) return { value: kept, shared: true };
    const pending = this.pending(key);
    return { value: await (pending ?? this.run(key, call, keep)), shared: pending !== undefined };
  }

  private set(key: string, value: V): void {
    if (this.capacity === 0) return;
    this.entries.delete(key);
    if (this.entries.size >= this.capacity) this.entries.delete(this.entries.keys().next().value!);
    this.entries.set(key, value);
  }
}
