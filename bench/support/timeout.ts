/**
 * `promise`, or a rejection naming `what` after `timeoutMs`: a lost event fails with a message
 * instead of hanging. The timer is cleared either way, so it keeps no process alive. Shared by
 * the benchmarks and the tests (test/support/timeout.ts gives it a default).
 */
export async function withTimeout<T>(promise: Promise<T>, what: string, timeoutMs: number): Promise<T> {
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
