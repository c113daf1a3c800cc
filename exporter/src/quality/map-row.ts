// One row through its mapper, with the guarantee the pipeline relies on: the row either
// yields events that satisfy the canonical model, or it is rejected with a reason. A mapper
// that throws something other than RowRejected (a value it did not expect) or returns an
// event the model refuses (a year 20000 timestamp, NaN) rejects that row as
// `invalid_event`: the row is counted and skipped, and the rows around it flow on, instead
// of a sink refusing the whole page and the stream stopping at that row.
import { CanonicalEvent } from '../model/events.ts';
import { RowRejected } from './row-quality.ts';

export type MapOutcome = { events: CanonicalEvent[]; rejected?: undefined } | { rejected: RowRejected; events?: undefined };

export function mapRowChecked(map: () => CanonicalEvent[]): MapOutcome {
  let events: CanonicalEvent[];
  try {
    events = map();
  } catch (error) {
    if (error instanceof RowRejected) return { rejected: error };
    return { rejected: new RowRejected('invalid_event', `the row could not be mapped: ${error instanceof Error ? error.message : String(error)}`) };
  }
  for (const event of events) {
    const checked = CanonicalEvent.safeParse(event);
    if (!checked.success) {
      const issue = checked.error.issues[0]!;
      return { rejected: new RowRejected('invalid_event', `${event.kind} event: ${issue.path.join('.')}: ${issue.message}`) };
    }
  }
  return { events };
}
