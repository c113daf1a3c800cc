// Counters of the whole process rather than of one stream: the cardinality guard's folded and
// shortened label values, and failed sink writes. Stream counters travel in their stream's
// checkpoint (registry.ts); these have no checkpoint of their own, so they are kept in one
// small file in the state directory, written (atomically, only when a value changed) before
// /metrics shows them: a scrape never shows a value a crash could take back, so Prometheus
// never sees them go down, and the next start (or the `run` after a `backfill`) resumes from
// them. Rows read again after a crash can count a fold twice; the counters never lose one.
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { writeFileAtomic } from '../fs/atomic-write.ts';

export const DurableSeries = z.object({
  metric: z.enum(['seriesOverflow', 'labelValuesShortened', 'sinkFailures']),
  labels: z.array(z.string()),
  value: z.number().int().nonnegative(),
});
export type DurableSeries = z.infer<typeof DurableSeries>;

const SavedCounters = z.object({ version: z.literal(1), series: z.array(DurableSeries) });

const keyOf = (s: DurableSeries) => `${s.metric}\u0001${s.labels.join('\u0001')}`;

export class DurableCounters {
  private readonly file: string | undefined;
  private written = new Map<string, number>();

  /** `file` undefined: nothing is kept (tests, one-shot commands without a state directory). */
  constructor(file: string | undefined) {
    this.file = file;
  }

  /** The values saved by the previous process; throws naming the file when it is damaged. */
  load(): DurableSeries[] {
    if (this.file === undefined) return [];
    let text: string;
    try {
      text = readFileSync(this.file, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw error;
    }
    let parsed: z.infer<typeof SavedCounters>;
    try {
      parsed = SavedCounters.parse(JSON.parse(text));
    } catch (error) {
      throw new Error(`${this.file} is damaged (${error instanceof z.ZodError ? error.issues[0]?.message : (error as Error).message}); move it away to start these counters from zero`, { cause: error });
    }
    this.written = new Map(parsed.series.map((s) => [keyOf(s), s.value]));
    return parsed.series;
  }

  /** Saves `series` when any value differs from the last save (call before showing them). */
  flush(series: readonly DurableSeries[]): void {
    if (this.file === undefined) return;
    const changed = series.length !== this.written.size || series.some((s) => this.written.get(keyOf(s)) !== s.value);
    if (!changed) return;
    writeFileAtomic(this.file, JSON.stringify({ version: 1, series }));
    this.written = new Map(series.map((s) => [keyOf(s), s.value]));
  }
}
