// Bad rows never stop the stream. A mapper that finds a problem either rejects the row
// (it is skipped) or repairs it (it flows on with the field fixed); both are counted by
// reason, and each reason is logged at most once per interval so a flood of bad rows cannot
// flood the log.
import type { Logger } from '../log.ts';

export const REJECT_REASONS = ['negative_tokens', 'future_timestamp', 'missing_field', 'invalid_event', 'duplicate_id'] as const;
export const REPAIR_REASONS = ['null_tokens', 'unknown_model', 'malformed_json', 'oversized_body', 'invalid_utf8', 'invalid_cost', 'cost_out_of_range'] as const;
export type RejectReason = (typeof REJECT_REASONS)[number];
export type RepairReason = (typeof REPAIR_REASONS)[number];

/** Thrown by a row mapper: the row is skipped and counted under `reason`. */
export class RowRejected extends Error {
  readonly reason: RejectReason;
  constructor(reason: RejectReason, detail: string) {
    super(detail);
    this.reason = reason;
  }
}

export interface QualityCount {
  stream: string;
  action: 'rejected' | 'repaired';
  reason: RejectReason | RepairReason;
  count: number;
}

export class RowQuality {
  private readonly counts = new Map<string, QualityCount>();
  private readonly lastLogged = new Map<string, number>();
  private readonly logger: Logger;
  private readonly logIntervalMs: number;
  private readonly now: () => number;
  private readonly listeners: ((count: QualityCount, delta: number) => void)[] = [];

  constructor(logger: Logger, logIntervalMs: number, now: () => number = Date.now) {
    this.logger = logger;
    this.logIntervalMs = logIntervalMs;
    this.now = now;
  }

  onCount(listener: (count: QualityCount, delta: number) => void): void {
    this.listeners.push(listener);
  }

  record(stream: string, action: 'rejected' | 'repaired', reason: RejectReason | RepairReason, detail: string, rowId: string): void {
    const key = `${stream}\u0000${action}\u0000${reason}`;
    let entry = this.counts.get(key);
    if (!entry) {
      entry = { stream, action, reason, count: 0 };
      this.counts.set(key, entry);
    }
    entry.count += 1;
    for (const listener of this.listeners) listener(entry, 1);
    const now = this.now();
    const last = this.lastLogged.get(key);
    if (last === undefined || now - last >= this.logIntervalMs) {
      this.lastLogged.set(key, now);
      this.logger.warn(
        { stream, reason, action, rowId, detail, countSoFar: entry.count },
        action === 'rejected' ? 'row rejected and skipped' : 'row repaired',
      );
    }
  }

  /** Sets a stream's count from its checkpoint, before the stream reads again (no log line, no listener). */
  restore(stream: string, action: 'rejected' | 'repaired', reason: RejectReason | RepairReason, count: number): void {
    this.counts.set(`${stream}\u0000${action}\u0000${reason}`, { stream, action, reason, count });
  }

  snapshot(): QualityCount[] {
    return [...this.counts.values()].map((c) => ({ ...c }));
  }
}
