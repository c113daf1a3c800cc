// Durable checkpoints: one small JSON file per stream, replaced atomically (fs/atomic-write.ts),
// so a crash at any point leaves either the old or the new checkpoint, never a torn one.
import { mkdirSync, readFileSync } from 'node:fs';
import { writeFileAtomic } from '../fs/atomic-write.ts';
import { join } from 'node:path';
import { z } from 'zod';
import { ReadHistory } from './read-history.ts';

export const Checkpoint = z.object({
  version: z.literal(1),
  /** Rows with a cursor value below this are final: read, or older than maxCommitDelay. */
  watermark: z.string().nullable(),
  /**
   * Snapshot of the last completed poll (txid_current_snapshot() text and the xids handed over
   * at or above its xmin, incremental-reader.ts formatSnapshot): rows visible in it were emitted.
   */
  snapshot: z.string().nullable(),
  /**
   * Progress inside a poll that has not completed (a long backfill): rows up to `after`
   * (cursor value, id) that are visible in `snapshot` of this poll were emitted too.
   */
  inProgress: z
    .object({
      snapshot: z.string(),
      afterCursor: z.string(),
      afterId: z.string(),
      /** The interrupted poll's new watermark: it handed over incomplete rows below it. */
      deadline: z.string().optional(),
    })
    .nullable(),
  /** What the polls read below the watermark, for the straggler sweep (absent: none kept). */
  history: ReadHistory.optional(),
  /** State of the consumers that must move with the reader's position (metric counters). */
  extra: z.unknown().optional(),
  /** Rows emitted by this stream so far (for progress reports, not for correctness). */
  rowsEmitted: z.number().int().nonnegative(),
  updatedAt: z.string(),
});
export type Checkpoint = z.infer<typeof Checkpoint>;

export interface CheckpointStore {
  load(streamId: string): Checkpoint | undefined;
  save(streamId: string, checkpoint: Checkpoint): void;
  /** Where the stream's version journal lives beside its checkpoint (undefined: in memory). */
  journalPath?(streamId: string): string;
}

function fileName(streamId: string): string {
  return `${streamId.replace(/[^A-Za-z0-9_.-]/g, '_')}.json`;
}

export class FileCheckpointStore implements CheckpointStore {
  readonly dir: string;
  constructor(stateDir: string) {
    this.dir = join(stateDir, 'checkpoints');
    mkdirSync(this.dir, { recursive: true });
  }

  journalPath(streamId: string): string {
    return join(this.dir, fileName(streamId).replace(/\.json$/, '.versions.jsonl'));
  }

  load(streamId: string): Checkpoint | undefined {
    let text: string;
    try {
      text = readFileSync(join(this.dir, fileName(streamId)), 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
    const parsed = Checkpoint.safeParse(JSON.parse(text));
    if (!parsed.success) {
      throw new Error(`checkpoint ${join(this.dir, fileName(streamId))} is damaged (${parsed.error.issues[0]?.message}); move it away to re-read the stream from startFrom`);
    }
    return parsed.data;
  }

  save(streamId: string, checkpoint: Checkpoint): void {
    writeFileAtomic(join(this.dir, fileName(streamId)), JSON.stringify(checkpoint));
  }
}

/** For tests and one-shot runs that must not leave state behind. */
export class MemoryCheckpointStore implements CheckpointStore {
  private readonly checkpoints = new Map<string, Checkpoint>();
  load(streamId: string): Checkpoint | undefined {
    const found = this.checkpoints.get(streamId);
    return found ? structuredClone(found) : undefined;
  }
  save(streamId: string, checkpoint: Checkpoint): void {
    this.checkpoints.set(streamId, structuredClone(checkpoint));
  }
}
