import type { TestContext } from 'node:test';
import { startRedisServer, type RedisServer } from '../../bench/support/redis-server.js';
import { EVENT_WAIT_TIMEOUT_MS } from './timeout.js';

export type { RedisServer };

/**
 * A real redis-server (Debian's package) on a free loopback port, killed after the test
 * (bench/support/redis-server.ts starts it; bench:accounts uses the same).
 */
export async function startRedis(t: TestContext): Promise<RedisServer> {
  return startRedisServer(EVENT_WAIT_TIMEOUT_MS, (kill) => t.after(kill));
}
