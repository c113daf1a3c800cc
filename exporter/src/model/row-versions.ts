// Row versions: the sources update rows in place, so a source row can be read more than once
// (each committed UPDATE is a new version the reader hands over). A request or a message is
// counted once, the first time it is delivered; a later version that changes it is a revision,
// which updates the event store to the newest content and adds to the counters only the
// increase of an additive amount (tokens, cost), so counters never go down; a version that
// changes nothing tokenwatch keeps is unchanged, and neither written nor counted.
//
// Which ids were delivered, and with which amounts, is what the event store holds (a sink's
// storedVersions()); without one, a MemoryLedger remembers the ids of this process. The
// answer has one gap the journal closes: a page whose store writes finished but whose
// checkpoint (with the counters) was never saved, because the process died or the poll
// failed. Its rows are read again and found in the store, so without more they would never
// be counted. Before a page's rows are written, their classification goes to the stream's
// journal (VersionJournal); until the next checkpoint is durable, a row read again is
// classified as the journal says, not as the store does.
import { createHash } from 'node:crypto';
import type { CanonicalEvent, MessageEvent, RequestEvent } from './events.ts';

/** The amounts of a request that counters add up; a revision counts their increase. */
export interface RequestAmounts {
  inputTokens: number;
  outputTokens: number;
  cacheReadTokens: number;
  cacheWriteTokens: number;
  costUsd: number;
  /** The list-price estimate (equal to costUsd where the source records no spend). */
  costEstimateUsd: number;
}

/** What the event store (or the ledger) holds of a delivered row. */
export interface StoredVersion {
  /** fingerprint() of the stored version; '0' when unknown (written by the bulk backfill). */
  fingerprint: string;
  /** A request's counted amounts (null for a message). */
  amounts: RequestAmounts | null;
  /** A request's status as stored, compared when the fingerprint is unknown. */
  httpStatus: number | null;
  /**
   * The store's correction for replacing this version: rows that take its amounts out of the
   * derived tables (the daily rollups), by table. Set by the store that holds it.
   */
  retraction?: { table: string; row: Record<string, unknown> };
}

export type VersionKind = 'new' | 'revised' | 'unchanged';

export interface Classified {
  event: CanonicalEvent;
  kind: VersionKind;
  /** For a revised request: the amounts already counted. */
  previous: RequestAmounts | null;
}

/** A classification kept in the journal until the checkpoint that counts it is durable. */
export interface JournalEntry {
  key: string;
  kind: 'new' | 'revised';
  previous: RequestAmounts | null;
}

/** Requests and messages have versions (one store row per id); other events do not. */
export type VersionedEvent = RequestEvent | MessageEvent;

export function isVersioned(event: CanonicalEvent): event is VersionedEvent {
  return event.kind === 'request' || event.kind === 'message';
}

export function versionKey(event: VersionedEvent): string {
  return event.kind === 'request' ? `request:${event.requestId}` : `message:${event.messageId}`;
}

/**
 * A 64-bit hash of everything tokenwatch keeps of the event (decimal text, ClickHouse UInt64;
 * never 0). Two reads of an unchanged row give the same fingerprint.
 */
export function fingerprint(event: VersionedEvent): string {
  const digest = createHash('sha256').update(JSON.stringify(event)).digest();
  const value = digest.readBigUInt64BE(0);
  return (value === 0n ? 1n : value).toString();
}

export function amountsOf(event: RequestEvent): RequestAmounts {
  return {
    inputTokens: event.inputTokens, outputTokens: event.outputTokens, cacheReadTokens: event.cacheReadTokens,
    cacheWriteTokens: event.cacheWriteTokens, costUsd: event.costUsd ?? 0, costEstimateUsd: event.costEstimateUsd ?? 0,
  };
}

function sameAmounts(a: RequestAmounts, b: RequestAmounts): boolean {
  return a.inputTokens === b.inputTokens && a.outputTokens === b.outputTokens && a.cacheReadTokens === b.cacheReadTokens &&
    a.cacheWriteTokens === b.cacheWriteTokens && Math.abs(a.costUsd - b.costUsd) < 5e-10 && Math.abs(a.costEstimateUsd - b.costEstimateUsd) < 5e-10;
}

