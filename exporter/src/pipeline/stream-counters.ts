// A stream's operational counters (rows read, rejected and repaired by reason, late rows and
// their largest delay) saved in its checkpoint beside the data counters, and restored when the
// stream resumes. They follow the data counters' rule: the values saved are those of the rows
// up to the checkpoint, so rows read again after a crash are counted once. Without this an
// operator who restarted tokenwatch lost the evidence (every one of them started from zero),
// and what `backfill` rejected never reached the next `run`'s /metrics.
import { z } from 'zod';
import { REJECT_REASONS, REPAIR_REASONS, type RowQuality } from '../quality/row-quality.ts';
import type { StreamStatus } from './status.ts';

const Count = z.number().int().nonnegative();

export const SavedStreamCounters = z.object({
  rowsRead: Count,
  rowsRejected: Count,
  eventsEmitted: Count,
  rowsLate: Count,
  rowsBeyondSweepWindow: Count,
  lateMaxDelayMs: z.number().nonnegative(),
  rowsReconciled: Count.default(0),
  rowsRevised: Count.default(0),
  rowsIncomplete: Count.default(0),
  rowsDeleted: Count.default(0),
  quality: z.array(z.object({ action: z.enum(['rejected', 'repaired']), reason: z.enum([...REJECT_REASONS, ...REPAIR_REASONS]), count: Count })),
});
export type SavedStreamCounters = z.infer<typeof SavedStreamCounters>;

export function saveStreamCounters(status: StreamStatus, quality: RowQuality): SavedStreamCounters {
  return {
    rowsRead: status.rowsRead, rowsRejected: status.rowsRejected, eventsEmitted: status.eventsEmitted,
    rowsLate: status.rowsLate, rowsBeyondSweepWindow: status.rowsBeyondSweepWindow, lateMaxDelayMs: status.lateMaxDelayMs,
    rowsReconciled: status.rowsReconciled, rowsRevised: status.rowsRevised, rowsIncomplete: status.rowsIncomplete, rowsDeleted: status.rowsDeleted,
    quality: quality.snapshot().filter((q) => q.stream === status.id).map(({ action, reason, count }) => ({ action, reason, count })),
  };
}

/** Restores what `saved` holds (a checkpoint written before counters were saved holds nothing: ignored). */
export function restoreStreamCounters(status: StreamStatus, quality: RowQuality, saved: unknown): void {
  const parsed = SavedStreamCounters.safeParse(saved);
  if (!parsed.success) return;
  const c = parsed.data;
  Object.assign(status, {
    rowsRead: c.rowsRead, rowsRejected: c.rowsRejected, eventsEmitted: c.eventsEmitted,
    rowsLate: c.rowsLate, rowsBeyondSweepWindow: c.rowsBeyondSweepWindow, lateMaxDelayMs: c.lateMaxDelayMs,
    rowsReconciled: c.rowsReconciled, rowsRevised: c.rowsRevised, rowsIncomplete: c.rowsIncomplete, rowsDeleted: c.rowsDeleted,
  });
  for (const q of c.quality) quality.restore(status.id, q.action, q.reason, q.count);
}
