import type { LimitStore, SpendEntry } from '../../src/accounts/limit-store.js';

/**
 * A LimitStore for the admin API's tests: `spend` lists fixed counters (those under the prefix
 * asked for), `resetSpend` records its calls, `failing` makes both reject as an unreachable
 * Redis would. Whatever a request's path would call throws: the admin API must not.
 */
export class SpendListStore implements LimitStore {
  readonly resets: string[][] = [];
  readonly prefixes: string[] = [];
  failing = false;

  constructor(readonly entries: readonly SpendEntry[]) {}

  take(): never {
    throw new Error('take: not in the admin API');
  }

  admit(): never {
    throw new Error('admit: not in the admin API');
  }

  adjust(): never {
    throw new Error('adjust: not in the admin API');
  }

  settle(): never {
    throw new Error('settle: not in the admin API');
  }

  async spend(prefix: string): Promise<SpendEntry[]> {
    this.prefixes.push(prefix);
    if (this.failing) throw new Error('connect ECONNREFUSED 127.0.0.1:6379');
    return this.entries.filter((e) => e.key.startsWith(prefix));
  }

  async resetSpend(keys: readonly string[]): Promise<void> {
    if (this.failing) throw new Error('connect ECONNREFUSED 127.0.0.1:6379');
    this.resets.push([...keys]);
  }

  async close(): Promise<void> {}
}

/** USD as the stores' nano-USD. */
export const nano = (usd: number): number => Math.round(usd * 1e9);

/** 2026-11-30 12:00 UTC: the day and month the fixtures' counters are current in. */
export const ADMIN_NOW = Date.UTC(2026, 10, 30, 12);

/** Counters of two keys (alice in team research), their end users and models, on two days and two months. */
export const SPEND_FIXTURE: readonly SpendEntry[] = [
  { key: 'sp:key:alice:d:2026-11-30', spentNano: nano(1.5), reservedNano: nano(0.25) },
  { key: 'sp:key:alice:d:2026-11-29', spentNano: nano(2), reservedNano: 0 },
  { key: 'sp:key:alice:m:2026-11', spentNano: nano(3.5), reservedNano: nano(0.25) },
  { key: 'sp:key:alice:m:2026-10', spentNano: nano(40), reservedNano: 0 },
  { key: 'sp:key:bob:d:2026-11-30', spentNano: nano(3), reservedNano: 0 },
  { key: 'sp:key:bob:m:2026-11', spentNano: nano(3), reservedNano: 0 },
  { key: 'sp:key:alice2:d:2026-11-30', spentNano: nano(0.5), reservedNano: 0 },
  { key: 'sp:team:research:d:2026-11-30', spentNano: nano(1.5), reservedNano: nano(0.25) },
  { key: 'sp:team:research:m:2026-11', spentNano: nano(3.5), reservedNano: nano(0.25) },
  { key: 'sp:user:alice:u:1:d:2026-11-30', spentNano: nano(1), reservedNano: 0 },
  { key: 'sp:user:alice:u2:d:2026-11-30', spentNano: nano(0.5), reservedNano: nano(0.25) },
  { key: 'sp:model:openai/gpt-4o:d:2026-11-30', spentNano: nano(4), reservedNano: 0 },
  { key: 'sp:model:anthropic/claude:d:2026-11-30', spentNano: nano(1), reservedNano: nano(0.25) },
  { key: 'sp:model:openai/gpt-4o:m:2026-11', spentNano: nano(6.5), reservedNano: 0 },
];
