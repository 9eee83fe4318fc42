/**
 * mulberry32: a small seeded generator of numbers in [0, 1). Where the same seed must give the same
 * sequence: the classifier's training order (the same set trains the same model) and the fake
 * OpenRouter's faults.
 */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
