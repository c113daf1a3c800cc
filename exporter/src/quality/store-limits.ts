// What the event store can hold, checked before a page is written: a value outside it would
// make ClickHouse refuse the whole insert (a LiteLLM spend of 12,345,678,901.5 does not fit
// cost_usd's Decimal(18, 9), and every later page of the stream failed with it). Such a value
// is repaired and counted; the row flows on.
import type { CanonicalEvent } from '../model/events.ts';
import type { MapContext } from '../sources/adapter.ts';

/** cost_usd is Decimal(18, 9): nine digits before the point (the largest double below 10^9 that toFixed(9) keeps under it). */
export const MAX_COST_USD = 999_999_999.999_999;

/** Repairs, in place, the values of `event` the store cannot hold, recording each with `ctx`. */
export function fitStoreLimits(event: CanonicalEvent, ctx: Pick<MapContext, 'repaired'>): void {
  if (event.kind === 'request' && event.costUsd !== null && event.costUsd > MAX_COST_USD) {
    ctx.repaired('cost_out_of_range', `cost ${event.costUsd} USD is more than the event store holds (${MAX_COST_USD}): cost unknown`);
    event.costUsd = null;
  }
}
