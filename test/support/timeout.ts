/** How long `withTimeout` waits by default: far above any healthy wait on a loaded 2-core machine. */
export const EVENT_WAIT_TIMEOUT_MS = 10_000;

/**
 * `promise`, or a rejection naming `what` after `timeoutMs`: a lost event fails its test with a
 * message instead of hanging CI until the suite-wide timeout. The timer is cleared either way, so
 * it keeps no test process alive.
 */
export async function withTimeout<T>(promise: Promise<T>, what: string, timeoutMs = EVENT_WAIT_TIMEOUT_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)), timeoutMs);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
