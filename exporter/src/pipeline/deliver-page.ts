// Delivers the events of one page of a stream as row versions (model/row-versions.ts): looks
// up what was delivered before, records the classification in the stream's journal, writes
// what is new or changed, and counts new rows in full and revisions by their increase.
import type { CanonicalEvent } from '../model/events.ts';
import { classify, isVersioned, versionKey, type Classified, type StoredVersion, type VersionLedger } from '../model/row-versions.ts';
import type { MetricsRegistry } from '../metrics/registry.ts';
import type { VersionJournal } from './version-journal.ts';

export interface DeliveryCounts {
  /** Events written to the sinks. */
  written: number;
  /** Rows whose versioned events were revisions of counted rows. */
  revised: number;
  /** Versioned events read again unchanged (neither written nor counted). */
  unchanged: number;
}

export interface PageDelivery {
  streamId: string;
  ledger: VersionLedger;
  journal: VersionJournal;
  emit(events: CanonicalEvent[], stored: ReadonlyMap<string, StoredVersion>): Promise<void>;
  metrics: MetricsRegistry | undefined;
  /** Events of rows known never to have been delivered: not looked up (classified new). */
  unseen?: ReadonlySet<CanonicalEvent>;
}

export async function deliverPage(events: readonly CanonicalEvent[], d: PageDelivery): Promise<DeliveryCounts> {
  const versioned = events.filter(isVersioned);
  const lookup = d.unseen === undefined ? versioned : versioned.filter((e) => !d.unseen!.has(e));
  const stored = lookup.length === 0 ? new Map<string, StoredVersion>() : await d.ledger.storedVersions(lookup);
  const classified = classify(events, stored, d.journal.pending());
  // Durable before the rows are written: a page written but never checkpointed is counted
  // as classified here when it is read again (version-journal.ts).
  d.journal.append(classified.flatMap((c) => (isVersioned(c.event) && c.kind !== 'unchanged' ? [{ key: versionKey(c.event), kind: c.kind, previous: c.previous }] : [])));
  const toWrite = classified.filter((c) => c.kind !== 'unchanged').map((c) => c.event);
  if (toWrite.length > 0) await d.emit(toWrite, stored);
  d.ledger.delivered?.(classified);
  const revisions = classified.filter((c) => c.kind === 'revised');
  d.metrics?.recordStream(d.streamId, classified.filter((c) => c.kind === 'new').map((c) => c.event));
  d.metrics?.recordRevisions(d.streamId, revisions);
  d.journal.counted(versioned.map(versionKey));
  return { written: toWrite.length, revised: revisedRows(revisions), unchanged: classified.filter((c) => c.kind === 'unchanged').length };
}

/**
 * Revisions are counted per source row: a proxy request revised with its messages is one
 * row (its messages carry its request id), a transcript row is its message.
 */
function revisedRows(revisions: readonly Classified[]): number {
  const rows = new Set<string>();
  for (const { event } of revisions) {
    if (event.kind === 'request') rows.add(event.requestId);
    else if (event.kind === 'message') rows.add(event.requestId ?? event.messageId);
  }
  return rows.size;
}
