// tokenwatch's own health, read from the pipeline's stream statuses and row-quality counts
// at collection time (observable instruments: nothing to keep in sync).
import type { Meter } from '@opentelemetry/api';
import type { Pipeline } from '../pipeline/pipeline.ts';

function splitStream(id: string): { source: string; table: string } {
  const slash = id.indexOf('/');
  return { source: id.slice(0, slash), table: id.slice(slash + 1) };
}

export function registerSelfMetrics(meter: Meter, pipeline: Pipeline): void {
  const rowsRead = meter.createObservableCounter('tokenwatch_source_rows_read', {
    description: 'Rows read from source tables (incremental rows, and rows of each snapshot read).',
  });
  const rowsInvalid = meter.createObservableCounter('tokenwatch_source_rows_invalid', {
    description: 'Rows with a problem, by reason; action="rejected" rows were skipped, action="repaired" rows flowed on with the field fixed.',
  });
  const up = meter.createObservableGauge('tokenwatch_source_up', {
    description: '1 when the last poll of the stream succeeded, 0 when it failed.',
  });
  const lastSuccess = meter.createObservableGauge('tokenwatch_source_last_success_timestamp_seconds', {
    description: 'Unix time of the last successful poll of the stream.',
  });
  const pollDuration = meter.createObservableGauge('tokenwatch_source_poll_duration_seconds', {
    description: 'Duration of the last poll of the stream.',
  });
  meter.addBatchObservableCallback(
    (result) => {
      for (const status of pipeline.statuses()) {
        const attrs = { source: status.source, table: status.table };
        result.observe(rowsRead, status.rowsRead, attrs);
        if (status.polls > 0) result.observe(up, status.lastError === null ? 1 : 0, attrs);
        if (status.lastSuccessAt !== null) result.observe(lastSuccess, status.lastSuccessAt / 1000, attrs);
        if (status.lastPollDurationMs !== null) result.observe(pollDuration, status.lastPollDurationMs / 1000, attrs);
      }
      for (const count of pipeline.quality.snapshot()) {
        result.observe(rowsInvalid, count.count, { ...splitStream(count.stream), reason: count.reason, action: count.action });
      }
    },
    [rowsRead, rowsInvalid, up, lastSuccess, pollDuration],
  );
}
