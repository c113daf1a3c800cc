// Where canonical events go. A sink must be idempotent per event identity (request id,
// message id, snapshot key + observation): after a crash the reader re-delivers the pages
// whose checkpoint was not yet saved.
import type { CanonicalEvent } from '../model/events.ts';

export interface Sink {
  readonly name: string;
  write(events: readonly CanonicalEvent[]): Promise<void>;
  /**
   * Before a stream resumes: repairs what a crash may have left half-written by writes after
   * `since` (the stream's last checkpoint), for events of `source`; those events are not
   * older than `notBefore` when it is known (the checkpoint's watermark).
   */
  recover?(source: string, since: Date, notBefore: Date | null): Promise<readonly unknown[]>;
  close(): Promise<void>;
  /** Rows the sink's store refused and set aside (a dead letter each), by table and reason. */
  rejectedRows?(): readonly RejectedRows[];
}

export interface RejectedRows {
  table: string;
  /** The store's name for the error, e.g. ClickHouse's ARGUMENT_OUT_OF_BOUND. */
  reason: string;
  count: number;
}
