// The read history's merge rule: ranges merge into the older snapshot only while that stays
// exact, and a sweep collapses the history into one range.
import { describe, expect, it } from 'vitest';
import { afterPoll, afterSweep, type ReadHistory } from './read-history.ts';
import { compareCursor } from './incremental-reader.ts';

const t = (second: number) => `2026-12-01 10:00:${String(second).padStart(2, '0')}+00`;

describe('read history', () => {
  it('starts with the first poll: from its start watermark (null for the table\'s beginning)', () => {
    expect(afterPoll(undefined, { fromWatermark: null, toWatermark: t(10), snapshot: 's1', emittedMin: t(0) }, compareCursor)).toEqual({
      from: null, ranges: [{ upTo: t(10), snapshot: 's1', emittedFrom: null }], lastSweepAt: null,
    });
    expect(afterPoll(undefined, { fromWatermark: t(5), toWatermark: t(10), snapshot: 's1', emittedMin: null }, compareCursor).from).toBe(t(5));
  });

  it('extends the older range while nothing handed over since lies below the new watermark', () => {
    let h: ReadHistory = { from: null, ranges: [{ upTo: t(10), snapshot: 's1', emittedFrom: null }], lastSweepAt: null };
    h = afterPoll(h, { fromWatermark: t(10), toWatermark: t(12), snapshot: 's2', emittedMin: t(20) }, compareCursor);
    expect(h.ranges).toEqual([{ upTo: t(12), snapshot: 's1', emittedFrom: t(20) }]);
    h = afterPoll(h, { fromWatermark: t(12), toWatermark: t(15), snapshot: 's3', emittedMin: null }, compareCursor);
    expect(h.ranges).toEqual([{ upTo: t(15), snapshot: 's1', emittedFrom: t(20) }]);
    // The row handed over at :20 now lies below the new watermark: s1 would not describe it.
    h = afterPoll(h, { fromWatermark: t(15), toWatermark: t(21), snapshot: 's4', emittedMin: null }, compareCursor);
    expect(h.ranges).toEqual([{ upTo: t(15), snapshot: 's1', emittedFrom: t(20) }, { upTo: t(21), snapshot: 's4', emittedFrom: null }]);
  });

  it('a row at exactly the new watermark, to the microsecond, starts a new range', () => {
    const h: ReadHistory = { from: null, ranges: [{ upTo: t(10), snapshot: 's1', emittedFrom: null }], lastSweepAt: null };
    const at = '2026-12-01 10:00:11.000001+00';
    expect(afterPoll(h, { fromWatermark: t(10), toWatermark: at, snapshot: 's2', emittedMin: at }, compareCursor).ranges).toHaveLength(2);
    expect(afterPoll(h, { fromWatermark: t(10), toWatermark: '2026-12-01 10:00:11+00', snapshot: 's2', emittedMin: at }, compareCursor).ranges).toHaveLength(1);
  });

  it('a sweep leaves one range read with its snapshot, from the start of the window', () => {
    const h: ReadHistory = { from: null, ranges: [{ upTo: t(15), snapshot: 's1', emittedFrom: t(20) }, { upTo: t(21), snapshot: 's4', emittedFrom: null }], lastSweepAt: null };
    const swept = afterSweep(h, { from: t(1), snapshot: 's5', at: '2026-12-01T10:00:30.000Z' });
    expect(swept).toEqual({ from: t(1), ranges: [{ upTo: t(21), snapshot: 's5', emittedFrom: null }], lastSweepAt: '2026-12-01T10:00:30.000Z' });
    // The poll right after reads with a later snapshot but hands over nothing below its watermark.
    expect(afterPoll(swept, { fromWatermark: t(21), toWatermark: t(22), snapshot: 's6', emittedMin: t(25) }, compareCursor).ranges).toEqual([
      { upTo: t(22), snapshot: 's5', emittedFrom: t(25) },
    ]);
  });
});
