// Where canonical events go. A sink must be idempotent per event identity (request id,
// message id, snapshot key + observation): after a crash the reader re-delivers the pages
// whose checkpoint was not yet saved.
import type { CanonicalEvent } from '../model/events.ts';
import type { StoredVersion, VersionedEvent } from '../model/row-versions.ts';

export interface Sink {
  readonly name: string;
  /**
   * Writes `events`; `stored` is what storedVersions() returned for them, when the sink has
   * it (a version already stored is not written again).
   */
  write(events: readonly CanonicalEvent[], stored?: ReadonlyMap<string, StoredVersion>): Promise<void>;
  /**
   * The newest version the sink's store holds of each request and message (by versionKey):
   * a sink that has this is where the pipeline learns which rows were delivered already.
   */
  storedVersions?(events: readonly VersionedEvent[]): Promise<Map<string, StoredVersion>>;
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
