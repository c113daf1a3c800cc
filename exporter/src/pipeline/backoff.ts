// Retry delays for polls and connections that fail: capped exponential backoff with jitter,
// so that many exporters (or many streams) retrying after the same outage spread out instead
// of arriving at the database together.

export interface Backoff {
  /** Delay after the first failure (before jitter). */
  baseMs: number;
  /** Longest delay (before jitter). */
  capMs: number;
}

/**
 * Delay before retry number `failures` (1 = after the first failure): base × 2^(failures−1),
 * at most cap, then scaled by a random factor in [0.5, 1) ("equal jitter": never less than
 * half the delay, never more than the cap).
 */
export function retryDelayMs(failures: number, backoff: Backoff, random: () => number = Math.random): number {
  const exponential = Math.min(backoff.capMs, backoff.baseMs * 2 ** Math.max(0, failures - 1));
  return Math.round(exponential * (0.5 + 0.5 * random()));
}

/**
 * Backoff of a stream's polls: from a second (or the interval, if shorter), doubling up to
 * the interval or 5 s, whichever is longer. A stream therefore reads again within about 5 s
 * of its source coming back (at the default intervals), and a short outage costs little.
 */
export function pollBackoff(intervalMs: number): Backoff {
  return { baseMs: Math.min(1000, intervalMs), capMs: Math.max(intervalMs, 5000) };
}

/** Backoff of connecting to a source that was unreachable at start: 1 s up to 10 s. */
export const CONNECT_BACKOFF: Backoff = { baseMs: 1000, capMs: 10_000 };