/** Whether the stored version is the event as it is now. */
export function unchanged(event: VersionedEvent, stored: StoredVersion): boolean {
  if (stored.fingerprint !== '0') return stored.fingerprint === fingerprint(event);
  // Written by the bulk backfill (no fingerprint): the counted columns decide.
  return event.kind === 'request' && stored.amounts !== null && sameAmounts(amountsOf(event), stored.amounts) && (event.httpStatus ?? 0) === (stored.httpStatus ?? 0);
}

/**
 * Classifies the events of one page: `stored` is what the store holds of their ids, `journal`
 * the classifications of pages not yet checkpointed (they win: the store may hold what a
 * failed page wrote).
 */
export function classify(events: readonly CanonicalEvent[], stored: ReadonlyMap<string, StoredVersion>, journal: ReadonlyMap<string, JournalEntry>): Classified[] {
  return events.map((event): Classified => {
    if (!isVersioned(event)) return { event, kind: 'new', previous: null };
    const key = versionKey(event);
    const pending = journal.get(key);
    if (pending) return { event, kind: pending.kind, previous: pending.previous };
    const found = stored.get(key);
    if (found === undefined) return { event, kind: 'new', previous: null };
    if (unchanged(event, found)) return { event, kind: 'unchanged', previous: null };
    return { event, kind: 'revised', previous: found.amounts };
  });
}

/** The increase of each amount from `previous` to `now` (0 where it did not grow). */
export function increase(now: RequestAmounts, previous: RequestAmounts | null): RequestAmounts {
  const p = previous ?? { inputTokens: 0, outputTokens: 0, cacheReadTokens: 0, cacheWriteTokens: 0, costUsd: 0, costEstimateUsd: 0 };
  return {
    inputTokens: Math.max(0, now.inputTokens - p.inputTokens), outputTokens: Math.max(0, now.outputTokens - p.outputTokens),
    cacheReadTokens: Math.max(0, now.cacheReadTokens - p.cacheReadTokens), cacheWriteTokens: Math.max(0, now.cacheWriteTokens - p.cacheWriteTokens),
    costUsd: Math.max(0, now.costUsd - p.costUsd), costEstimateUsd: Math.max(0, now.costEstimateUsd - p.costEstimateUsd),
  };
}

/** Where delivered versions are looked up: the event store, or a MemoryLedger without one. */
export interface VersionLedger {
  storedVersions(events: readonly VersionedEvent[]): Promise<Map<string, StoredVersion>>;
  /** The versions of `events` were delivered (a ledger that is not the store records them). */
  delivered?(events: readonly Classified[]): void;
}

/**
 * The ledger of a pipeline without an event store: the versions delivered by this process.
 * It forgets on restart, so an update of a row delivered before a restart counts as a new
 * row (docs/how-rows-are-read.md says so); entries are dropped by age.
 */
export class MemoryLedger implements VersionLedger {
  private readonly versions = new Map<string, StoredVersion & { at: number }>();
  private readonly keepMs: number;
  private readonly now: () => number;
  private prunedAt = 0;

  constructor(keepMs: number, now: () => number = Date.now) {
    this.keepMs = keepMs;
    this.now = now;
  }

  async storedVersions(events: readonly VersionedEvent[]): Promise<Map<string, StoredVersion>> {
    const out = new Map<string, StoredVersion>();
    for (const e of events) {
      const found = this.versions.get(versionKey(e));
      if (found) out.set(versionKey(e), found);
    }
    return out;
  }

  delivered(events: readonly Classified[]): void {
    const now = this.now();
    for (const { event, kind } of events) {
      if (!isVersioned(event) || kind === 'unchanged') continue;
      this.versions.set(versionKey(event), {
        fingerprint: fingerprint(event), amounts: event.kind === 'request' ? amountsOf(event) : null,
        httpStatus: event.kind === 'request' ? event.httpStatus : null, at: now,
      });
    }
    // At most once a minute: drop what is older than keepMs.
    if (now - this.prunedAt >= 60_000) {
      this.prunedAt = now;
      for (const [key, v] of this.versions) if (now - v.at > this.keepMs) this.versions.delete(key);
    }
  }
}
