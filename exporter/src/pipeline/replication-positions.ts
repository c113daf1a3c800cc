// Where each stream of a source in mode: replication stands, kept in its checkpoint beside its
// counters: the slot position it has handled (the LSN of the last transaction's commit, and when
// that transaction committed) and the ids of rows seen incomplete, with when they were first
// seen. A checkpoint is saved atomically with the counters, before the position is confirmed to
// the server (replication-runner.ts).
import type { CheckpointStore } from '../reader/checkpoint-store.ts';
import type { StreamRunner } from './stream-runner.ts';

interface Position {
  lsn: string | null;
  /** When the last transaction handled committed (ISO): a fallback to polling starts there. */
  commitTime: string | null;
  rowsEmitted: number;
}

interface SavedReplication {
  lsn?: string;
  commitTime?: string;
  incomplete?: [string, number][];
}

function savedReplication(extra: unknown): SavedReplication | undefined {
  return (extra as { replication?: SavedReplication } | undefined)?.replication;
}

/**
 * How far past a batch's last position the written-up-to mark is set when it must move: the mark
 * is saved (an fsync) once per this many bytes of WAL, not once per batch.
 */
const WRITTEN_MARK_AHEAD = 64n * 1024n * 1024n;

export class ReplicationPositions {
  private readonly store: CheckpointStore;
  private readonly slot: string;
  /** The durable written-up-to mark (see willWrite), read from the store once. */
  private mark: bigint | undefined;
  /**
   * What may be in the event store (see writtenUpTo): the mark found on start (what an earlier
   * process may have written), then the last position this process handed over.
   */
  private handed: bigint | undefined;
  private readonly positions = new Map<StreamRunner, Position>();
  /** Per stream: ids of rows seen incomplete, and when they were first seen (epoch ms). */
  private readonly incomplete = new Map<StreamRunner, Map<string, number>>();

  constructor(store: CheckpointStore, slot: string) {
    this.store = store;
    this.slot = slot;
  }

  /** True once any of the streams has a checkpoint (the source has started before). */
  started(runners: readonly StreamRunner[]): boolean {
    return runners.some((r) => this.store.load(r.id) !== undefined);
  }

  /** The position the stream's checkpoint says it has handled (read from disk once, then kept). */
  lsnOf(runner: StreamRunner): string | null {
    return this.position(runner).lsn;
  }

  private position(runner: StreamRunner): Position {
    let found = this.positions.get(runner);
    if (!found) {
      const saved = this.store.load(runner.id);
      const replication = savedReplication(saved?.extra);
      found = { lsn: replication?.lsn ?? null, commitTime: replication?.commitTime ?? null, rowsEmitted: saved?.rowsEmitted ?? 0 };
      this.positions.set(runner, found);
      if (!this.incomplete.has(runner)) this.incomplete.set(runner, new Map(replication?.incomplete ?? []));
    }
    return found;
  }

  /** The ids of the stream's rows waiting to be complete. */
  waiting(runner: StreamRunner): Map<string, number> {
    this.position(runner);
    return this.incomplete.get(runner)!;
  }

  /** The stream's checkpoint with its counters and the position it has handled, saved atomically. */
  save(runner: StreamRunner, lsn: string, rows: number, commitTime?: Date): void {
    const position = this.position(runner);
    const committed = commitTime?.toISOString() ?? position.commitTime ?? new Date().toISOString();
    const state = runner.companion.save() as Record<string, unknown>;
    const checkpoint = {
      version: 1 as const, watermark: null, snapshot: null, inProgress: null, rowsEmitted: position.rowsEmitted + rows,
      updatedAt: new Date().toISOString(), extra: { ...state, replication: { slot: this.slot, lsn, commitTime: committed, incomplete: [...this.waiting(runner)] } },
    };
    this.store.save(runner.id, checkpoint);
    this.positions.set(runner, { lsn, commitTime: committed, rowsEmitted: checkpoint.rowsEmitted });
    runner.companion.saved(state, checkpoint);
  }

  /**
   * Every transaction handed to the event store so far, by any run of this slot (this process or
   * one before a crash), committed at or below this position. A transaction above it was never
   * written, so a row it inserted cannot be in the event store: its lookup is skipped. 0 when
   * nothing was written yet.
   */
  writtenUpTo(): bigint {
    this.handed ??= this.durableMark();
    return this.handed;
  }

  /**
   * Before a batch up to `lsn` is written. The durable mark must cover it: a process killed
   * between a batch's write and its checkpoint leaves rows that the next process must find
   * (written again, the rollups would count them twice). It is saved (an fsync) ahead of the
   * batch, so once per WRITTEN_MARK_AHEAD bytes of WAL rather than once per batch; only the
   * next process reads it, which then looks up that much WAL in full. This process goes by what
   * it has handed over itself.
   */
  willWrite(lsn: bigint): void {
    if (lsn > this.writtenUpTo()) this.handed = lsn;
    if (lsn <= this.durableMark()) return;
    const mark = lsn + WRITTEN_MARK_AHEAD;
    // Kept as a checkpoint of its own beside the streams' (no counters in it).
    this.store.save(this.markId(), {
      version: 1, watermark: null, snapshot: null, inProgress: null, rowsEmitted: 0,
      updatedAt: new Date().toISOString(), extra: { writtenUpTo: mark.toString() },
    });
    this.mark = mark;
  }

  private durableMark(): bigint {
    if (this.mark === undefined) {
      const saved = (this.store.load(this.markId()) as { extra?: { writtenUpTo?: string } } | undefined)?.extra?.writtenUpTo;
      this.mark = saved === undefined ? 0n : BigInt(saved);
    }
    return this.mark;
  }

  private markId(): string {
    return `${this.slot}/written-up-to`;
  }

  /** The stream's counters during its initial load, with no position (a restart loads again). */
  saveCounters(runner: StreamRunner, rows: number): void {
    const state = runner.companion.save() as Record<string, unknown>;
    const checkpoint = { version: 1 as const, watermark: null, snapshot: null, inProgress: null, rowsEmitted: rows, updatedAt: new Date().toISOString(), extra: state };
    this.store.save(runner.id, checkpoint);
    runner.companion.saved(state, checkpoint);
  }

  /**
   * The slot is lost (onSlotLost: polling): the stream's checkpoint becomes a poll's, from the
   * commit time of the last transaction it handled less maxCommitDelay (a row that commits later
   * has a timestamp after that, as the polls assume); what is read again there is recognised by
   * its row version and not counted twice. Returns the watermark, or undefined when the stream
   * is polled already or was never positioned (its initial load cut short: the polls read it all).
   */
  toPolling(runner: StreamRunner): string | undefined {
    const saved = this.store.load(runner.id);
    const replication = savedReplication(saved?.extra);
    if (saved === undefined || saved.watermark !== null || replication?.lsn === undefined) return undefined;
    const handled = Date.parse(replication.commitTime ?? saved.updatedAt);
    const watermark = new Date(handled - runner.stream.spec.maxCommitDelayMs).toISOString();
    this.store.save(runner.id, { ...saved, watermark, snapshot: null, inProgress: null, history: undefined, updatedAt: new Date().toISOString() });
    return watermark;
  }
}
