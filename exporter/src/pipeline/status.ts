// What the runner knows about every stream and sink, as /metrics, /readyz and the logs show
// it. Plain data (one type import from the sinks), so the metrics registry can read it
// without depending on the pipeline that fills it in.
import type { RejectedRows } from '../sinks/sink.ts';

export interface StreamStatus {
  id: string;
  source: string;
  sourceType: string;
  table: string;
  kind: 'incremental' | 'snapshot';
  rowsRead: number;
  eventsEmitted: number;
  rowsRejected: number;
  polls: number;
  lastPollStartedAt: number | null;
  lastSuccessAt: number | null;
  /** Start of the last successful poll: everything committed before it has been read. */
  lastSuccessStartedAt: number | null;
  lastPollDurationMs: number | null;
  /** Checkpoint watermark (incremental streams). */
  watermarkAt: number | null;
  lastError: string | null;
  /** The stream's guarantees, from its configuration (incremental streams; 0 = no sweep). */
  maxCommitDelayMs: number | null;
  /** How often the stream or snapshot is read (a table without an index on its cursor is read less often). */
  intervalMs: number | null;
  sweepWindowMs: number | null;
  /** Rows the straggler sweep delivered (they committed later than maxCommitDelay). */
  rowsLate: number;
  /** Rows delivered again with a changed content after they were counted (model/row-versions.ts). */
  rowsRevised: number;
  /** Rows of a table written in steps delivered while still incomplete (past maxCommitDelay). */
  rowsIncomplete: number;
  /** Of those, rows already older than the sweep window when it found them. */
  rowsBeyondSweepWindow: number;
  /** Largest time from a late row's timestamp to the sweep that found it, since start. */
  lateMaxDelayMs: number;
  /** The last reconciliation (incremental streams with rows in the event store), null before the first. */
  reconcile: { at: number; missing: number; extra: number; rejected: number; days: number } | null;
  /** Rows reconciliation found missing from the event store and delivered (also counted in rowsLate). */
  rowsReconciled: number;
  /** Rows a bulk backfill stored in ClickHouse itself, without map() (since start). */
  rowsBulk: number;
  /** Rows deleted at the source, seen by replication (not events: no other counter changes). */
  rowsDeleted: number;
  /** Scans of the table by xmin for transactions past largeTransactionRows (replication). */
  xminScans: number;
  /** The source's replication slot (mode: replication), null when polled. */
  replication: ReplicationStatus | null;
}

export interface ReplicationStatus {
  slot: string;
  /** Changes written on the source not yet confirmed by tokenwatch, and the WAL the slot retains, in bytes. */
  lagBytes: number;
  retainedBytes: number;
  /** When the last message (change or keepalive) arrived, epoch ms; null before the first. */
  lastMessageAt: number | null;
  /** The slot was lost and the source is polled instead (onSlotLost: polling). */
  pollingFallback: boolean;
}

export interface SinkStatus {
  sink: string;
  /** false after a failed write, until the next write succeeds. */
  up: boolean;
  failures: number;
  eventsWritten: number;
  /** Rows the sink's store refused, set aside as dead letters (the stream went on). */
  rowsRejected: readonly RejectedRows[];
}

export function newStreamStatus(
  stream: Pick<StreamStatus, 'id' | 'source' | 'sourceType' | 'table' | 'kind'> & Partial<Pick<StreamStatus, 'maxCommitDelayMs' | 'sweepWindowMs' | 'intervalMs'>>,
): StreamStatus {
  return {
    maxCommitDelayMs: null, sweepWindowMs: null, intervalMs: null,
    ...stream,
    rowsRead: 0, eventsEmitted: 0, rowsRejected: 0, polls: 0,
    lastPollStartedAt: null, lastSuccessAt: null, lastSuccessStartedAt: null, lastPollDurationMs: null, watermarkAt: null,
    lastError: null, rowsLate: 0, rowsRevised: 0, rowsIncomplete: 0, rowsBeyondSweepWindow: 0, lateMaxDelayMs: 0, reconcile: null, rowsReconciled: 0, rowsBulk: 0, rowsDeleted: 0, xminScans: 0, replication: null,
  };
}
