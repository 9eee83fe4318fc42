/**
 * 95% confidence intervals for comparing the arms of an experiment (`signalbox report --by
 * variant`). Plain formulas, no dependency: the report reads logs of any size in one pass.
 */

/** The normal quantile for a two-sided 95% interval. */
export const Z95 = 1.959963984540054;

export interface Interval {
  readonly estimate: number;
  readonly low: number;
  readonly high: number;
}

/**
 * Wilson's score interval for a proportion (successes of n): unlike the normal ("Wald")
 * interval it stays inside [0, 1] and keeps its coverage at 0 or n successes and small n, which
 * error rates and feedback shares often are (Brown, Cai, DasGupta 2001, "Interval Estimation for a
 * Binomial Proportion"). Undefined when n is 0.
 */
export function wilson(successes: number, n: number, z = Z95): Interval | undefined {
  if (n <= 0) return undefined;
  const p = successes / n;
  const z2 = z * z;
  const denominator = 1 + z2 / n;
  const centre = (p + z2 / (2 * n)) / denominator;
  const half = (z * Math.sqrt((p * (1 - p)) / n + z2 / (4 * n * n))) / denominator;
  return { estimate: p, low: Math.max(0, centre - half), high: Math.min(1, centre + half) };
}

/** A running mean and variance (Welford's algorithm: one pass, no cancellation on large sums). */
export class MeanAccumulator {
  n = 0;
  private mean = 0;
  private m2 = 0;

  add(x: number): void {
    this.n++;
    const delta = x - this.mean;
    this.mean += delta / this.n;
    this.m2 += delta * (x - this.mean);
  }

  /** The mean with a normal interval (mean ± z·s/√n, fine for the hundreds of samples an arm has); undefined below 2 samples. */
  interval(z = Z95): Interval | undefined {
    if (this.n < 2) return undefined;
    const half = z * Math.sqrt(this.m2 / (this.n - 1) / this.n);
    return { estimate: this.mean, low: this.mean - half, high: this.mean + half };
  }
}

/**
 * The q-quantile of a sorted sample with a distribution-free interval from its order statistics:
 * the number of sample values below the true quantile is Binomial(n, q), so the ranks
 * n·q ± z·√(n·q·(1−q)) (normal approximation, clamped to the sample) bracket it with about 95%
 * confidence, whatever the shape of the latencies. The estimate is the nearest-rank quantile.
 * Undefined for an empty sample.
 */
export function quantileInterval(sorted: ArrayLike<number>, q: number, z = Z95): Interval | undefined {
  const n = sorted.length;
  if (n === 0) return undefined;
  const spread = z * Math.sqrt(n * q * (1 - q));
  const rank = (r: number): number => sorted[Math.min(n, Math.max(1, r)) - 1]!;
  return { estimate: rank(Math.ceil(q * n)), low: rank(Math.floor(n * q - spread)), high: rank(Math.ceil(n * q + spread)) };
}
