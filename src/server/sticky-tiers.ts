import type { StickyTierReader } from '../rules/tier-from.js';

/**
 * Most conversations whose tier is kept (`tier_from.stick_by`): every client picks its session
 * ids, so the map is bounded. An entry is a key of at most about 200 characters (a long id is
 * digested) and a tier name: 100,000 of them take some 30 MB, and cover 100,000 conversations
 * active within one TTL; past it the least recently used conversation is forgotten (its next
 * turn is classified again).
 */
export const STICKY_TIERS_MAX_ENTRIES = 100_000;
/** Expired entries dropped from the old end per store, so that a burst of expiries costs no one request a long sweep. */
const EXPIRED_DROPPED_PER_SET = 16;

interface Entry {
  readonly tier: string;
  readonly ttlMs: number;
  expiresAt: number;
}

/**
 * The tiers conversations keep, in process memory (the shared store once one exists). A Map in
 * least-recently-used order: a hit moves its entry to the end and renews its TTL, so an active
 * conversation keeps its tier while an idle one expires. No timer: expired entries are dropped
 * when read, and from the old end when a tier is stored.
 */
export class StickyTiers implements StickyTierReader {
  private readonly entries = new Map<string, Entry>();
  private readonly maxEntries: number;
  private readonly now: () => number;

  constructor(options: { readonly maxEntries?: number; readonly now?: () => number } = {}) {
    this.maxEntries = options.maxEntries ?? STICKY_TIERS_MAX_ENTRIES;
    this.now = options.now ?? Date.now;
  }

  get size(): number {
    return this.entries.size;
  }

  get(key: string): string | undefined {
    const entry = this.entries.get(key);
    if (entry === undefined) return undefined;
    const now = this.now();
    this.entries.delete(key);
    if (entry.expiresAt <= now) return undefined;
    entry.expiresAt = now + entry.ttlMs;
    this.entries.set(key, entry);
    return entry.tier;
  }

  set(key: string, tier: string, ttlMs: number): void {
    const now = this.now();
    this.entries.delete(key);
    let dropped = 0;
    for (const [oldKey, old] of this.entries) {
      if (dropped >= EXPIRED_DROPPED_PER_SET || old.expiresAt > now) break;
      this.entries.delete(oldKey);
      dropped++;
    }
    if (this.entries.size >= this.maxEntries) {
      const oldest = this.entries.keys().next();
      if (!oldest.done) this.entries.delete(oldest.value);
    }
    this.entries.set(key, { tier, ttlMs, expiresAt: now + ttlMs });
  }
}
