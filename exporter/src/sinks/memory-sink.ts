// Keeps events in memory: for tests, and for `backfill --dry-run` style counting.
import type { CanonicalEvent } from '../model/events.ts';
import type { Sink } from './sink.ts';

export class MemorySink implements Sink {
  readonly name = 'memory';
  readonly events: CanonicalEvent[] = [];
  async write(events: readonly CanonicalEvent[]): Promise<void> {
    this.events.push(...events);
  }
  async close(): Promise<void> {}
}
