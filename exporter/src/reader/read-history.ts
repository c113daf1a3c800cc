// What the polls of a stream have read below its watermark, kept so the straggler sweep can
// find rows that committed too late for them (docs/how-rows-are-read.md, "Rows that commit late").
//
// A poll reads rows at or above its watermark that are visible in its snapshot. Once the
// watermark moves past a timestamp, no poll looks at that timestamp again: a row there whose
// transaction commits afterwards is a straggler. To find stragglers exactly, the sweep must
// know, for every timestamp below the watermark, which rows the polls already handed over.
// The history records that as ranges of timestamps, each with a snapshot: a row with a
// timestamp in the range was handed over if and only if its transaction is visible in that
// snapshot.
//
// Every completed poll adds the range between its old and its new watermark, with its own
// snapshot. Consecutive ranges merge into the older one while that stays exact, which is the
// usual case: the older snapshot describes the newer range too as long as no poll since it
// handed over a row with a timestamp inside that range (`emittedFrom` records the lowest
// timestamp handed over since). A sweep reads every range with one snapshot, so afterwards
// the whole history is one range again.
import { z } from 'zod';

export const ReadRange = z.object({
  /** Upper bound (exclusive) of the range; its lower bound is the previous range's upTo, or `from`. */
  upTo: z.string(),
  /** Rows of the range were handed over exactly when their transaction is visible in this snapshot. */
  snapshot: z.string(),
  /** Lowest timestamp handed over by polls that came after `snapshot`; null when none did. */
  emittedFrom: z.string().nullable(),
});
export type ReadRange = z.infer<typeof ReadRange>;

export const ReadHistory = z.object({
  /** Lower bound of the first range; null when the first range starts at the table's beginning. */
  from: z.string().nullable(),
  ranges: z.array(ReadRange),
  /** Database time of the last sweep (null: never swept). */
  lastSweepAt: z.string().nullable(),
});
export type ReadHistory = z.infer<typeof ReadHistory>;

/** A history whose ranges have grown to this many is swept at the next poll, whatever the interval. */
export const MAX_RANGES = 100;

/**
 * The history after a poll that started from watermark `fromWatermark` (null: the table's
 * beginning), read with `snapshot`, handed over rows no lower than `emittedMin` (null: none)
 * and moved the watermark to `toWatermark`.
 */
export function afterPoll(
  history: ReadHistory | undefined,
  poll: { fromWatermark: string | null; toWatermark: string; snapshot: string; emittedMin: string | null },
  compare: (a: string, b: string) => number,
): ReadHistory {
  const { fromWatermark, toWatermark, snapshot, emittedMin } = poll;
  if (history === undefined || history.ranges.length === 0) {
    return { from: history?.from ?? fromWatermark, ranges: [{ upTo: toWatermark, snapshot, emittedFrom: null }], lastSweepAt: history?.lastSweepAt ?? null };
  }
  const ranges = history.ranges.slice();
  const last = ranges[ranges.length - 1]!;
  if (last.snapshot === snapshot) {
    // The same snapshot read both ranges (a sweep just before this poll): one range.
    ranges[ranges.length - 1] = { ...last, upTo: toWatermark };
    return { ...history, ranges };
  }
  const lowest = last.emittedFrom === null ? emittedMin : emittedMin === null ? last.emittedFrom : compare(last.emittedFrom, emittedMin) <= 0 ? last.emittedFrom : emittedMin;
  // Strictly above the new watermark: nothing handed over since `last.snapshot` lies in the
  // new range, so the older snapshot describes it exactly.
  if (lowest === null || compare(lowest, toWatermark) > 0) {
    ranges[ranges.length - 1] = { ...last, upTo: toWatermark, emittedFrom: lowest };
  } else {
    ranges.push({ upTo: toWatermark, snapshot, emittedFrom: null });
  }
  return { ...history, ranges };
}

/** The history after a sweep read everything from `from` up to the watermark with `snapshot`. */
export function afterSweep(history: ReadHistory, sweep: { from: string; snapshot: string; at: string }): ReadHistory {
  const upTo = history.ranges[history.ranges.length - 1]!.upTo;
  return { from: sweep.from, ranges: [{ upTo, snapshot: sweep.snapshot, emittedFrom: null }], lastSweepAt: sweep.at };
}
