// Where canonical events go. A sink must be idempotent per event identity (request id,
// message id, snapshot key + observation): after a crash the reader re-delivers the pages
// whose checkpoint was not yet saved.
import type { CanonicalEvent } from '../model/events.ts';

export interface Sink {
  readonly name: string;
  write(events: readonly CanonicalEvent[]): Promise<void>;
  close(): Promise<void>;
}
