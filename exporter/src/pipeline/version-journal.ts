// The classifications of a stream's pages since its last durable checkpoint (model/
// row-versions.ts says why): appended, and synced, before a page's rows are written to the
// event store; emptied once a checkpoint is durable, because its counters then include them.
//
// On disk it is one JSON line per page beside the checkpoint, each naming the checkpoint it
// follows (that checkpoint's updatedAt): lines that follow an older checkpoint were counted
// by a checkpoint saved since, and are ignored, so a crash between a checkpoint and the
// journal's truncation changes nothing. Classifications loaded after a crash whose rows have
// not been read again yet are not counted by the next checkpoint: they travel inside it
// (carried()), atomically, until their rows are read.
import { closeSync, fsyncSync, openSync, readFileSync, writeSync, ftruncateSync } from 'node:fs';
import { z } from 'zod';
import type { JournalEntry } from '../model/row-versions.ts';

const Amounts = z.object({ inputTokens: z.number(), outputTokens: z.number(), cacheReadTokens: z.number(), cacheWriteTokens: z.number(), costUsd: z.number(), costEstimateUsd: z.number().default(0) });
const Line = z.object({
  after: z.string(),
  entries: z.array(z.object({ key: z.string(), kind: z.enum(['new', 'revised']), previous: Amounts.nullable() })),
});

export class VersionJournal {
  private readonly path: string | undefined;
  /** Every classification since the durable checkpoint. */
  private readonly entries = new Map<string, JournalEntry>();
  /**
   * Those whose counts are not in the counters now: loaded after a crash, or taken back by a
   * failed poll. Only these override the store (the others' rows are counted in memory).
   */
  private readonly uncounted = new Map<string, JournalEntry>();
  /** updatedAt of the durable checkpoint the pending entries follow. */
  private after: string;
  private written = false;

  /**
   * `path` undefined: kept in memory only (a memory checkpoint store). `carried`: the
   * classifications the checkpoint holds (carried() when it was saved).
   */
  constructor(path: string | undefined, checkpointUpdatedAt: string | undefined, carried: unknown = []) {
    this.path = path;
    this.after = checkpointUpdatedAt ?? '';
    const kept = Line.shape.entries.safeParse(carried);
    for (const e of kept.success ? kept.data : []) {
      this.entries.set(e.key, e);
      this.uncounted.set(e.key, e);
    }
    if (path === undefined || checkpointUpdatedAt === undefined) return;
    let text = '';
    try {
      text = readFileSync(path, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
    for (const raw of text.split('\n')) {
      if (raw.trim() === '') continue;
      let parsed: z.infer<typeof Line>;
      try {
        parsed = Line.parse(JSON.parse(raw));
      } catch {
        // A line cut short by the crash: its page's writes had not started.
        continue;
      }
      if (parsed.after !== checkpointUpdatedAt) continue;
      for (const e of parsed.entries) {
        this.entries.set(e.key, e);
        this.uncounted.set(e.key, e);
      }
    }
    this.written = text.length > 0;
  }

  /** Classifications whose rows must be counted as they say, by versionKey. */
  pending(): ReadonlyMap<string, JournalEntry> {
    return this.uncounted;
  }

  /** A page's rows are counted (in memory) as classified. */
  counted(keys: Iterable<string>): void {
    for (const key of keys) this.uncounted.delete(key);
  }

  /** A failed poll took back the counts since the durable checkpoint. */
  rolledBack(): void {
    for (const [key, e] of this.entries) this.uncounted.set(key, e);
  }

  /** Records a page's classifications durably; the page's rows may be written after this returns. */
  append(entries: readonly JournalEntry[]): void {
    const fresh = entries.filter((e) => !this.entries.has(e.key));
    if (fresh.length === 0) return;
    for (const e of fresh) this.entries.set(e.key, e);
    if (this.path === undefined) return;
    const fd = openSync(this.path, 'a');
    try {
      writeSync(fd, `${JSON.stringify({ after: this.after, entries: fresh })}\n`);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    this.written = true;
  }

  /** What the next checkpoint must hold: the classifications it does not count. */
  carried(): JournalEntry[] {
    return [...this.uncounted.values()];
  }

  /**
   * The checkpoint saved at `updatedAt` is durable: it counts every classification but those
   * it carries, which stay pending.
   */
  checkpointed(updatedAt: string, carried: readonly JournalEntry[]): void {
    this.after = updatedAt;
    this.entries.clear();
    this.uncounted.clear();
    for (const e of carried) {
      this.entries.set(e.key, e);
      this.uncounted.set(e.key, e);
    }
    if (this.path === undefined || !this.written) return;
    const fd = openSync(this.path, 'r+');
    try {
      ftruncateSync(fd, 0);
    } finally {
      closeSync(fd);
    }
    this.written = false;
  }
}
