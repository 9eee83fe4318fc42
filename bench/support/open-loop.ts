import { Pool } from 'undici';

export interface OpenLoopResult {
  readonly rate: number;
  readonly sent: number;
  readonly errors: number;
  /** Latency from each request's intended send time to the end of its response, µs, sorted. */
  readonly latencies: Float64Array;
  /** How far behind schedule the generator itself sent, µs (p99): its own noise floor. */
  readonly sendLagP99: number;
}

/**
 * Open-loop load at a fixed `rate` for `seconds`: request i is due at start + i / rate, sent then
 * whatever happened to earlier ones (on as many connections as it takes, up to `maxConnections`),
 * and its latency counts from when it was due, not from when it could be sent. A stalled server
 * therefore shows in the latencies of every request scheduled during the stall: the measurement
 * is free of coordinated omission (wrk2's method; Gil Tene, "How NOT to measure latency").
 */
export async function openLoop(origin: string, options: { rate: number; seconds: number; path: string; body: string; headers?: Record<string, string>; maxConnections?: number }): Promise<OpenLoopResult> {
  const pool = new Pool(origin, { connections: options.maxConnections ?? 512, pipelining: 1 });
  const headers = { 'content-type': 'application/json', authorization: 'Bearer bench', ...options.headers };
  const total = Math.max(1, Math.round(options.rate * options.seconds));
  const intervalNs = 1e9 / options.rate;
  const latencies = new Float64Array(total);
  const lags = new Float64Array(total);
  let errors = 0;
  let completed = 0;
  let next = 0;
  const start = process.hrtime.bigint();
  let resolveDone!: () => void;
  const done = new Promise<void>((r) => (resolveDone = r));

  const send = (i: number, dueNs: number): void => {
    pool.request({ method: 'POST', path: options.path, headers, body: options.body })
      .then(async (res) => {
        await res.body.dump();
        if (res.statusCode !== 200) errors++;
      })
      .catch(() => {
        errors++;
      })
      .finally(() => {
        latencies[i] = (Number(process.hrtime.bigint() - start) - dueNs) / 1000;
        if (++completed === total) resolveDone();
      });
  };
  // Sends every request that is due, then yields: to a timer when the next one is at least a
  // millisecond away (timers have millisecond resolution), otherwise to the event loop only.
  const tick = (): void => {
    const now = Number(process.hrtime.bigint() - start);
    while (next < total && next * intervalNs <= now) {
      const due = next * intervalNs;
      lags[next] = (now - due) / 1000;
      send(next, due);
      next++;
    }
    if (next >= total) return;
    const waitMs = (next * intervalNs - now) / 1e6;
    if (waitMs >= 1.5) setTimeout(tick, Math.floor(waitMs - 0.5));
    else setImmediate(tick);
  };
  tick();
  await done;
  await pool.close();
  latencies.sort();
  lags.sort();
  return { rate: options.rate, sent: total, errors, latencies, sendLagP99: lags[Math.floor(0.99 * (total - 1))]! };
}
