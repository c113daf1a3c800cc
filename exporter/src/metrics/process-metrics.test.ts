import { describe, expect, it } from 'vitest';
import { ProcessMetrics } from './process-metrics.ts';

describe('process metrics', () => {
  it('reports the V8 heap apart from RSS, and sees objects kept alive on the heap', () => {
    const metrics = new ProcessMetrics();
    try {
      const before = metrics.sample();
      expect(before.heapUsedBytes).toBeGreaterThan(0);
      expect(before.heapUsedBytes).toBeLessThanOrEqual(before.heapTotalBytes);
      expect(before.heapTotalBytes).toBeLessThan(before.residentBytes);
      expect(before.externalBytes).toBeGreaterThan(0);
      // 40 MiB of live JavaScript objects (a million small objects, not one Buffer, which would be external).
      const kept = Array.from({ length: 1_000_000 }, (_, i) => ({ i, s: `row-${i}` }));
      const after = metrics.sample();
      expect(after.heapUsedBytes - before.heapUsedBytes).toBeGreaterThan(40 * 1024 * 1024);
      expect(kept.length).toBe(1_000_000);
    } finally {
      metrics.stop();
    }
  });
});
