import { withTimeout as within } from '../../bench/support/timeout.js';

/** How long `withTimeout` waits by default: far above any healthy wait on a loaded 2-core machine. */
export const EVENT_WAIT_TIMEOUT_MS = 10_000;

/**
 * `promise`, or a rejection naming `what` after `timeoutMs`: a lost event fails its test with a
 * message instead of hanging CI until the suite-wide timeout (bench/support/timeout.ts).
 */
export async function withTimeout<T>(promise: Promise<T>, what: string, timeoutMs = EVENT_WAIT_TIMEOUT_MS): Promise<T> {
  return within(promise, what, timeoutMs);
}
