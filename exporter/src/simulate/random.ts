// Seeded randomness for the traffic simulator: the same seed gives the same rows, on every
// machine. Distributions are the ones LLM traffic shows: log-normal sizes and latencies
// (long right tails), Zipf-sized tenants, Poisson arrivals.

export type Random = () => number;

/** mulberry32: small, fast, good enough for simulated traffic. */
export function seeded(seed: number): Random {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A standard normal deviate (Box-Muller). */
export function normal(rnd: Random): number {
  const u = Math.max(rnd(), 1e-12);
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rnd());
}

/** Log-normal with the given median and shape (σ of the logarithm): most values near the median, a long tail above. */
export function logNormal(rnd: Random, median: number, sigma: number): number {
  return median * Math.exp(sigma * normal(rnd));
}

/** Arrivals in an interval with `mean` expected (Poisson; normal approximation above 50). */
export function poisson(rnd: Random, mean: number): number {
  if (mean <= 0) return 0;
  if (mean > 50) return Math.max(0, Math.round(mean + Math.sqrt(mean) * normal(rnd)));
  const limit = Math.exp(-mean);
  let k = 0;
  for (let p = rnd(); p > limit; p *= rnd()) k += 1;
  return k;
}

export function pick<T>(rnd: Random, items: readonly T[]): T {
  return items[Math.floor(rnd() * items.length)]!;
}

/** Picks by weight. */
export function weighted<T>(rnd: Random, items: readonly { weight: number; value: T }[]): T {
  const total = items.reduce((n, i) => n + i.weight, 0);
  let at = rnd() * total;
  for (const item of items) {
    at -= item.weight;
    if (at <= 0) return item.value;
  }
  return items[items.length - 1]!.value;
}

/** Zipf weights 1/k^s for k = 1..n: a few large tenants and a long tail of small ones. */
export function zipf(n: number, s = 1.1): number[] {
  return Array.from({ length: n }, (_, k) => 1 / (k + 1) ** s);
}

/** A version-4-shaped UUID from the generator (deterministic for a seed). */
export function uuid(rnd: Random): string {
  const hex = Array.from({ length: 32 }, () => Math.floor(rnd() * 16).toString(16)).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-4${hex.slice(13, 16)}-${'89ab'[Math.floor(rnd() * 4)]}${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}

/** Hex digits, e.g. for hashes. */
export function hex(rnd: Random, length: number): string {
  return Array.from({ length }, () => Math.floor(rnd() * 16).toString(16)).join('');
}
